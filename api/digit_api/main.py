"""The FastAPI application: `create_app()` builds it; the lifespan loads the model (never import time)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.routing import Mount, Route

from digit_api import __version__, errors
from digit_api.config import MAX_BATCH, MAX_BODY_BYTES, Settings, get_settings
from digit_api.feedback_store import FeedbackStore, FeedbackUnavailable
from digit_api.logs import configure_logging
from digit_api.metrics import ServiceMetrics
from digit_api.middleware import ServiceMiddleware
from digit_api.routes import feedback, health, predict, v2
from digit_api.serving import Predictions, Shortcut
from digit_api.store import ModelStore

logger = logging.getLogger(__name__)

DESCRIPTION = f"""
Handwritten digit recognition with LiteRT.

Pixels follow one contract: 784 numbers, row-major 28x28, grayscale, 0 = background, 255 = full ink.
Batches take at most {MAX_BATCH} digits; bodies at most {MAX_BODY_BYTES} bytes. Every response carries
`X-Model-Version`. Every route is reachable under `/api/` too.

`POST /feedback` stores a person's verdict on a drawing (the pixels, the right digit) with the model's own
answer, worked out again by the server; nothing that identifies a person is stored.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    metrics = ServiceMetrics()
    store = ModelStore(settings.model_dir, metrics, num_threads=settings.num_threads)
    # Built now, connected on first use: predictions never wait for the database.
    feedback_store = FeedbackStore(settings.database_url, migrate=settings.database_migrate)
    predictions = Predictions(store, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The event loop shares the interpreter with the threads that parse large bodies and run
        # batches: each time it needs the GIL back it waits up to this interval, several times per
        # request. 1 ms instead of 5 keeps /healthz answered within milliseconds meanwhile.
        sys.setswitchinterval(0.001)
        await asyncio.to_thread(store.refresh)
        # What exists now (modules, the model) lives as long as the process: keeping it out of the
        # garbage collector's scans removes most of the pauses that show up as tail latency.
        gc.freeze()
        watcher = asyncio.create_task(store.watch(settings.reload_interval)) if settings.reload_interval else None
        # The schema is brought up to date in the background (the first /feedback does it too if
        # this has not finished): the service is ready as soon as its model is, database or not.
        # A SQLite file is made by the first verdict, so a service that never gets one leaves none behind.
        schema = asyncio.create_task(prepare_feedback(feedback_store)) if feedback_store.backend != "sqlite" else None
        try:
            yield
        finally:
            for task in (watcher, schema):
                if task:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            feedback_store.close()

    # FastAPIOffline serves Swagger UI and ReDoc from the package, not a CDN: /docs works offline
    # and under a Content-Security-Policy that allows no other origin.
    app = FastAPIOffline(
        title="Digit recognition API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # Metrics are Prometheus' (/metrics); FastAPI's OpenTelemetry hooks would only cost a
        # check on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.openapi = partial(openapi, app)  # type: ignore[method-assign]
    app.state.store = store
    app.state.metrics = metrics
    app.state.predictions = predictions
    app.state.feedback = feedback_store
    app.state.feedback_limiter = anyio.CapacityLimiter(feedback.DATABASE_THREADS)
    app.include_router(predict.router)
    app.include_router(health.router)
    app.include_router(v2.router)
    app.include_router(feedback.router)
    errors.install(app)
    shortcut = Shortcut(predictions) if settings.fast_path else None
    plain_routes: dict[Any, str] = {}
    app.add_middleware(
        ServiceMiddleware,
        store=store,
        metrics=metrics,
        max_body_bytes=MAX_BODY_BYTES,
        shortcut=shortcut,
        plain_routes=plain_routes,
    )
    if (settings.static_dir / "index.html").is_file():
        serve_page(app, settings.static_dir)
    # Filled once every route exists; the middleware reads it per request.
    plain_routes.update({route.endpoint: route.path for route in app.routes if isinstance(route, Route)})
    plain_routes.update({route.app: route.path for route in app.routes if isinstance(route, Mount)})
    return app


async def prepare_feedback(feedback_store: FeedbackStore) -> None:
    try:
        await asyncio.to_thread(feedback_store.ensure_schema)
        logger.info("feedback store ready: %s", feedback_store.url)
    except FeedbackUnavailable:
        pass  # logged by the store; /feedback answers 503 and tries again


def openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, less the 422 it documents for every route with a path parameter.

    The Open Inference Protocol routes answer a bad request with 400 (the protocol's word for it),
    so the 422 would be a status they never return.
    """
    if app.openapi_schema is None:
        schema = FastAPI.openapi(app)
        for path, operations in schema["paths"].items():
            if path.startswith("/v2/"):
                for operation in operations.values():
                    operation["responses"].pop("422", None)
        app.openapi_schema = schema
    return app.openapi_schema


def serve_page(app: FastAPI, static_dir: Path) -> None:
    """The embedded set-up (make run) serves the drawing page itself: `/` and its asset folders.

    Named paths, not a catch-all mount at `/`, so `GET /predict` stays a 405 and unknown paths a
    JSON 404.
    """
    index = static_dir / "index.html"

    async def page(request: Request) -> FileResponse:
        return FileResponse(index, headers={"Cache-Control": "no-cache"})

    app.add_route("/", page, include_in_schema=False)
    for folder in sorted(path for path in static_dir.iterdir() if path.is_dir()):
        app.mount(f"/{folder.name}", StaticFiles(directory=folder), name=f"page-{folder.name}")


def serve_app() -> FastAPI:
    """The factory `python -m digit_api` hands to uvicorn: each worker process configures its logs."""
    settings = get_settings()
    configure_logging(settings.log_level)
    return create_app(settings)
