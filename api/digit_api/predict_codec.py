"""The contract's prediction bodies: `{"pixels": [784]}` (or the bare array) and `{"instances": [[784], ...]}`
in, answers out.

The hot path reads a body with simdjson straight into NumPy (no Python object per number) and
checks the contract with NumPy: a body that passes is as pydantic would accept it. Anything else,
whatever is wrong with it, goes to pydantic (schemas.py), whose errors are the ones the client
reads, worded the same for every body: the fast reader only ever says "valid", never why not.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import simdjson
from pydantic import TypeAdapter, ValidationError

from digit_api.config import MAX_BATCH
from digit_api.errors import ClientError, invalid_body
from digit_api.jsonread import JSON_WHITESPACE, parser
from digit_api.schemas import BatchIn, PredictBody, PredictBodyFast
from digit_release.manifest import PIXELS

PREDICT_BODY = TypeAdapter(PredictBody)
PREDICT_BODY_FAST = TypeAdapter(PredictBodyFast)
BATCH_BODY = TypeAdapter(BatchIn)
BOM = b"\xef\xbb\xbf"


def _numbers(array: Any, count: int, brackets: int, rows: int | None = None) -> np.ndarray | None:
    """The numbers of a JSON array as float32, if it is exactly what the contract asks for: `count`
    numbers from 0 to 255, flat (or, with `rows`, that many flat rows); None otherwise.

    `brackets`: how many "[" the body holds. The body's one key is the array's name (or the body
    is the array) and the array holds only numbers once as_buffer has read it, so every "[" is a
    list's own: a flat array has one, N flat rows N + 1.
    """
    if not isinstance(array, simdjson.Array):
        return None
    try:
        values = np.frombuffer(array.as_buffer(of_type="d"), dtype=np.float64)
    except (TypeError, ValueError):  # an element that is no number: a string, true, null, an object
        return None
    # Lists inside lists are flattened by as_buffer: the brackets tell the nesting.
    if values.size != count or brackets != (1 + rows if rows else 1):
        return None
    if rows and (
        len(array) != rows or not all(isinstance(row, simdjson.Array) and len(row) == PIXELS for row in array)
    ):
        return None
    # JSON has no NaN or Infinity, and simdjson refuses numbers beyond a double: all are finite.
    if values.min() < 0 or values.max() > 255:
        return None
    return values.astype(np.float32)


def _parse(body: bytes) -> Any:
    """simdjson's document of a body, or None for one it does not read as pydantic would."""
    # simdjson skips a byte order mark, pydantic refuses it (RFC 8259 allows either): the one
    # answer the service gives is pydantic's, so a body with one takes the slow path to its 422.
    if body.startswith(BOM):
        return None
    try:
        return parser().parse(body)
    except (ValueError, RuntimeError):
        return None


def read_pixels(body: bytes) -> np.ndarray:
    """The 784 pixels of a /predict body, shape (1, 784) float32; ClientError(422) naming the problem."""
    document = _parse(body)
    try:
        if isinstance(document, simdjson.Object) and len(document) == 1:
            document = document.get("pixels")
        pixels = _numbers(document, PIXELS, body.count(b"[")) if document is not None else None
    finally:
        del document
    if pixels is not None:
        return pixels.reshape(1, PIXELS)
    parsed = checked_body(body, PREDICT_BODY_FAST, PREDICT_BODY)
    return np.asarray(parsed if isinstance(parsed, list) else parsed.pixels, dtype=np.float32).reshape(1, PIXELS)


def read_instances(body: bytes) -> np.ndarray:
    """The digits of a /predict/batch body, shape (N, 784) float32; ClientError(422) naming the problem."""
    document = _parse(body)
    try:
        instances = document.get("instances") if isinstance(document, simdjson.Object) and len(document) == 1 else None
        rows = len(instances) if isinstance(instances, simdjson.Array) else 0
        pixels = _numbers(instances, rows * PIXELS, body.count(b"["), rows) if 1 <= rows <= MAX_BATCH else None
    finally:
        del document
        instances = None
    if pixels is not None:
        return pixels.reshape(rows, PIXELS)
    return np.asarray(checked_body(body, BATCH_BODY, None).instances, dtype=np.float32).reshape(-1, PIXELS)


def checked_body(body: bytes, adapter: TypeAdapter[Any], explain: TypeAdapter[Any] | None = None) -> Any:
    """What pydantic makes of a JSON body (one the fast reader did not take): its value, or its errors.

    `explain`: a stricter model whose errors say more, asked only when `adapter` refuses the body.
    """
    if not body.strip(JSON_WHITESPACE):
        raise ClientError(422, "body is empty: send JSON", [{"loc": "body", "msg": "Field required"}])
    try:
        return adapter.validate_json(body)
    except ValidationError as exc:
        error = exc
    if explain is not None:
        try:
            explain.validate_json(body)
        except ValidationError as exc:
            error = exc
    raise invalid_body(error)


def answers(labels: list[str], probabilities: np.ndarray) -> list[dict[str, Any]]:
    """One answer per row: the predicted digit, its probability, all the probabilities."""
    best = probabilities.argmax(axis=1).tolist()
    rows = probabilities.tolist()
    return [
        {"prediction": int(labels[i]), "probability": row[i], "probabilities": row}
        for i, row in zip(best, rows, strict=True)
    ]


def encode(document: Any) -> bytes:
    """A response body: orjson prints each float as its shortest exact form, as json does."""
    return orjson.dumps(document)
