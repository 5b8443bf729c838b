"""Liveness, readiness, the model's manifest and the Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from digit_api.deps import MetricsDep, Store

router = APIRouter(tags=["service"])


@router.get("/healthz")
async def healthz() -> dict[str, Any]:
    """Liveness: the process answers (a missing model is readiness' business, not a restart's)."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "no verified model loaded"}})
async def readyz(store: Store) -> JSONResponse:
    """Readiness: a verified model is loaded and serving."""
    if store.ready:
        return JSONResponse({"status": "ready", "model_version": store.version})
    return JSONResponse({"status": "not ready", "reason": store.error}, status_code=503)


@router.get("/model", responses={503: {"description": "no verified model loaded"}})
async def model_manifest(store: Store) -> dict[str, Any]:
    """The manifest (model.json) of the model in service."""
    return store.current().manifest.model_dump(mode="json")


@router.get("/metrics", response_class=Response)
async def metrics(metrics: MetricsDep) -> Response:
    """Prometheus metrics."""
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
