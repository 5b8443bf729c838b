"""Schemathesis hooks (SCHEMATHESIS_HOOKS): what JSON Schema cannot say about a valid request.

`schemathesis run --checks all` holds the service to its OpenAPI document both ways: what the
schema allows must be accepted (positive_data_acceptance) and what it forbids refused
(negative_data_rejection). Two rules of a valid request are beyond any schema, so schemathesis
is taught them here, and a case stays as valid or invalid under the schema as it was generated:

- an image upload holds an image of a digit (the schema can only say "a PNG" or "base64"):
  held-out digits, drawn as a user would (PNG or JPEG), fill the upload's part or the
  base64 string;
- a V2 tensor's data holds N x 784 numbers laid out as its shape says (JSON Schema has no
  arithmetic to tie the length of `data` to `shape[0]`): the generated numbers are repeated or
  cut to that count and nested as the shape, when they came nested;
- a body fits the 2 MiB limit (a size in bytes, which no schema of numbers can bound): a valid
  tensor's numbers are written with two decimals at most (still numbers in range, as valid);
- a verdict is on a drawing, not a blank canvas (there is nothing to learn from one): a valid
  verdict whose pixels are all blank gets one pixel of ink.
"""

from __future__ import annotations

import base64
import io
import itertools
import re
from functools import cache
from typing import Any

import numpy as np
import schemathesis
from hypothesis import strategies as st
from PIL import Image

from digit_api.schemas import BASE64_IMAGE


@cache
def digits() -> np.ndarray:
    from digit_testing.releases import held_out

    images, _ = held_out()
    return images[:64]


def image_bytes(seed: int) -> bytes:
    """A held-out digit as a drawing: enlarged, dark ink on white, PNG or JPEG."""
    image = digits()[seed % len(digits())]
    big = 255 - np.kron(image, np.ones((8, 8), dtype=np.uint8))
    buffer = io.BytesIO()
    Image.fromarray(big).save(buffer, format="PNG" if seed % 2 == 0 else "JPEG", quality=95)
    return buffer.getvalue()


def flat(data: Any) -> list:
    return list(itertools.chain.from_iterable(flat(item) for item in data)) if isinstance(data, list) else [data]


def nest(values: list, shape: list[int]) -> list:
    return np.asarray(values, dtype=object).reshape([int(size) for size in shape]).tolist()


def fit_tensor(tensor: dict) -> None:
    shape = tensor.get("shape")
    data = tensor.get("data")
    if not isinstance(shape, list) or not isinstance(data, list) or not data:
        return
    values = flat(data)
    need = int(shape[0]) * 784  # JSON Schema's integers include 2.0
    values = (values * -(-need // len(values)))[:need]
    values = [round(value, 2) if isinstance(value, float) else value for value in values]
    tensor["data"] = nest(values, shape) if isinstance(data[0], list) else values


def with_a_real_image(body: dict) -> dict:
    """A JSON upload whose image_base64 is well formed, with a digit's image in it.

    Only a value that already matches the documented pattern is replaced (by one that matches it
    too), so a body stays as valid or invalid as it was generated.
    """
    text = body.get("image_base64")
    if not (isinstance(text, str) and re.fullmatch(BASE64_IMAGE, text)):
        return body
    seed = len(text)
    encoded = base64.b64encode(image_bytes(seed)).decode()
    kind = "png" if seed % 2 == 0 else "jpeg"
    return {**body, "image_base64": f"data:image/{kind};base64,{encoded}" if text.startswith("data:") else encoded}


# Multipart uploads: the document names the part's media types (image/png, image/jpeg), and
# schemathesis takes the content of such a part from a strategy registered for the type.
schemathesis.openapi.media_type("image/png", st.integers(0, 1 << 16).map(lambda seed: image_bytes(2 * seed)))
schemathesis.openapi.media_type("image/jpeg", st.integers(0, 1 << 16).map(lambda seed: image_bytes(2 * seed + 1)))


@schemathesis.hook
def map_case(context: schemathesis.HookContext, case: schemathesis.Case) -> schemathesis.Case:
    """An image in base64 that is one, and a valid V2 request's data fitted to its shape.

    Schemathesis validates a case again after a hook changed it, so a case that a change made
    invalid would be counted as such: these changes keep a case as valid or invalid as it was.
    """
    if not isinstance(case.body, dict):
        return case
    if case.operation.path == "/predict/image" and "image_base64" in case.body:
        case.body = with_a_real_image(case.body)
        return case
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return case
    if case.operation.path.endswith("/infer"):
        for tensor in case.body.get("inputs") or []:
            if isinstance(tensor, dict):
                fit_tensor(tensor)
    if case.operation.path == "/feedback":
        pixels = case.body.get("pixels")
        if isinstance(pixels, list) and pixels and all(isinstance(p, (int, float)) and p <= 0.5 for p in pixels):
            case.body = {**case.body, "pixels": [255, *pixels[1:]]}
    return case
