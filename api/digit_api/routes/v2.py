"""Open Inference Protocol (KServe V2) routes, so that standard inference clients work.

What tritonclient and kserve's InferenceRESTClient send is accepted: JSON whatever the
Content-Type (the protocol keys a binary body on Inference-Header-Content-Length, not on the type),
the binary tensor data extension, gzip or deflate bodies (the service middleware inflates them
within the body limit), and the `/versions/{version}` form of every model route.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter

from digit_api import __version__
from digit_api.deps import Model, PredictionsDep, Store, openapi_body
from digit_api.routes.predict import sent
from digit_api.schemas import V2Error, V2InferRequest, V2InferResponse
from digit_api.serving import MAX_NAME, MAX_VERSION, served
from digit_api.v2_codec import HEADER_LENGTH, SHAPES
from digit_release.model import LiteRTModel

router = APIRouter(prefix="/v2", tags=["open inference protocol"])
EXTENSIONS = ["binary_tensor_data"]
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": V2Error, "description": "a model name or version longer than the longest there can be"},
    404: {"model": V2Error, "description": "no such model or version"},
    503: {"model": V2Error, "description": "no verified model loaded"},
}
INFER_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": V2InferResponse,
        "content": {
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
                "example": "(binary tensor data extension: the JSON header, then the output's bytes)",
            }
        },
        "description": "the probabilities: JSON, or with binary outputs a JSON header of "
        "Inference-Header-Content-Length bytes followed by the float32 tensor",
    },
    413: {"model": V2Error, "description": "body (after decompression) over 2 MiB"},
    415: {"model": V2Error, "description": "a Content-Encoding other than gzip, deflate or identity"},
    **ERRORS,
    400: {"model": V2Error, "description": "the request breaks the protocol or the pixel contract"},
}
# Bounded, as names and versions are (a manifest's name, a release's number): the bound is what the
# document can state, and what the route checks (400 past it).
Name = Annotated[
    str, Path(max_length=MAX_NAME, description="the model's name (GET /model has it)", examples=["mnist-cnn"])
]
Version = Annotated[
    str, Path(max_length=MAX_VERSION, description="a version; only the loaded one is served", examples=["1"])
]
INFER_BODY = openapi_body(TypeAdapter(V2InferRequest))
INFER_BODY["requestBody"]["description"] = (
    "An inference request in JSON, whatever the Content-Type. With the binary tensor data extension, "
    "the JSON is the first Inference-Header-Content-Length bytes, the input's parameters.binary_data_size "
    "says how many bytes follow (FP32 little-endian or UINT8, row-major), and no data is given. "
    "gzip and deflate bodies (Content-Encoding) are accepted."
)


@router.get("")
async def server_metadata() -> dict[str, Any]:
    """Server metadata: this service's name and version, and the protocol extensions it speaks."""
    return {"name": "digit-api", "version": __version__, "extensions": EXTENSIONS}


@router.get("/health/live")
async def live() -> dict[str, Any]:
    """Server liveness."""
    return {"live": True}


@router.get("/health/ready", responses={503: {"description": "no verified model loaded"}})
async def ready(store: Store) -> JSONResponse:
    """Server readiness: a verified model is loaded (503 until then, like /readyz)."""
    return JSONResponse({"ready": store.ready}, status_code=200 if store.ready else 503)


@router.get("/models/{name}", responses=ERRORS)
async def model_metadata(name: Name, model: Model) -> dict[str, Any]:
    """Model metadata: name, versions, platform, input and output tensors."""
    return metadata(served(model, name, None))


@router.get("/models/{name}/versions/{version}", responses=ERRORS)
async def model_version_metadata(name: Name, version: Version, model: Model) -> dict[str, Any]:
    """Model metadata of one version (the one loaded)."""
    return metadata(served(model, name, version))


@router.get("/models/{name}/ready", responses=ERRORS)
async def model_ready(name: Name, model: Model) -> dict[str, Any]:
    """Model readiness (503 while no model is loaded)."""
    return {"name": served(model, name, None).manifest.name, "ready": True}


@router.get("/models/{name}/versions/{version}/ready", responses=ERRORS)
async def model_version_ready(name: Name, version: Version, model: Model) -> dict[str, Any]:
    """Model readiness of one version."""
    return {"name": served(model, name, version).manifest.name, "ready": True}


@router.post(
    "/models/{name}/infer", response_model=V2InferResponse, responses=INFER_RESPONSES, openapi_extra=INFER_BODY
)
async def infer(name: Name, request: Request, predictions: PredictionsDep) -> Response:
    """Inference: one input tensor of FP32 or UINT8 pixels, shape [N, 784] or [N, 28, 28, 1]."""
    return sent(await predictions.infer(await request.body(), request.headers.get(HEADER_LENGTH), name, None))


@router.post(
    "/models/{name}/versions/{version}/infer",
    response_model=V2InferResponse,
    responses=INFER_RESPONSES,
    openapi_extra=INFER_BODY,
)
async def infer_version(name: Name, version: Version, request: Request, predictions: PredictionsDep) -> Response:
    """Inference on one version of the model (the one loaded)."""
    return sent(await predictions.infer(await request.body(), request.headers.get(HEADER_LENGTH), name, version))


def metadata(model: LiteRTModel) -> dict[str, Any]:
    classes = model.manifest.output.shape[0]
    return {
        "name": model.manifest.name,
        "versions": [model.version],
        "platform": "tflite",
        "inputs": [{"name": model.manifest.input.name, "datatype": "FP32", "shape": [-1, 784]}],
        "outputs": [{"name": model.manifest.output.name, "datatype": "FP32", "shape": [-1, classes]}],
        "parameters": {"labels": model.labels, "accepted_input_shapes": list(SHAPES), "datatypes": ["FP32", "UINT8"]},
    }
