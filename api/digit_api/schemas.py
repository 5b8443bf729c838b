"""Request and response bodies of the API contract (DESIGN.md, "The API contract")."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Strict, Tag, create_model

from digit_api.config import MAX_BATCH
from digit_api.manifest import InputSpec, OutputSpec

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


# ---- The Open Inference Protocol (KServe V2), JSON form. These models document the routes; the
# route itself parses with digit_api.v2_codec, which also takes the binary tensor data extension.

V2_INPUT = InputSpec.model_fields["name"].default  # the manifest's tensor names (the pixel contract)
V2_OUTPUT = OutputSpec.model_fields["name"].default
BatchSize = Annotated[int, Field(ge=1, le=MAX_BATCH, description="N, the number of digits")]
Pixel8 = Annotated[int, Strict(), Field(ge=0, le=255)]


def _tensor(datatype: str, number: Any) -> type[BaseModel]:
    """The input tensor of one datatype: data flat, or nested as the shape."""
    flat = Annotated[list[number], Field(min_length=PIXELS, max_length=PIXELS * MAX_BATCH)]
    rows = Annotated[
        list[Annotated[list[number], Field(min_length=PIXELS, max_length=PIXELS)]],
        Field(min_length=1, max_length=MAX_BATCH),
    ]
    images = Annotated[
        list[
            Annotated[
                list[
                    Annotated[
                        list[Annotated[list[number], Field(min_length=1, max_length=1)]],
                        Field(min_length=28, max_length=28),
                    ]
                ],
                Field(min_length=28, max_length=28),
            ]
        ],
        Field(min_length=1, max_length=MAX_BATCH),
    ]

    shape = tuple[BatchSize, Literal[784]] | tuple[BatchSize, Literal[28], Literal[28], Literal[1]]
    return create_model(
        f"V2Tensor{datatype}",
        __config__=ConfigDict(extra="forbid"),
        name=(Literal[V2_INPUT], ...),
        shape=(shape, Field(description="[N, 784] or [N, 28, 28, 1], N from 1 to 128")),
        datatype=(Literal[datatype], ...),
        data=(
            flat | rows | images,
            Field(description="N x 784 pixels (0 = background, 255 = ink), row-major: flat, or nested as the shape"),
        ),
        parameters=(
            dict[str, Any] | None,
            Field(None, description="free-form; binary_data_size belongs to the binary extension, not this JSON form"),
        ),
    )


V2TensorFP32 = _tensor("FP32", Pixel)
V2TensorUINT8 = _tensor("UINT8", Pixel8)


class V2RequestParameters(BaseModel):
    model_config = ConfigDict(extra="allow")
    binary_data_output: bool = Field(
        False, description="answer every output in binary (application/octet-stream), unless an output says otherwise"
    )


class V2OutputParameters(BaseModel):
    model_config = ConfigDict(extra="allow")
    binary_data: bool = Field(False, description="answer this output in binary")


class V2RequestedOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Literal[V2_OUTPUT]  # type: ignore[valid-type]
    parameters: V2OutputParameters | None = None


class V2InferRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(None, max_length=256, description="echoed in the answer")
    model_name: str | None = Field(None, description="kserve's client sends it; not read: the path names the model")
    parameters: V2RequestParameters | None = None
    inputs: Annotated[
        list[Annotated[V2TensorFP32 | V2TensorUINT8, Field(discriminator="datatype")]],  # type: ignore[valid-type]
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
