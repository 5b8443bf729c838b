"""Resources the routes get through Depends: the model in service, the metrics, the parsed body.

All `async def`, though none awaits for long: FastAPI runs a plain `def` dependency in the thread
pool, and a thread hop per dependency would cost more than the prediction itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import numpy as np
from fastapi import Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from digit_api.metrics import Metrics
from digit_api.postprocess import digits
from digit_api.store import ModelStore
from digit_release.model import LiteRTModel

T = TypeVar("T")
INLINE_PREDICT_ROWS = 8
BATCH_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="digit-batches")


async def get_store(request: Request) -> ModelStore:
    return request.app.state.store


async def get_model(request: Request) -> LiteRTModel:
    """The model for this request: taken once, so a reload mid-request does not change it."""
    return request.app.state.store.current()


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


@dataclass(frozen=True)
class Serving:
    """What a prediction route needs, in one dependency: FastAPI's per-dependency cost is not small."""

    model: LiteRTModel
    metrics: Metrics

    def answer(self, probabilities: np.ndarray) -> list[dict]:
        return digits(self.model, probabilities, self.metrics)

    async def predict(self, pixels: np.ndarray) -> np.ndarray:
        """Probabilities for a batch: a few digits right here, more on the one batch thread.

        A few digits (~30 us each) cost less than a hop to a thread. Larger batches run one at a
        time on a thread of their own: on two cores, eight batches at once would take the CPU
        from the event loop (and each new pool thread would build an interpreter of its own).
        """
        if len(pixels) <= INLINE_PREDICT_ROWS:
            return self.model.predict(pixels)
        return await asyncio.get_running_loop().run_in_executor(BATCH_THREAD, self.model.predict, pixels)

    def count(self, probabilities: np.ndarray) -> None:
        """Count predictions in the metrics without building the contract's answers."""
        best = probabilities.argmax(axis=1)
        labels = self.model.labels
        self.metrics.observe_predictions([labels[i] for i in best.tolist()], probabilities.max(axis=1).tolist())


async def get_serving(request: Request) -> Serving:
    """The model for this request, taken once (a reload mid-request does not change it), and the metrics."""
    return Serving(request.app.state.store.current(), request.app.state.metrics)


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def is_json(kind: str) -> bool:
    return kind == "application/json" or kind.endswith("+json")


def validation_errors(exc: ValidationError, prefix: tuple = ("body",)) -> RequestValidationError:
    """Pydantic's errors as FastAPI reports body errors, so one handler words them all."""
    return RequestValidationError(
        [{**error, "loc": (*prefix, *error["loc"])} for error in exc.errors(include_url=False, include_input=False)]
    )


def json_body(adapter: TypeAdapter[T], explain: TypeAdapter[Any] | None = None) -> Callable[[Request], Awaitable[T]]:
    """A dependency that parses and validates a JSON body in one pass of pydantic's Rust parser.

    FastAPI's own body handling decodes with the stdlib first and validates after: on a
    784-number body that is three times the cost, and this is the service's hot path. When
    `explain` is given, a refused body is validated again with it, for clearer errors.
    """

    async def parse(request: Request) -> T:
        kind = media_type(request)
        if not is_json(kind):
            raise HTTPException(415, f"Content-Type must be application/json, got {kind or 'none'}")
        raw = await request.body()
        if not raw.strip():
            raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required"}])
        try:
            return adapter.validate_json(raw)
        except ValidationError as exc:
            error = exc
        if explain is not None:
            try:
                explain.validate_json(raw)
            except ValidationError as exc:
                error = exc
        raise validation_errors(error)

    return parse


def openapi_body(adapter: TypeAdapter[Any]) -> dict[str, Any]:
    """The `openapi_extra` that documents a body parsed by `json_body` (schema inlined, no $defs)."""
    schema = adapter.json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(defs[node["$ref"].rsplit("/", 1)[-1]])
            # A discriminator's mapping names $defs, which are inlined here: the propertyName stays.
            return {key: inline(value) for key, value in node.items() if key != "mapping"}
        if isinstance(node, list):
            return [inline(value) for value in node]
        return node

    return {"requestBody": {"required": True, "content": {"application/json": {"schema": inline(schema)}}}}


Store = Annotated[ModelStore, Depends(get_store)]
Model = Annotated[LiteRTModel, Depends(get_model)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
ServingDep = Annotated[Serving, Depends(get_serving)]
