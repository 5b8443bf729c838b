"""Resources the routes get through Depends: the model store, the model in service, the metrics,
the prediction path, and a JSON body parsed in one pass.

All `async def`, though none awaits for long: FastAPI runs a plain `def` dependency in the thread
pool, and a thread hop per dependency would cost more than the prediction itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from pydantic import TypeAdapter

from digit_api.metrics import ServiceMetrics
from digit_api.predict_codec import checked_body
from digit_api.serving import Predictions, require_json
from digit_api.store import ModelStore
from digit_release.model import LiteRTModel

T = TypeVar("T")


async def get_store(request: Request) -> ModelStore:
    store: ModelStore = request.app.state.store
    return store


async def get_model(request: Request) -> LiteRTModel:
    """The model for this request: taken once, so a reload mid-request does not change it."""
    store: ModelStore = request.app.state.store
    return store.current()


async def get_metrics(request: Request) -> ServiceMetrics:
    metrics: ServiceMetrics = request.app.state.metrics
    return metrics


async def get_predictions(request: Request) -> Predictions:
    predictions: Predictions = request.app.state.predictions
    return predictions


def json_body(adapter: TypeAdapter[T]) -> Callable[[Request], Awaitable[T]]:
    """A dependency that parses and validates a JSON body in one pass of pydantic's Rust parser.

    FastAPI's own body handling decodes with the stdlib first and validates after: on a
    784-number body that is three times the cost.
    """

    async def parse(request: Request) -> T:
        require_json(request.headers.get("content-type"))
        value: T = checked_body(await request.body(), adapter)
        return value

    return parse


def openapi_body(adapter: TypeAdapter[Any]) -> dict[str, Any]:
    """The `openapi_extra` that documents a body a route reads itself (schema inlined, no $defs)."""
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
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
PredictionsDep = Annotated[Predictions, Depends(get_predictions)]
