"""The contract's prediction routes: one digit, a batch, an image."""

from __future__ import annotations

import base64
from typing import Annotated

import anyio
import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from digit_api.deps import ServingDep, is_json, json_body, media_type, openapi_body, validation_errors
from digit_api.preprocess import image_to_pixels
from digit_api.schemas import (
    BatchIn,
    BatchPrediction,
    ImageIn,
    ImagePrediction,
    PredictBody,
    PredictBodyFast,
    Prediction,
    Problem,
)

router = APIRouter(tags=["predict"])
# A 4096x4096 upload takes a few hundred MB while it is decoded: two at a time bound the memory
# a burst of uploads can take, and keep threads free for the other routes.
IMAGE_DECODES = anyio.CapacityLimiter(2)

ERRORS = {status: {"model": Problem} for status in (413, 415, 422, 503)}
IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "image": {"type": "string", "format": "binary", "description": "a PNG or JPEG of a digit"}
                    },
                    "required": ["image"],
                    "additionalProperties": False,
                },
                "encoding": {"image": {"contentType": "image/png, image/jpeg"}},
            },
            "application/json": {"schema": ImageIn.model_json_schema()},
        },
    }
}


PREDICT_BODY = TypeAdapter(PredictBody)
PREDICT_BODY_FAST = TypeAdapter(PredictBodyFast)
BATCH_BODY = TypeAdapter(BatchIn)


@router.post("/predict", response_model=Prediction, responses=ERRORS, openapi_extra=openapi_body(PREDICT_BODY))
async def predict(
    body: Annotated[BaseModel | list[float], Depends(json_body(PREDICT_BODY_FAST, explain=PREDICT_BODY))],
    serving: ServingDep,
    response: Response,
) -> dict:
    """Classify one digit: `{"pixels": [784 numbers]}` or the bare array of 784 numbers."""
    pixels = body if isinstance(body, list) else body.pixels
    # One digit is ~0.1 ms of LiteRT: cheaper on the event loop than a hop to the thread pool.
    model = serving.model
    [answer] = serving.answer(model.predict(np.asarray(pixels, dtype=np.float32)[None]))
    response.headers["X-Model-Version"] = model.version
    return {**answer, "model_version": model.version}


@router.post("/predict/batch", response_model=BatchPrediction, responses=ERRORS, openapi_extra=openapi_body(BATCH_BODY))
async def predict_batch(
    body: Annotated[BatchIn, Depends(json_body(BATCH_BODY))], serving: ServingDep, response: Response
) -> dict:
    """Classify up to 128 digits at once: `{"instances": [[784 numbers], ...]}`."""
    model = serving.model
    probabilities = await serving.predict(np.asarray(body.instances, dtype=np.float32))
    response.headers["X-Model-Version"] = model.version
    return {"predictions": serving.answer(probabilities), "model_version": model.version}


@router.post("/predict/image", response_model=ImagePrediction, responses=ERRORS, openapi_extra=IMAGE_BODY)
async def predict_image(request: Request, serving: ServingDep, response: Response) -> dict:
    """Classify a PNG or JPEG of a digit: multipart field `image`, or JSON `{"image_base64": ...}`."""
    pixels = await anyio.to_thread.run_sync(image_to_pixels, await read_image(request), limiter=IMAGE_DECODES)
    model = serving.model
    [answer] = serving.answer(model.predict(pixels[None]))
    response.headers["X-Model-Version"] = model.version
    return {**answer, "model_version": model.version, "pixels": pixels.astype(int).tolist()}


async def read_image(request: Request) -> bytes:
    """The uploaded image's bytes, from either form of the request."""
    kind = media_type(request)
    if kind == "multipart/form-data":
        try:
            form = await request.form(max_files=1, max_fields=4)
        except StarletteHTTPException as exc:
            if exc.status_code != 400:  # the body limit's 413, or a body that does not decompress
                raise
            # Starlette's word for a malformed multipart body is a 400: here, as elsewhere, a 422.
            raise HTTPException(422, f"multipart body not readable: {exc.detail}") from None
        upload = form.get("image")
        if not isinstance(upload, UploadFile):
            raise HTTPException(422, "multipart field 'image' with a file is required")
        unknown = sorted(set(form.keys()) - {"image"})
        if unknown:
            raise HTTPException(422, f"unknown multipart field(s) {unknown}: send only 'image'")
        return await upload.read()
    if is_json(kind):
        try:
            body = ImageIn.model_validate_json(await request.body())
        except ValidationError as exc:
            raise validation_errors(exc) from None
        # The pattern of ImageIn has checked the base64 and the data: URL prefix, if any.
        return base64.b64decode(body.image_base64.rpartition(",")[2], validate=True)
    raise HTTPException(415, f"send multipart/form-data (field 'image') or application/json, got {kind or 'none'}")
