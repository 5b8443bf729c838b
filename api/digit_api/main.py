"""The FastAPI application: `create_app()` builds it; the lifespan loads the model (never import time)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from digit_api import errors
from digit_api.config import MAX_BATCH, MAX_BODY_BYTES, Settings, get_settings
from digit_api.logs import configure_logging
from digit_api.metrics import Metrics
from digit_api.middleware import ServiceMiddleware
from digit_api.routes import health, predict, v2
from digit_api.store import ModelStore

logger = logging.getLogger(__name__)

DESCRIPTION = f"""
Handwritten digit recognition with LiteRT.

Pixels follow one contract: 784 numbers, row-major 28x28, grayscale, 0 = background, 255 = full ink.
Batches take at most {MAX_BATCH} digits; bodies at most {MAX_BODY_BYTES} bytes. Every response carries
`X-Model-Version`. Every route is reachable under `/api/` too.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    metrics = Metrics()
    store = ModelStore(settings.model_dir, metrics, num_threads=settings.num_threads)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(store.refresh)
        # What exists now (modules, the model) lives as long as the process: keeping it out of the
        # garbage collector's scans removes most of the pauses that show up as tail latency.
        gc.freeze()
        watcher = asyncio.create_task(store.watch(settings.reload_interval)) if settings.reload_interval else None
        try:
            yield
        finally:
            if watcher:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    app = FastAPI(
        title="Digit recognition API",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        # Metrics are Prometheus' (/metrics); FastAPI's OpenTelemetry hooks would only cost a
        # check on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.store = store
    app.state.metrics = metrics
    app.include_router(predict.router)
    app.include_router(health.router)
    app.include_router(v2.router)
    errors.install(app)
    app.add_middleware(ServiceMiddleware, store=store, metrics=metrics, max_body_bytes=MAX_BODY_BYTES)
    if settings.static_dir.is_dir():
        # Mounted last, so it only answers what no route did: the embedded set-up serves the page itself.
        app.mount("/", StaticFiles(directory=settings.static_dir, html=True), name="page")
    return app


def serve_app() -> FastAPI:
    """The factory `python -m digit_api` hands to uvicorn: each worker process configures its logs."""
    settings = get_settings()
    configure_logging(settings.log_level)
    return create_app(settings)
