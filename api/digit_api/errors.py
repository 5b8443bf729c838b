"""Every error is a JSON body that says what was wrong; client input never produces a 5xx.

Contract routes answer `{"detail": ...}` (422 invalid, 413 too large, 415 wrong type, 503 not
ready); the Open Inference Protocol routes answer `{"error": ...}` as its clients expect, and 400
where the contract says 422. `error_body` is the one place that decides; FastAPI's exception
handlers, the prediction path and the service middleware all go through it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.types import Scope

from digit_api.preprocess import PreprocessError
from digit_api.store import NotReady

MAX_LISTED_ERRORS = 20
JSON = "application/json"


class ClientError(Exception):
    """A request refused with `status` and a message that names the problem (and, for 422, each error)."""

    def __init__(
        self,
        status: int,
        detail: str,
        errors: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.detail, self.errors = status, detail, errors
        self.headers = dict(headers or {})


def is_v2_path(scope: Scope) -> bool:
    """An Open Inference Protocol route, reached directly or under /api."""
    path: str = scope["path"]
    return path.removeprefix(scope.get("root_path", "")).startswith("/v2/")


def error_body(scope: Scope, status: int, detail: str, errors: list[dict[str, Any]] | None = None) -> tuple[int, bytes]:
    """The status and JSON body of an error, in the shape of the route's protocol."""
    if is_v2_path(scope):
        # The protocol's clients expect {"error": ...}, and 400 for a request they got wrong.
        return (400 if status == 422 else status), dumps({"error": detail})
    body: dict[str, Any] = {"detail": detail}
    if errors is not None:
        body["errors"] = errors
    return status, dumps(body)


def dumps(document: Any) -> bytes:
    """JSON as Starlette's JSONResponse writes it (compact, UTF-8), for every error body."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def error_response(scope: Scope, error: ClientError) -> Response:
    status, body = error_body(scope, error.status, error.detail, error.errors)
    return Response(body, status_code=status, media_type=JSON, headers=error.headers)


def where(loc: tuple[Any, ...] | list[Any]) -> str:
    """('body', 'object', 'pixels', 12) -> 'pixels[12]'; ('body', 'array', 3) -> 'pixels[3]'."""
    parts = list(loc)
    if parts[:1] == ["body"]:
        parts = parts[1:]
        # Only right after "body" is a name the tag of schemas.PredictBody's union, not a field.
        if parts[:1] == ["array"]:
            parts[0] = "pixels"  # the bare-array form of /predict: its items are the pixels
        elif parts[:1] == ["object"]:
            parts = parts[1:]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def describe(error: dict[str, Any]) -> str:
    message: str = error["msg"]
    if error["type"] == "json_invalid":
        return f"body is not valid JSON: {error.get('ctx', {}).get('error', message)}"
    if error["type"] == "missing" and tuple(error["loc"]) == ("body",):
        return "body is empty: send JSON"
    return f"{where(error['loc'])}: {message}"


def invalid(errors: list[dict[str, Any]]) -> ClientError:
    """A 422 from validation errors (pydantic's, located as FastAPI locates body errors)."""
    listed = [{"loc": where(e["loc"]), "msg": e["msg"]} for e in errors[:MAX_LISTED_ERRORS]]
    summary = describe(errors[0]) if errors else "invalid request"
    if len(errors) > 1:
        summary += f" (and {len(errors) - 1} more)"
    return ClientError(422, summary, listed)


def invalid_body(exc: ValidationError, prefix: tuple[str, ...] = ("body",)) -> ClientError:
    """A 422 from pydantic's errors on a request body."""
    return invalid([{**e, "loc": (*prefix, *e["loc"])} for e in exc.errors(include_url=False, include_input=False)])


def refusal(exc: Exception) -> ClientError:
    """The refusal an exception stands for, the same whichever door the request came through."""
    if isinstance(exc, ClientError):
        return exc
    if isinstance(exc, RequestValidationError):
        return invalid(list(exc.errors()))
    if isinstance(exc, HTTPException):  # the body limit's 413, a body that does not decompress, 404s
        return ClientError(exc.status_code, str(exc.detail), headers=exc.headers)
    if isinstance(exc, NotReady):
        return ClientError(503, f"no model is ready: {exc}")
    if isinstance(exc, PreprocessError):
        return ClientError(422, str(exc))
    raise TypeError(f"{type(exc).__name__} is not a refusal") from exc


# What `refusal` answers; anything else raised by a route is a 500.
REFUSED = (ClientError, RequestValidationError, HTTPException, NotReady, PreprocessError)


async def handle(request: Request, exc: Exception) -> Response:
    """FastAPI's exception handler for every refusal."""
    return error_response(request.scope, refusal(exc))


def install(app: FastAPI) -> None:
    for kind in REFUSED:
        app.add_exception_handler(kind, handle)
