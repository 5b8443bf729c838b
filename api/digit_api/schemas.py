"""Request and response bodies of the API contract (docs/api.md)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Strict,
    StrictBool,
    StrictInt,
    StrictStr,
    Tag,
    create_model,
    field_validator,
)

from digit_api.config import MAX_BATCH
from digit_api.logs import REQUEST_ID_PATTERN
from digit_api.v2_codec import MAX_ID_LENGTH, MAX_PARAMETERS, PARAMETER_NUMBER_LIMIT, SHAPES
from digit_release.manifest import PIXELS, InputSpec, OutputSpec

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


# Standard base64 (RFC 4648, padded, no line breaks) of at least one byte, optionally as a data: URL
# of a PNG or JPEG, as canvas.toDataURL() makes: the route accepts exactly what this matches.
BASE64_IMAGE = (
    r"^(data:image/(png|jpeg);base64,)?"
    r"([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)$"
)


class ImageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    image_base64: str = Field(
        json_schema_extra={"pattern": BASE64_IMAGE},
        description="a PNG or JPEG, base64-encoded (padded, no line breaks); "
        "a data:image/png or data:image/jpeg URL (canvas.toDataURL()) works too",
    )

    @field_validator("image_base64")
    @classmethod
    def _base64(cls, value: str) -> str:
        # The documented pattern, with a message a person can act on (pydantic's would quote the regex).
        if not re.fullmatch(BASE64_IMAGE, value):
            raise ValueError(
                "not base64 (standard alphabet, padded), nor a data:image/png or data:image/jpeg URL of it"
            )
        return value


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


# The refusals every contract route documents (the OpenAPI `responses` of a route).
PROBLEMS: dict[int | str, dict[str, Any]] = {status: {"model": Problem} for status in (413, 415, 422, 503)}


# ---- The Open Inference Protocol (KServe V2), JSON form. These models document the routes; the
# route itself parses with digit_api.v2_codec, which also takes the binary tensor data extension.

# A parameter's value, as the protocol allows: a boolean, a number or a string. Numbers stay within
# what the parser reads exactly (64-bit integers), so the document says just what is accepted.
V2ParameterValue = (
    StrictBool
    | Annotated[int, Strict(), Field(ge=-PARAMETER_NUMBER_LIMIT, le=PARAMETER_NUMBER_LIMIT)]
    | Annotated[float, Strict(), Field(ge=-PARAMETER_NUMBER_LIMIT, le=PARAMETER_NUMBER_LIMIT)]
    | StrictStr
)
V2Parameters = Annotated[dict[str, V2ParameterValue], Field(max_length=MAX_PARAMETERS)]
V2_INPUT = InputSpec.model_fields["name"].default  # the manifest's tensor names (the pixel contract)
V2_OUTPUT = OutputSpec.model_fields["name"].default
BatchSize = Annotated[int, Field(ge=1, le=MAX_BATCH)]
Pixel8 = Annotated[int, Strict(), Field(ge=0, le=255)]


def _tensor(datatype: str, number: Any, image_shape: bool) -> type[BaseModel]:
    """An input tensor of one datatype and one shape: data flat, or nested as that shape.

    How many numbers `data` holds (N x 784) is tied to N in `shape`: JSON Schema cannot say so,
    the route checks it.
    """
    flat = Annotated[list[number], Field(min_length=PIXELS, max_length=PIXELS * MAX_BATCH)]
    if image_shape:
        shape: Any = tuple[BatchSize, Literal[28], Literal[28], Literal[1]]
        column = Annotated[
            list[Annotated[list[number], Field(min_length=1, max_length=1)]], Field(min_length=28, max_length=28)
        ]
        nested: Any = Annotated[
            list[Annotated[list[column], Field(min_length=28, max_length=28)]],
            Field(min_length=1, max_length=MAX_BATCH),
        ]
    else:
        shape = tuple[BatchSize, Literal[784]]
        nested = Annotated[
            list[Annotated[list[number], Field(min_length=PIXELS, max_length=PIXELS)]],
            Field(min_length=1, max_length=MAX_BATCH),
        ]
    text = SHAPES[1] if image_shape else SHAPES[0]
    # Literal types built from values: typed as Any, which is what create_model's fields take.
    name: Any = Literal[V2_INPUT]
    kind: Any = Literal[datatype]
    return create_model(
        f"V2Tensor{datatype}{'Images' if image_shape else 'Rows'}",
        __config__=ConfigDict(extra="forbid"),
        name=(name, ...),
        shape=(shape, Field(description=f"{text}, N (the number of digits) from 1 to {MAX_BATCH}")),
        datatype=(kind, ...),
        data=(
            flat | nested,
            Field(description=f"N x 784 pixels (0 = background, 255 = ink), row-major: flat, or nested as {text}"),
        ),
        parameters=(
            V2Parameters | None,
            Field(None, description="ignored; binary_data_size belongs to the binary extension, not this JSON form"),
        ),
    )


# Built at run time, so a type checker sees a value, not a type: hence the ignore where it is used.
V2Tensor = (
    _tensor("FP32", Pixel, image_shape=False)
    | _tensor("FP32", Pixel, image_shape=True)
    | _tensor("UINT8", Pixel8, image_shape=False)
    | _tensor("UINT8", Pixel8, image_shape=True)
)


class V2RequestParameters(BaseModel):
    """Other parameters (priority, timeout, ...) are accepted and ignored."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"maxProperties": MAX_PARAMETERS})
    __pydantic_extra__: dict[str, V2ParameterValue]
    binary_data_output: StrictBool = Field(
        False, description="answer every output in binary (application/octet-stream), unless an output says otherwise"
    )


class V2OutputParameters(BaseModel):
    model_config = ConfigDict(extra="allow", json_schema_extra={"maxProperties": MAX_PARAMETERS})
    __pydantic_extra__: dict[str, V2ParameterValue]
    binary_data: StrictBool = Field(False, description="answer this output in binary")


class V2RequestedOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Literal[V2_OUTPUT]  # type: ignore[valid-type]
    parameters: V2OutputParameters | None = None


class V2InferRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(None, max_length=MAX_ID_LENGTH, description="echoed in the answer")
    model_name: str | None = Field(None, description="kserve's client sends it; not read: the path names the model")
    parameters: V2RequestParameters | None = None
    inputs: Annotated[  # type: ignore[valid-type]
        list[V2Tensor],
        Field(min_length=1, max_length=1),
    ]
    outputs: Annotated[list[V2RequestedOutput], Field(max_length=1)] | None = Field(
        None, description="the outputs to answer with (all when absent or empty)"
    )


class V2OutputTensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[float] | None = Field(None, description="N x 10 probabilities, row-major; absent when binary")
    parameters: dict[str, int] | None = Field(None, description="binary_data_size when the output is binary")


class V2InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = Field(None, description="the request's id, when it gave one")
    outputs: list[V2OutputTensor]


class V2Error(BaseModel):
    error: str


def _whole(value: Any) -> Any:
    """JSON Schema's integers include 7.0: a number with no fraction is that integer (never a string)."""
    return int(value) if type(value) is float and value.is_integer() else value


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pixels: Pixels
    label: Annotated[StrictInt, BeforeValidator(_whole)] = Field(
        ge=0, le=9, description="the digit it is, one of GET /model's labels"
    )
    request_id: str | None = Field(
        None, pattern=f"^{REQUEST_ID_PATTERN}$", description="X-Request-Id of the prediction this verdict is on"
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
