"""One pure-ASGI layer around the app: the /api prefix, request ids, X-Model-Version, the body
limit, metrics and the access log. Pure ASGI because Starlette's BaseHTTPMiddleware costs a task
per request on the hot path."""

from __future__ import annotations

import json
import logging
import random
import re
import time

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digit_api.logs import request_id
from digit_api.metrics import Metrics
from digit_api.store import ModelStore

access_log = logging.getLogger("digit_api.access")
logger = logging.getLogger(__name__)

API_PREFIX = "/api"
# A client's X-Request-Id is kept only if it is short and plain, so logs cannot be forged with it.
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a body without (or with a false) Content-Length grows past the limit.

    An HTTPException, because FastAPI turns any other error met while reading a body into a 400.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large_message(limit))


class ServiceMiddleware:
    def __init__(self, app: ASGIApp, store: ModelStore, metrics: Metrics, max_body_bytes: int) -> None:
        self.app = app
        self.store = store
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
            # The page uses the same relative URLs behind nginx (which strips /api) and here: routing
            # under a root_path makes /api/predict reach /predict, and /api/docs find its schema.
            scope = {**scope, "root_path": scope.get("root_path", "") + API_PREFIX}
        headers = Headers(scope=scope)
        given = headers.get("x-request-id", "")
        # Ids only need to be unique, not secret: a PRNG draw is cheaper than a syscall per request.
        rid = given if VALID_REQUEST_ID.fullmatch(given) else f"{random.getrandbits(128):032x}"
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500
        store = self.store

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                out = MutableHeaders(scope=message)
                out["X-Request-Id"] = rid
                # Prediction routes name the model that answered; the rest report the one in service.
                if "x-model-version" not in out:
                    out["X-Model-Version"] = store.version or "none"
            await send(message)

        started_response = False

        async def send_tracked(message: Message) -> None:
            nonlocal started_response
            started_response = True
            await send_with_headers(message)

        try:
            length = headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
                await self._reply(send_with_headers, scope, 413, too_large_message(self.max_body_bytes))
            else:
                await self.app(scope, self._limited(receive), send_tracked)
        except Exception:
            # Handled here, inside the request's context, so the 500 carries the request id (in
            # the log line and the headers) like every other response.
            logger.exception("unhandled error on %s %s", scope["method"], path)
            if started_response:
                raise
            await self._reply(
                send_with_headers, scope, 500, "internal error; the X-Request-Id of this response finds it in the logs"
            )
        finally:
            route = scope.get("route")
            route_path = getattr(route, "path", None) or "unmatched"
            elapsed = time.perf_counter() - started
            self.metrics.observe_request(scope["method"], route_path, status, elapsed)
            level = access_level(status)
            if access_log.isEnabledFor(level):
                access_log.log(
                    level,
                    "%s %s %d %.2fms",
                    scope["method"],
                    path,
                    status,
                    elapsed * 1000,
                    extra={"method": scope["method"], "path": path, "status": status, "duration_ms": elapsed * 1000},
                )
            request_id.reset(token)

    def _limited(self, receive: Receive) -> Receive:
        received = 0
        limit = self.max_body_bytes

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        return limited_receive

    async def _reply(self, send: Send, scope: Scope, status: int, message: str) -> None:
        """A JSON error sent from here, in the body shape of the route's protocol."""
        key = "error" if is_v2_path(scope) else "detail"
        body = json.dumps({key: message}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


def is_v2_path(scope: Scope) -> bool:
    """An Open Inference Protocol route, reached directly or under /api."""
    return scope["path"].removeprefix(scope.get("root_path", "")).startswith("/v2/")


def access_level(status: int) -> int:
    """Successes at DEBUG, client errors at INFO, server errors at WARNING.

    nginx in front logs every request with the same X-Request-Id; at the default level the API
    logs what needs a look, and a line per success would cost a tenth of its throughput.
    """
    if status < 400:
        return logging.DEBUG
    return logging.INFO if status < 500 else logging.WARNING


def too_large_message(limit: int) -> str:
    return f"request body is larger than the limit of {limit} bytes"
