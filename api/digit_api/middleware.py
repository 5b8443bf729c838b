"""One pure-ASGI layer around the app: the /api prefix, request ids, X-Model-Version, the body
limit, compressed request bodies, metrics and the access log, and the shortcut to the prediction
path for the busiest routes (serving.py). Pure ASGI because Starlette's BaseHTTPMiddleware costs
a task per request on the hot path."""

from __future__ import annotations

import logging
import random
import re
import time
import zlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digit_api.errors import REFUSED, error_body, refusal
from digit_api.logs import REQUEST_ID_PATTERN, request_id
from digit_api.metrics import ServiceMetrics
from digit_api.serving import Reply, Shortcut
from digit_api.store import ModelStore

access_log = logging.getLogger("digit_api.access")
logger = logging.getLogger(__name__)

API_PREFIX = "/api"
CLIENT_CLOSED_REQUEST = 499
# The methods the routes answer; any other is counted as "other", so a scanner sending PROPFIND,
# MKCOL, ... cannot make a new series per method.
COUNTED_METHODS = frozenset({"GET", "HEAD", "POST"})
# Content codings of request bodies (tritonclient's request_compression_algorithm sends them).
# zlib's window bits: 16 + 15 reads a gzip stream, 15 a zlib stream, -15 a raw deflate stream.
GZIP_WBITS, ZLIB_WBITS, RAW_DEFLATE_WBITS = 16 + zlib.MAX_WBITS, zlib.MAX_WBITS, -zlib.MAX_WBITS
CODINGS = ("gzip", "x-gzip", "deflate")
# A client's X-Request-Id is kept only if it is short and plain, so logs cannot be forged with it.
VALID_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a body without (or with a false) Content-Length grows past the limit.

    An HTTPException, because FastAPI turns any other error met while reading a body into a 400.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large_message(limit))


class BodyNotDecodable(HTTPException):
    """A compressed body that does not decompress: the client's error, worded like the others."""

    def __init__(self, coding: str, reason: str) -> None:
        super().__init__(422, f"body is not valid {coding} data: {reason}")


class Inflater:
    """Decompresses one request body as it arrives, never holding more than the body limit.

    `max_length` stops zlib at the limit, so a small compressed body that would inflate to
    gigabytes (a compression bomb) costs at most the limit in memory before its 413.
    """

    def __init__(self, coding: str, limit: int) -> None:
        self.coding = "gzip" if coding == "x-gzip" else coding
        self.limit = limit
        self.size = 0
        self._zlib: zlib._Decompress | None = None

    def feed(self, data: bytes, last: bool) -> bytes:
        if self._zlib is None:
            if not data and not last:
                return b""
            self._zlib = zlib.decompressobj(self._wbits(data))
        try:
            out = self._zlib.decompress(data, self.limit - self.size + 1)
            if last:
                out += self._zlib.flush()
        except zlib.error as exc:
            raise BodyNotDecodable(self.coding, str(exc)) from None
        self.size += len(out)
        if self.size > self.limit:
            raise BodyTooLarge(self.limit)
        if last and not self._zlib.eof:
            raise BodyNotDecodable(self.coding, "the compressed stream ends early")
        if self._zlib.eof and self._zlib.unused_data:
            raise BodyNotDecodable(self.coding, "data after the end of the compressed stream")
        return out

    def _wbits(self, first: bytes) -> int:
        if self.coding == "gzip":
            return GZIP_WBITS
        # "deflate" is the zlib format (RFC 9110), but some clients send a raw deflate stream:
        # a zlib stream starts with a header whose first two bytes are a multiple of 31.
        is_zlib = len(first) >= 2 and first[0] & 0x0F == 8 and (first[0] << 8 | first[1]) % 31 == 0
        return ZLIB_WBITS if is_zlib or len(first) < 2 else RAW_DEFLATE_WBITS


class ServiceMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        store: ModelStore,
        metrics: ServiceMetrics,
        max_body_bytes: int,
        shortcut: Shortcut | None = None,
        plain_routes: Mapping[Any, str] | None = None,
    ) -> None:
        self.app = app
        self.store = store
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.shortcut = shortcut
        # Starlette's own routes (the docs, /openapi.json, the page and its folders) set no
        # scope["route"]: their endpoint -> path, so they are counted under their path too.
        self.plain_routes = plain_routes if plain_routes is not None else {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        scope = under_prefix(scope)
        headers = Headers(scope=scope)
        rid = request_id_of(headers)
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500
        route_path: str | None = None
        store = self.store

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                set_response_headers(message, rid, store.version, headers, scope)
            await send(message)

        started_response = False

        async def send_tracked(message: Message) -> None:
            nonlocal started_response
            started_response = True
            await send_with_headers(message)

        try:
            coding = headers.get("content-encoding", "identity").strip().lower()
            refused = self._refusal(headers, coding)
            if refused is not None:
                await self._reply(send_with_headers, scope, *refused)
            else:
                chosen = self.shortcut.route(scope) if self.shortcut is not None else None
                scope, inflater = self._decoding(scope, coding)
                if chosen is not None:
                    # Counted under the documented route's path, as FastAPI's routing would have it.
                    route_path = chosen[1]
                    status = await self._shortcut(
                        scope, self._limited(receive, inflater), send, rid, chosen, headers=headers
                    )
                else:
                    await self.app(scope, self._limited(receive, inflater), send_tracked)
        except ClientDisconnect:
            # The client went away mid-body: no answer can reach it, and it is no server error.
            # Counted as nginx counts it, 499 "client closed request".
            status = CLIENT_CLOSED_REQUEST
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
            self._account(scope, path, route_path, status, time.perf_counter() - started)
            request_id.reset(token)

    def _account(self, scope: Scope, path: str, route_path: str | None, status: int, elapsed: float) -> None:
        """The request in the metrics (under its route) and in the access log."""
        if route_path is None:
            route_path = getattr(scope.get("route"), "path", None) or self.plain_routes.get(scope.get("endpoint"))
            route_path = route_path or "unmatched"
        method = scope["method"] if scope["method"] in COUNTED_METHODS else "other"
        self.metrics.observe_request(method, route_path, status, elapsed)
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

    async def _shortcut(
        self, scope: Scope, receive: Receive, send: Send, rid: str, chosen: tuple[Any, ...], *, headers: Headers
    ) -> int:
        """The prediction path without FastAPI, its refusals answered as FastAPI's handlers answer them: the status."""
        reply = await self._shortcut_reply(scope, receive, chosen, headers)
        await send_reply(send, reply, rid, self.store.version)
        return reply.status

    async def _shortcut_reply(self, scope: Scope, receive: Receive, chosen: tuple[Any, ...], headers: Headers) -> Reply:
        assert self.shortcut is not None  # noqa: S101 - it chose the route
        handler, _, match = chosen
        try:
            return await self.shortcut.handle(receive, handler, match, headers)
        except REFUSED as exc:
            error = refusal(exc)
        status, body = error_body(scope, error.status, error.detail, error.errors)
        sent = (("content-type", "application/json"), *((k.lower(), v) for k, v in error.headers.items()))
        return Reply(status, body, sent)

    def _refusal(self, headers: Headers, coding: str) -> tuple[int, str] | None:
        """A request refused on its headers alone: a body declared too large, or in a coding not read."""
        length = headers.get("content-length")
        # ASCII digits only ("²" is a digit to isdigit()); a 19-digit length is over any limit, and
        # int() refuses strings of over 4,300 digits.
        if (
            length is not None
            and length.isascii()
            and length.isdigit()
            and (len(length) > 18 or int(length) > self.max_body_bytes)
        ):
            return 413, too_large_message(self.max_body_bytes)
        if coding not in ("identity", "", *CODINGS):
            return 415, f"Content-Encoding {coding[:40]!r} is not supported: send gzip, deflate or identity"
        return None

    def _decoding(self, scope: Scope, coding: str) -> tuple[Scope, Inflater | None]:
        """The scope the routes see and the inflater of a body in `coding` (None for a plain one)."""
        if coding not in CODINGS:
            return scope, None
        # The routes read the decompressed body: its coding and length are no longer true.
        scope = {**scope, "headers": without(scope["headers"], (b"content-encoding", b"content-length"))}
        return scope, Inflater(coding, self.max_body_bytes)

    def _limited(self, receive: Receive, inflater: Inflater | None) -> Receive:
        received = 0
        limit = self.max_body_bytes

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                received += len(body)
                if received > limit:
                    raise BodyTooLarge(limit)
                if inflater is not None:
                    message = {**message, "body": inflater.feed(body, last=not message.get("more_body", False))}
            return message

        return limited_receive

    async def _reply(self, send: Send, scope: Scope, status: int, message: str) -> None:
        """A JSON error sent from here, in the body shape of the route's protocol."""
        status, body = error_body(scope, status, message)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def send_reply(send: Send, reply: Reply, rid: str, version: str | None) -> None:
    """A reply of the prediction path, with what the middleware adds to every response."""
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in reply.headers]
    if not any(name == "x-model-version" for name, _ in reply.headers):
        headers.append((b"x-model-version", (version or "none").encode()))
    headers += [(b"content-length", str(len(reply.body)).encode()), (b"x-request-id", rid.encode())]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


