"""The one prediction path: read the digits, run the model, answer, count, name the model.

Every route that answers digits (/predict, /predict/batch, /predict/image and the Open Inference
Protocol's infer) goes through `Predictions`, whichever door the request came in by: FastAPI's
documented routes (routes/predict.py, routes/v2.py), or the `Shortcut` the service middleware
takes for the busiest ones, which skips FastAPI's routing, dependency injection and request
objects (most of what a prediction cost) and calls the very same methods. A reply is bytes and
headers, so both doors send the same bytes.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar

import anyio
import numpy as np
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope

from digit_api.errors import ClientError
from digit_api.metrics import ServiceMetrics
from digit_api.predict_codec import answers, encode, read_instances, read_pixels
from digit_api.store import ModelStore
from digit_api.v2_codec import HEADER_LENGTH, LargeBodyParser, ProtocolError, encode_response, parse_request
from digit_release.model import LiteRTModel

JSON = "application/json"
# A few digits (~30 us each) cost less on the event loop than a hop to a thread. Larger batches
# run one at a time on a thread of their own: on two cores, eight batches at once would take the
# CPU from the event loop (and each new pool thread would build an interpreter of its own).
INLINE_PREDICT_ROWS = 8
BATCH_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="digit-batches")
# A small V2 body is parsed right on the event loop (tens of microseconds); a large one in a worker
# thread, one at a time, so that the loop waits at most one short native parse for the GIL and
# /healthz stays answered while large bodies are being read.
INLINE_PARSE_BYTES = 64 * 1024
LARGE_PARSES = anyio.CapacityLimiter(1)
LARGE_PARSER = LargeBodyParser()
# The bounds the documented V2 routes put on path parameters (a request beyond them is left to FastAPI).
MAX_NAME, MAX_VERSION = 128, 64


@dataclass(frozen=True, slots=True)
class Reply:
    """A response, whichever door sends it: status, body and headers (X-Model-Version among them)."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...]


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def is_json(kind: str) -> bool:
    return kind == JSON or kind.endswith("+json")


def require_json(content_type: str | None) -> None:
    kind = media_type(content_type)
    if not is_json(kind):
        raise ClientError(415, f"Content-Type must be application/json, got {kind or 'none'}")


def served(model: LiteRTModel, name: str, version: str | None) -> LiteRTModel:
    """The model in service if it is the one asked for; a 404 that says what is served if not."""
    if name != model.manifest.name:
        raise ClientError(404, f"unknown model {name[:100]!r}; this server serves {model.manifest.name!r}")
    if version is not None and version != model.version:
        raise ClientError(
            404, f"model {name!r} version {version[:100]!r} is not loaded; this server serves version {model.version!r}"
        )
    return model


class Predictions:
    """Predict, answer, count and name the model: the same for every route that answers digits."""

    def __init__(self, store: ModelStore, metrics: ServiceMetrics) -> None:
        self.store = store
        self.metrics = metrics

    async def run(self, model: LiteRTModel, pixels: np.ndarray) -> np.ndarray:
        """Probabilities for a batch: a few digits right here, more on the one batch thread."""
        if len(pixels) <= INLINE_PREDICT_ROWS:
            return model.predict(pixels)
        return await asyncio.get_running_loop().run_in_executor(BATCH_THREAD, model.predict, pixels)

    def count(self, model: LiteRTModel, probabilities: np.ndarray) -> None:
        """Predictions by label and their confidence, in the metrics."""
        labels = model.labels
        best = probabilities.argmax(axis=1).tolist()
        self.metrics.observe_predictions([labels[i] for i in best], probabilities.max(axis=1).tolist())

    def reply(self, model: LiteRTModel, document: Any) -> Reply:
        return Reply(200, encode(document), (("content-type", JSON), ("x-model-version", model.version)))

    async def predict(self, body: bytes, content_type: str | None) -> Reply:
        """One digit: `{"pixels": [784 numbers]}` or the bare array."""
        require_json(content_type)
        pixels = read_pixels(body)
        # The model is taken once: a reload mid-request does not change the model that answers.
        model = self.store.current()
        probabilities = model.predict(pixels)
        self.count(model, probabilities)
        [answer] = answers(model.labels, probabilities)
        return self.reply(model, {**answer, "model_version": model.version})

    async def predict_batch(self, body: bytes, content_type: str | None) -> Reply:
        """Up to MAX_BATCH digits: `{"instances": [[784 numbers], ...]}`."""
        require_json(content_type)
        pixels = read_instances(body)
        model = self.store.current()
        probabilities = await self.run(model, pixels)
        self.count(model, probabilities)
        return self.reply(model, {"predictions": answers(model.labels, probabilities), "model_version": model.version})

    async def predict_image(self, pixels: np.ndarray) -> Reply:
        """A digit already turned into its 784 pixels (from an uploaded image): answered with them."""
        model = self.store.current()
        probabilities = model.predict(pixels[None])
        self.count(model, probabilities)
        [answer] = answers(model.labels, probabilities)
        return self.reply(model, {**answer, "model_version": model.version, "pixels": pixels.astype(int).tolist()})

    async def infer(self, body: bytes, header_length: str | None, name: str, version: str | None) -> Reply:
        """The Open Inference Protocol's infer, JSON or with the binary tensor data extension."""
        model = served(self.store.current(), name, version)
        manifest = model.manifest
        args = (body, header_length, manifest.input.name, manifest.output.name)
        try:
            if len(body) <= INLINE_PARSE_BYTES:
                parsed = parse_request(*args)
            else:
                parsed = await anyio.to_thread.run_sync(LARGE_PARSER.parse_request, *args, limiter=LARGE_PARSES)
        except ProtocolError as exc:
            raise ClientError(400, str(exc)) from None
        probabilities = await self.run(model, parsed.pixels)
        self.count(model, probabilities)
        content, headers = encode_response(
            model_name=manifest.name,
            model_version=model.version,
            request_id=parsed.id,
            output_name=manifest.output.name,
            probabilities=probabilities,
            binary=parsed.binary_output,
        )
        return Reply(200, content, (*headers, ("x-model-version", model.version)))


