"""Every error is a JSON body that says what was wrong; client input never produces a 5xx.

Contract routes answer `{"detail": ...}` (422 invalid, 413 too large, 415 wrong type, 503 not
ready); the Open Inference Protocol routes answer `{"error": ...}` as its clients expect.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from digit_api.middleware import is_v2_path
from digit_api.preprocess import PreprocessError
from digit_api.store import NotReady

MAX_LISTED_ERRORS = 20


def problem(request: Request, status: int, detail: str, errors: list[dict[str, Any]] | None = None) -> JSONResponse:
    if is_v2_path(request.scope):
        # The protocol's clients expect {"error": ...}, and 400 for a request they got wrong.
        return JSONResponse({"error": detail}, status_code=400 if status == 422 else status)
    body: dict[str, Any] = {"detail": detail}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status)


def where(loc: tuple | list) -> str:
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


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(NotReady, not_ready)
    app.add_exception_handler(PreprocessError, unprocessable_image)