def set_response_headers(start: Message, rid: str, version: str | None, request: Headers, scope: Scope) -> None:
    """What every answer carries: the request id, the model version, and a Location that is a path."""
    out = MutableHeaders(scope=start)
    out["X-Request-Id"] = rid
    if 300 <= start["status"] < 400 and "location" in out:
        out["Location"] = relative_location(out["location"], request, scope)
    # Prediction routes name the model that answered; the rest report the one in service.
    if "x-model-version" not in out:
        out["X-Model-Version"] = version or "none"


def relative_location(location: str, headers: Headers, scope: Scope) -> str:
    """A redirect the app built from the request's Host header, as a path; any other as it is.

    Starlette's redirects (a trailing slash added or dropped, a page folder) are absolute URLs made
    from the client's Host: a forged Host sends the client elsewhere, and behind TLS or on another
    port the scheme and port are wrong. A path (and query) is resolved by the client against the
    URL it asked for, which is right wherever the service stands.
    """
    parts = urlsplit(location)
    # Starlette's own choice: the Host header, or without one the address the server listens on.
    server = scope.get("server") or ("", None)
    built_from = {headers.get("host", "").lower()} if headers.get("host") else {server[0], f"{server[0]}:{server[1]}"}
    if not parts.netloc or parts.netloc.lower() not in built_from:
        return location
    # One leading slash: "//x" would be read as a host.
    return urlunsplit(("", "", "/" + parts.path.lstrip("/"), parts.query, parts.fragment))


def under_prefix(scope: Scope) -> Scope:
    """The scope a request under the API's one canonical prefix is routed with.

    The page uses the same relative URLs behind nginx (which passes /api/... on as it is) and
    here. Routing under a root_path makes /api/predict reach /predict and /api/docs find its
    schema; it strips the prefix once, so /api/api/metrics is a 404, not the metrics again.
    """
    path: str = scope["path"]
    if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
        return {**scope, "root_path": scope.get("root_path", "") + API_PREFIX}
    return scope


def request_id_of(headers: Headers) -> str:
    """The client's X-Request-Id if it is short and plain, else a new one."""
    given = headers.get("x-request-id", "")
    # Ids only need to be unique, not secret: a PRNG draw is cheaper than a syscall per request.
    return given if VALID_REQUEST_ID.fullmatch(given) else f"{random.getrandbits(128):032x}"


def without(headers: list[tuple[bytes, bytes]], names: tuple[bytes, ...]) -> list[tuple[bytes, bytes]]:
    return [(name, value) for name, value in headers if name.lower() not in names]


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