Match = re.Match[str] | None
Handler = Callable[[Predictions, bytes, Mapping[str, str], Match], Awaitable[Reply]]
INFER_PATH = re.compile(r"/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?/infer")


async def _predict(
    predictions: Predictions, body: bytes, headers: Mapping[str, str], match: re.Match[str] | None
) -> Reply:
    return await predictions.predict(body, headers.get("content-type"))


async def _predict_batch(
    predictions: Predictions, body: bytes, headers: Mapping[str, str], match: re.Match[str] | None
) -> Reply:
    return await predictions.predict_batch(body, headers.get("content-type"))


async def _infer(predictions: Predictions, body: bytes, headers: Mapping[str, str], match: Match) -> Reply:
    assert match is not None  # noqa: S101 - the shortcut matched the path before it chose this handler
    return await predictions.infer(body, headers.get(HEADER_LENGTH), match["name"], match["version"])


class Shortcut:
    """The busiest routes, reached without FastAPI's routing: POST /predict, /predict/batch and V2 infer.

    It only decides where a request goes. The request is then what the documented route would
    have made of it (the same `Predictions` method, the same errors), counted in the metrics
    under the documented route's path. Anything else, a path parameter beyond the documented
    bounds included, is left to FastAPI.
    """

    # Path -> (handler, the documented route's path, which the metrics count it under).
    EXACT: ClassVar[dict[str, tuple[Handler, str]]] = {
        "/predict": (_predict, "/predict"),
        "/predict/batch": (_predict_batch, "/predict/batch"),
    }
    INFER_ROUTES = ("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer")

    def __init__(self, predictions: Predictions) -> None:
        self.predictions = predictions

    def route(self, scope: Scope) -> tuple[Handler, str, Match] | None:
        """The handler and the documented route path of a request the shortcut takes, else None."""
        if scope["method"] != "POST":
            return None
        path: str = scope["path"]
        root = scope.get("root_path", "")
        if root:
            path = path.removeprefix(root)
        found = self.EXACT.get(path)
        if found is not None:
            return found[0], found[1], None
        match = INFER_PATH.fullmatch(path)
        if match is None or len(match["name"]) > MAX_NAME or len(match["version"] or "") > MAX_VERSION:
            return None
        return _infer, self.INFER_ROUTES[match["version"] is not None], match

    async def handle(self, receive: Receive, handler: Handler, match: Match, headers: Mapping[str, str]) -> Reply:
        """The request's body read whole, then answered by `handler`.

        `headers`: the request's, a header sent twice read by its first value (Starlette's Headers
        as the middleware has them, as the documented routes read them).
        """
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                # The client left before its body was whole: nothing to answer, as Starlette's
                # request.body() decides for the documented routes.
                raise ClientDisconnect
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        return await handler(self.predictions, b"".join(chunks), headers, match)
