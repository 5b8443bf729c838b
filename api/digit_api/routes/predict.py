"""The contract's prediction routes: one digit, a batch, an image."""

from __future__ import annotations

import base64

import anyio
from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from digit_api.deps import PredictionsDep, openapi_body
from digit_api.errors import invalid_body
from digit_api.predict_codec import BATCH_BODY, PREDICT_BODY
from digit_api.preprocess import image_to_pixels
from digit_api.schemas import PROBLEMS, BatchPrediction, ImageIn, ImagePrediction, Prediction
from digit_api.serving import Reply, is_json, media_type

router = APIRouter(tags=["predict"])
# A 4096x4096 upload takes a few hundred MB while it is decoded: two at a time bound the memory
# a burst of uploads can take, and keep threads free for the other routes.
IMAGE_DECODES = anyio.CapacityLimiter(2)

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


def sent(reply: Reply) -> Response:
    """A reply of the prediction path as FastAPI's response (the shortcut sends the same bytes)."""
    return Response(reply.body, status_code=reply.status, headers=dict(reply.headers))


# The handlers read their bodies themselves (predict_codec): the documents say what they accept.
@router.post("/predict", response_model=Prediction, responses=PROBLEMS, openapi_extra=openapi_body(PREDICT_BODY))
async def predict(request: Request, predictions: PredictionsDep) -> Response:
    """Classify one digit: `{"pixels": [784 numbers]}` or the bare array of 784 numbers."""
    return sent(await predictions.predict(await request.body(), request.headers.get("content-type")))


@router.post(
    "/predict/batch", response_model=BatchPrediction, responses=PROBLEMS, openapi_extra=openapi_body(BATCH_BODY)
)
async def predict_batch(request: Request, predictions: PredictionsDep) -> Response:
    """Classify up to 128 digits at once: `{"instances": [[784 numbers], ...]}`."""
    return sent(await predictions.predict_batch(await request.body(), request.headers.get("content-type")))


@router.post("/predict/image", response_model=ImagePrediction, responses=PROBLEMS, openapi_extra=IMAGE_BODY)
async def predict_image(request: Request, predictions: PredictionsDep) -> Response:
    """Classify a PNG or JPEG of a digit: multipart field `image`, or JSON `{"image_base64": ...}`."""
    pixels = await anyio.to_thread.run_sync(image_to_pixels, await read_image(request), limiter=IMAGE_DECODES)
    return sent(await predictions.predict_image(pixels))


async def read_image(request: Request) -> bytes:
    """The uploaded image's bytes, from either form of the request."""
    kind = media_type(request.headers.get("content-type"))
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
            raise invalid_body(exc) from None
        # The pattern of ImageIn has checked the base64 and the data: URL prefix, if any.
        return base64.b64decode(body.image_base64.rpartition(",")[2], validate=True)
    raise HTTPException(415, f"send multipart/form-data (field 'image') or application/json, got {kind or 'none'}")
