"""Every error is a JSON body that says what was wrong; client input never produces a 5xx.

Contract routes answer `{"detail": ...}` (422 invalid, 413 too large, 415 wrong type, 503 not
ready); the Open Inference Protocol routes answer `{"error": ...}` as its clients expect.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from digit_api.preprocess import PreprocessError
from digit_api.store import NotReady

logger = logging.getLogger(__name__)

MAX_LISTED_ERRORS = 20
# Tags of the tagged union in schemas.PredictBody: noise in a location a client reads.
UNION_TAGS = {"object", "array"}


def is_v2(request: Request) -> bool:
    """An Open Inference Protocol route, reached directly or under /api."""
    path, root = request.scope["path"], request.scope.get("root_path", "")
    return path.removeprefix(root).startswith("/v2/")


def problem(request: Request, status: int, detail: str, errors: list[dict[str, Any]] | None = None) -> JSONResponse:
    if is_v2(request):
        # The protocol's clients expect {"error": ...}, and 400 for a request they got wrong.
        return JSONResponse({"error": detail}, status_code=400 if status == 422 else status)
    body: dict[str, Any] = {"detail": detail}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status)


def where(loc: tuple | list) -> str:
    """('body', 'object', 'pixels', 12) -> 'pixels[12]'."""
    text = ""
    for part in loc:
        if part == "array":  # the bare-array form of /predict: its items are the pixels
            text = "pixels"
            continue
        if (part == "body" and not text) or part in UNION_TAGS:
            continue
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def describe(error: dict[str, Any]) -> str:
    message = error["msg"]
    if error["type"] == "json_invalid":
        return f"body is not valid JSON: {error.get('ctx', {}).get('error', message)}"
    if error["type"] == "missing" and tuple(error["loc"]) == ("body",):
        return "body is empty: send JSON"
    return f"{where(error['loc'])}: {message}"


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    listed = [{"loc": where(e["loc"]), "msg": e["msg"]} for e in errors[:MAX_LISTED_ERRORS]]
    summary = describe(errors[0]) if errors else "invalid request"
    if len(errors) > 1:
        summary += f" (and {len(errors) - 1} more)"
    return problem(request, 422, summary, listed)


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    response = problem(request, exc.status_code, str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def not_ready(request: Request, exc: NotReady) -> JSONResponse:
    return problem(request, 503, f"no model is ready: {exc}")


async def unprocessable_image(request: Request, exc: PreprocessError) -> JSONResponse:
    return problem(request, 422, str(exc))


async def unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(request, 500, "internal error; the request id in X-Request-Id finds it in the logs")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(NotReady, not_ready)
    app.add_exception_handler(PreprocessError, unprocessable_image)
    app.add_exception_handler(Exception, unexpected)
