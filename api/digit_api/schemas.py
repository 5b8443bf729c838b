"""Request and response bodies of the API contract (DESIGN.md, "The API contract")."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Strict, StrictInt, Tag

from digit_api.config import MAX_BATCH

PIXELS = 784

# The pixel contract: a number (not a string, not a bool), finite, 0 = background to 255 = full ink.
Pixel = Annotated[float, Strict(), Field(ge=0, le=255, allow_inf_nan=False)]


def _flat(value: Any) -> Any:
    # A 28x28 nested list is the likeliest mistake: say so instead of 28 "not a number" errors.
    if isinstance(value, list) and value and isinstance(value[0], list):
        raise ValueError("pixels must be one flat list of 784 numbers (row-major), not nested lists")
    return value


# fail_fast: a body of 784 bad numbers is one error, not 784 built on the event loop.
FlatPixels = Annotated[
    list[Pixel],
    Field(
        min_length=PIXELS,
        max_length=PIXELS,
        fail_fast=True,
        description="784 numbers, row-major 28x28, 0 = background, 255 = ink",
    ),
]
Pixels = Annotated[FlatPixels, BeforeValidator(_flat)]


class PixelsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pixels: Pixels


def _body_form(value: Any) -> str:
    return "array" if isinstance(value, list) else "object"


# `{"pixels": [...]}`, or the bare array older clients send; the tag keeps errors to the form sent.
PredictBody = Annotated[
    Annotated[PixelsIn, Tag("object")] | Annotated[Pixels, Tag("array")],
    Discriminator(_body_form),
]


class _FastPixelsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pixels: FlatPixels


# The same contract without the Python-level hooks (discriminator, nesting check), so pydantic
# validates straight from JSON in Rust: half the cost. A body it refuses is validated again with
# PredictBody, whose errors are the ones the client reads.
PredictBodyFast = Annotated[
    _FastPixelsIn | FlatPixels,
    Field(union_mode="left_to_right"),
]


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instances: Annotated[list[Pixels], Field(min_length=1, max_length=MAX_BATCH, fail_fast=True)]


class ImageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    image_base64: str = Field(
        min_length=1, description="a PNG or JPEG, base64-encoded; a data: URL (canvas.toDataURL()) works too"
    )


class Digit(BaseModel):
    prediction: int = Field(description="the digit")
    probability: float = Field(description="the probability of that digit")
    probabilities: list[float] = Field(description="one probability per label, in the order of GET /model's labels")


class Prediction(Digit):
    model_version: str


class BatchPrediction(BaseModel):
    predictions: list[Digit]
    model_version: str


class ImagePrediction(Prediction):
    pixels: list[int] = Field(description="the 784 pixels the image was turned into")


class Problem(BaseModel):
    detail: str = Field(description="what was wrong")
    errors: list[dict[str, Any]] | None = Field(None, description="every validation error (at most 20)")


class V2Tensor(BaseModel):
    name: str = Field(max_length=256)
    shape: Annotated[list[StrictInt], Field(min_length=1, max_length=4, fail_fast=True)]
    datatype: Literal["FP32", "UINT8"]
    data: list[Any] = Field(description="row-major, flat or nested")
    parameters: dict[str, Any] | None = None


class V2InferRequest(BaseModel):
    id: str | None = Field(None, max_length=256)
    parameters: dict[str, Any] | None = None
    inputs: Annotated[list[V2Tensor], Field(min_length=1, max_length=1)]
    outputs: Annotated[list[dict[str, Any]], Field(max_length=1, fail_fast=True)] | None = None


class V2OutputTensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[float]


class V2InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[V2OutputTensor]


class V2Error(BaseModel):
    error: str


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pixels: Pixels
    label: StrictInt = Field(description="the digit it is, one of GET /model's labels")
    request_id: str | None = Field(
        None, pattern=r"^[A-Za-z0-9._-]{1,128}$", description="X-Request-Id of the prediction this verdict is on"
    )


class Heard(BaseModel):
    model_version: str
    confirmed: int = Field(description="verdicts that agreed with the model")
    corrected: int = Field(description="verdicts that gave another digit")
    accuracy: float | None = Field(description="confirmed / (confirmed + corrected); null before any verdict")


class FeedbackOut(BaseModel):
    id: str = Field(description="the verdict's id: the same drawing with the same label always has the same one")
    stored: bool = Field(description="false when this drawing with this label had been stored already")
    label: int
    prediction: int = Field(description="the model's own answer on these pixels, worked out by the server")
    confirmed: bool = Field(description="the label is the model's answer")
    model_version: str
    heard: Heard = Field(description="what this model version has heard so far")


class VersionFeedback(Heard):
    labels: list[str]
    confusion_matrix: list[list[int]] = Field(description="rows: the label people gave, columns: the model's answer")


class FeedbackStats(BaseModel):
    model_version: str | None = Field(description="the model in service")
    versions: list[VersionFeedback] = Field(description="newest version first")
