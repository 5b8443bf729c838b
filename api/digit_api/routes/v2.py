"""Open Inference Protocol (KServe V2) routes, so that standard inference clients work."""

from __future__ import annotations

from importlib.metadata import version as package_version
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter

from digit_api.config import MAX_BATCH
from digit_api.deps import Model, ServingDep, Store, json_body, openapi_body
from digit_api.schemas import V2Error, V2InferRequest, V2InferResponse, V2Tensor
from digit_release.model import LiteRTModel

router = APIRouter(prefix="/v2", tags=["open inference protocol"])
INFER_BODY = TypeAdapter(V2InferRequest)
ERRORS = {400: {"model": V2Error}, 404: {"model": V2Error}, 503: {"model": V2Error}}
SHAPES = ("[N, 784]", "[N, 28, 28, 1]")


@router.get("")
async def server_metadata() -> dict:
    """Server metadata."""
    return {"name": "digit-api", "version": package_version("ai-edge-litert"), "extensions": []}


@router.get("/health/live")
async def live() -> dict:
    """Server liveness."""
    return {"live": True}


@router.get("/health/ready", responses={503: {"description": "no verified model loaded"}})
async def ready(store: Store) -> JSONResponse:
    """Server readiness: a verified model is loaded."""
    return JSONResponse({"ready": store.ready}, status_code=200 if store.ready else 503)


def named(model: LiteRTModel, name: str) -> LiteRTModel:
    if name != model.manifest.name:
        raise HTTPException(404, f"unknown model {name!r}; this server serves {model.manifest.name!r}")
    return model


@router.get("/models/{name}", responses=ERRORS)
async def model_metadata(name: str, model: Model) -> dict:
    """Model metadata: name, version, platform, input and output tensors."""
    named(model, name)
    classes = model.manifest.output.shape[0]
    return {
        "name": name,
        "versions": [model.version],
        "platform": "tflite",
        "inputs": [{"name": model.manifest.input.name, "datatype": "FP32", "shape": [-1, 784]}],
        "outputs": [{"name": model.manifest.output.name, "datatype": "FP32", "shape": [-1, classes]}],
        "parameters": {"labels": model.labels, "accepted_input_shapes": list(SHAPES), "datatypes": ["FP32", "UINT8"]},
    }


@router.get("/models/{name}/ready", responses=ERRORS)
async def model_ready(name: str, model: Model) -> dict:
    """Model readiness."""
    named(model, name)
    return {"name": name, "ready": True}


@router.post(
    "/models/{name}/infer", response_model=V2InferResponse, responses=ERRORS, openapi_extra=openapi_body(INFER_BODY)
)
async def infer(
    name: str,
    body: Annotated[V2InferRequest, Depends(json_body(INFER_BODY))],
    serving: ServingDep,
    response: Response,
) -> dict:
    """Inference: one input tensor of FP32 or UINT8 pixels, shape [N, 784] or [N, 28, 28, 1]."""
    model = named(serving.model, name)
    x = to_batch(body.inputs[0])
    probabilities = await run_in_threadpool(model.predict, x)
    serving.answer(probabilities)  # counted like every other prediction
    response.headers["X-Model-Version"] = model.version
    return {
        "model_name": name,
        "model_version": model.version,
        "id": body.id,
        "outputs": [
            {
                "name": model.manifest.output.name,
                "shape": list(probabilities.shape),
                "datatype": "FP32",
                "data": probabilities.ravel().tolist(),
            }
        ],
    }


def to_batch(tensor: V2Tensor) -> np.ndarray:
    """Check a V2 input tensor against the pixel contract and return it as (N, 784) float32."""
    shape = tensor.shape
    if not (len(shape) == 2 and shape[1] == 784) and not (len(shape) == 4 and shape[1:] == [28, 28, 1]):
        raise HTTPException(400, f"input shape must be {' or '.join(SHAPES)}, got {shape}")
    if not 1 <= shape[0] <= MAX_BATCH:
        raise HTTPException(400, f"batch size must be 1 to {MAX_BATCH}, got {shape[0]}")
    try:
        # As objects first: a numeric conversion would quietly turn true/false into 1/0.
        leaves = np.asarray(tensor.data, dtype=object).ravel()
    except (ValueError, TypeError):
        raise HTTPException(400, "data must be a flat or evenly nested list of numbers") from None
    if any(type(v) is list for v in leaves):
        raise HTTPException(400, "data must be a flat or evenly nested list of numbers")
    if not all(type(v) in (int, float) for v in leaves):
        raise HTTPException(400, "data must hold only numbers")
    data = leaves.astype(np.float64) if len(leaves) else np.zeros(0)
    if tensor.datatype == "UINT8" and not all(type(v) is int for v in leaves):
        raise HTTPException(400, "UINT8 data must be whole numbers")
    if data.size != shape[0] * 784:
        raise HTTPException(400, f"data holds {data.size} numbers, shape {shape} needs {shape[0] * 784}")
    if not np.isfinite(data).all() or data.min() < 0 or data.max() > 255:
        raise HTTPException(400, "pixels must be finite numbers from 0 to 255")
    return data.reshape(shape[0], 784).astype(np.float32)
