"""The Open Inference Protocol's (KServe V2) infer bodies, JSON and binary tensor data extension.

A request is parsed with simdjson, and the tensor goes from the JSON text (or the binary part)
into NumPy in native code, in time linear in the body: no Python object is made per number, so
a 2 MiB body of nested lists costs milliseconds, not the hundreds a generic JSON-to-objects parse
takes. Only the few small fields (id, shape, names, parameters) become Python values, and every
object is size-checked before it is looked into, so no part of a hostile body is walked in Python.

The binary tensor data extension (as Triton defines it, and tritonclient and kserve's
InferenceRESTClient send it): `Inference-Header-Content-Length` gives the length of the JSON
header; the bytes after it are the tensors whose `parameters.binary_data_size` says so, in input
order, little-endian, row-major. Outputs come back the same way when the request asks for it
(`binary_data` on a requested output, or `binary_data_output` on the request).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import orjson
import simdjson

from digit_api.config import MAX_BATCH
from digit_api.jsonread import JSON_WHITESPACE, minified
from digit_api.jsonread import parser as this_thread_parser
from digit_release.manifest import PIXELS

SHAPES = ("[N, 784]", "[N, 28, 28, 1]")
DATATYPES: dict[str, np.dtype[Any]] = {"FP32": np.dtype("<f4"), "UINT8": np.dtype("u1")}
MAX_ID_LENGTH = 256
# The protocol's fields, and model_name, which kserve's client adds (the path names the model).
REQUEST_FIELDS = frozenset({"id", "parameters", "inputs", "outputs", "model_name"})
TENSOR_FIELDS = frozenset({"name", "shape", "datatype", "parameters", "data"})
OUTPUT_FIELDS = frozenset({"name", "parameters"})
# Parameters that ask for something this server does not do: refused, rather than answered as if
# they had not been asked. Every other parameter is free for clients to send and is ignored.
UNSUPPORTED_PARAMETERS = ("classification", "shared_memory_region", "shared_memory_byte_size", "shared_memory_offset")
MAX_PARAMETERS = 64
PARAMETER_NUMBER_LIMIT = 2**63
HEADER_LENGTH = "inference-header-content-length"
MAX_LENGTH_DIGITS = 20
# What a number is written with, in simdjson's minified JSON.
NUMBER_TEXT = b"0123456789+-.eE"


class LargeBodyParser:
    """One parser for large bodies, used by one thread at a time (the route parses them one at a time)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parser = simdjson.Parser()

    def parse_request(self, body: bytes, header_length: str | None, input_name: str, output_name: str) -> InferRequest:
        with self._lock:
            return parse_request(body, header_length, input_name, output_name, self._parser)


class ProtocolError(ValueError):
    """The request does not follow the protocol or the pixel contract: a 400 with this message."""


@dataclass(frozen=True, slots=True)
class InferRequest:
    id: str | None
    pixels: np.ndarray  # (N, 784) float32, raw 0-255
    binary_output: bool


def parse_request(
    body: bytes, header_length: str | None, input_name: str, output_name: str, parser: simdjson.Parser | None = None
) -> InferRequest:
    """Check an infer request against the protocol and the pixel contract; raise ProtocolError.

    `parser`: one to reuse (its buffers stay allocated, which spares a large body the page faults
    of new ones); it must not be in use by another thread. This thread's own by default.
    """
    header, binary = split(body, header_length)
    try:
        document = (parser or this_thread_parser()).parse(header)
    except (ValueError, RuntimeError) as exc:  # simdjson's word for bad JSON; BIGINT_ERROR is a RuntimeError
        if not header.strip(JSON_WHITESPACE):
            raise ProtocolError("body is empty: send a JSON inference request") from None
        if "BIGINT" in str(exc):
            # Valid JSON, but simdjson reads integers in 64 bits: say so rather than "not valid JSON".
            raise ProtocolError(
                "the body holds an integer beyond 64 bits; no field of the protocol takes one"
            ) from None
        raise ProtocolError(f"body is not valid JSON: {exc}") from None
    try:
        return read_request(document, binary, input_name, output_name, header.count(b"["))
    except ProtocolError as exc:
        message = str(exc)
    finally:
        del document
    # Raised afresh, with the first error's traceback gone: its frames held the parsed document,
    # which would otherwise be freed wherever the error is handled, on the event loop.
    raise ProtocolError(message)


def split(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON header and the binary part of a body."""
    if header_length is None:
        return body, b""
    text = header_length.strip()
    # ASCII digits only (isdigit() also takes "²"), and few of them: int() refuses over 4,300.
    if not (text.isascii() and text.isdigit() and len(text) <= MAX_LENGTH_DIGITS) or int(text) > len(body):
        raise ProtocolError(
            f"Inference-Header-Content-Length must be a byte count from 0 to the body's {len(body)}, got {text[:40]!r}"
        )
    return body[: int(text)], body[int(text) :]


def read_request(document: Any, binary: bytes, input_name: str, output_name: str, brackets: int) -> InferRequest:
    """The request, checked; `brackets` is how many "[" its JSON text holds."""
    request = fields(document, "the request", REQUEST_FIELDS)
    if not isinstance(request.get("model_name", ""), str | None):
        raise ProtocolError("model_name must be a string (the path names the model; this one is not read)")
    request_id = request.get("id")
    if request_id is not None and (not isinstance(request_id, str) or len(request_id) > MAX_ID_LENGTH):
        raise ProtocolError(f"id must be a string of at most {MAX_ID_LENGTH} characters")
    parameters = parameter_object(request.get("parameters"), "parameters")
    binary_output = flag(parameters, "binary_data_output", "parameters") or False
    inputs = request.get("inputs")
    if not isinstance(inputs, simdjson.Array) or len(inputs) != 1:
        raise ProtocolError(f"inputs must be a list of one tensor, {input_name!r}")
    outputs = request.get("outputs")
    # inputs, its shape, its data and outputs (if any) are lists, each with a "[" of its own; the
    # rest is strings, numbers, booleans and objects of them. So when the text holds no "[" more,
    # the data's one "[" is its own, and it is flat: no need to look into it (~8 us a request).
    flat = brackets == 3 + isinstance(outputs, simdjson.Array)
    pixels = read_input(inputs[0], binary, input_name, flat)
    if outputs is not None:
        if not isinstance(outputs, simdjson.Array) or len(outputs) > 1:
            raise ProtocolError(f"outputs must be a list of at most one tensor, {output_name!r}")
        for output in outputs:
            wanted = fields(output, "outputs[0]", OUTPUT_FIELDS)
            name = wanted.get("name")
            if name != output_name:
                raise ProtocolError(f"unknown output {shown(name)}: this model's one output is {output_name!r}")
            output_parameters = parameter_object(wanted.get("parameters"), "outputs[0].parameters")
            choice = flag(output_parameters, "binary_data", "outputs[0]")
            if choice is not None:
                binary_output = choice
    return InferRequest(request_id, pixels, binary_output)


def read_input(tensor: Any, binary: bytes, input_name: str, flat: bool = False) -> np.ndarray:
    tensor = fields(tensor, "inputs[0]", TENSOR_FIELDS)
    name = tensor.get("name")
    if name != input_name:
        raise ProtocolError(f"unknown input {shown(name)}: this model's one input is {input_name!r}")
    shape = read_shape(tensor.get("shape"))
    datatype = tensor.get("datatype")
    if datatype not in DATATYPES:
        raise ProtocolError(f"datatype must be FP32 or UINT8, got {shown(datatype)}")
    count = shape[0] * PIXELS
    parameters = parameter_object(tensor.get("parameters"), "inputs[0].parameters")
    size = parameters.get("binary_data_size") if parameters is not None else None
    if size is not None:
        if "data" in tensor:
            raise ProtocolError("inputs[0] has both data and binary_data_size: send one")
        values = binary_values(size, binary, datatype, count, shape)
    else:
        if binary:
            raise ProtocolError("the body has binary data after the JSON, but no input has binary_data_size")
        values = json_values(tensor.get("data"), datatype, count, shape, flat)
    return values.reshape(shape[0], PIXELS).astype(np.float32, copy=False)


def read_shape(shape: Any) -> list[int]:
    if isinstance(shape, simdjson.Array) and 1 <= len(shape) <= 4:
        # Integers as JSON Schema counts them: 784.0 is one too (but true is not).
        given = [int(d) if type(d) is float and d.is_integer() else d for d in shape.as_list()]
        dims = [d for d in given if type(d) is int]
        if len(dims) == len(given):
            if not ((len(dims) == 2 and dims[1] == PIXELS) or (len(dims) == 4 and dims[1:] == [28, 28, 1])):
                raise ProtocolError(f"input shape must be {' or '.join(SHAPES)}, got {dims}")
            if not 1 <= dims[0] <= MAX_BATCH:
                raise ProtocolError(f"batch size must be 1 to {MAX_BATCH}, got {dims[0]}")
            return dims
    raise ProtocolError(f"shape must be a list of integers, {' or '.join(SHAPES)}")


def json_values(data: Any, datatype: str, count: int, shape: list[int], flat: bool = False) -> np.ndarray:
    if not isinstance(data, simdjson.Array):
        raise ProtocolError("inputs[0] needs data (a list of numbers) or parameters.binary_data_size")
    try:
        values = np.frombuffer(data.as_buffer(of_type="d"), dtype=np.float64)
    except TypeError:  # an element that is not a number (or a list of numbers)
        raise ProtocolError("data must hold only numbers") from None
    if values.size != count:
        raise ProtocolError(f"data holds {values.size} numbers, shape {shape} needs {count}")
    if not (flat or nested_as(data, shape)):
        raise ProtocolError(f"data must be a flat list or nested as the shape {shape}")
    # JSON has no NaN or Infinity, and simdjson refuses numbers beyond a double: all are finite.
    if values.min() < 0 or values.max() > 255:
        raise ProtocolError("pixels must be numbers from 0 to 255")
    if datatype == "UINT8" and not np.array_equal(values, np.trunc(values)):
        raise ProtocolError("UINT8 data must be whole numbers")
    return values


def binary_values(size: Any, binary: bytes, datatype: str, count: int, shape: list[int]) -> np.ndarray:
    dtype = DATATYPES[datatype]
    if type(size) is not int or size != count * dtype.itemsize:
        raise ProtocolError(
            f"binary_data_size must be {count * dtype.itemsize} for {datatype} of shape {shape}, got {shown(size)}"
        )
    if len(binary) != size:
        raise ProtocolError(f"the binary part of the body holds {len(binary)} bytes, binary_data_size says {size}")
    values = np.frombuffer(binary, dtype=dtype)
    # A NaN makes min or max NaN, which no comparison holds for; an infinity is beyond 255.
    if datatype == "FP32" and not (values.min() >= 0 and values.max() <= 255):
        raise ProtocolError("pixels must be finite numbers from 0 to 255")
    return values


def nested_as(data: simdjson.Array, shape: list[int]) -> bool:
    """Whether a list of numbers (and lists of numbers) is flat, or nested exactly as `shape`.

    Flat: no element is a list. Nested: N rows, each of which, with its numbers taken out, reads
    as the shape's nesting does (`[28, 28, 1]`: 28 lists of 28 lists of one number). Row by row,
    so that no single native call holds the interpreter for long.
    """
    if not isinstance(data[0], simdjson.Array):
        # Only numbers are left (as_buffer has checked): flat if the one bracket is the list's own.
        return minified(data).count(b"[") == 1
    if len(data) != shape[0]:
        return False
    expected = skeleton(tuple(shape[1:]))
    return all(
        isinstance(row, simdjson.Array) and minified(row).translate(None, NUMBER_TEXT) == expected for row in data
    )


@lru_cache(maxsize=4)
def skeleton(shape: tuple[int, ...]) -> bytes:
    """The brackets and commas of a list nested as `shape`: (2, 2) -> b'[[,],[,]]'.

    With the numbers taken out, a list with one number and an empty one read alike; the count of
    numbers, checked first, tells them apart.
    """
    text = b""
    for size in reversed(shape):
        text = b"[" + b",".join([text] * size) + b"]"
    return text


def shown(value: Any) -> str:
    """A value from the request, for an error message: short, and never a parser's internals."""
    if isinstance(value, simdjson.Array):
        return "a list"
    if isinstance(value, simdjson.Object):
        return "an object"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def fields(value: Any, where: str, allowed: frozenset[str]) -> dict[str, Any]:
    """An object whose keys are all known (checked by count first, so a huge object is not walked).

    As a dict of its fields (lists and objects in it stay simdjson's, read lazily): a simdjson
    Object answers `get` of an absent key by raising and catching a KeyError, ~2 us each.
    """
    if not isinstance(value, simdjson.Object):
        raise ProtocolError(f"{where} must be a JSON object")
    if len(value) > len(allowed) or not allowed.issuperset(value.keys()):
        unknown = sorted(set(value.keys()) - allowed) if len(value) <= 2 * len(allowed) else ["..."]
        raise ProtocolError(f"{where} has unknown fields {unknown[:5]}; known: {sorted(allowed)}")
    named = {name: value[name] for name in value.keys()}  # noqa: SIM118 - a simdjson Object
    if len(named) != len(value):
        # JSON leaves a repeated name to the reader (RFC 8259): some take the first, some the last.
        twice = sorted({name for name in value.keys() if list(value.keys()).count(name) > 1})  # noqa: SIM118
        raise ProtocolError(f"{where} has the field(s) {twice} more than once")
    return named


def parameter_object(value: Any, where: str) -> Any:
    """A parameters object: at most MAX_PARAMETERS, each a boolean, a 64-bit number or a string."""
    if value is None:
        return None
    if not isinstance(value, simdjson.Object) or len(value) > MAX_PARAMETERS:
        raise ProtocolError(f"{where} must be a JSON object of at most {MAX_PARAMETERS} parameters")
    # Into a dict, value by value: `in` on a simdjson Object costs microseconds, and items() would
    # turn a list sent as a parameter into Python objects before it is refused.
    names = list(value.keys())
    if len(set(names)) != len(names):
        raise ProtocolError(f"{where} names a parameter more than once")
    for name in UNSUPPORTED_PARAMETERS:
        if name in names:
            raise ProtocolError(f"{where}.{name} is not supported by this server")
    if any("\x00" in name for name in names):
        # simdjson looks a name up as a C string: one holding U+0000 would not be found (or would
        # find another). Such an object is read whole instead; its values are checked the same way.
        pairs: Iterable[tuple[str, Any]] = value.items()
    else:
        pairs = ((name, value[name]) for name in names)
    checked = {}
    for name, item in pairs:
        number = isinstance(item, int | float) and abs(item) <= PARAMETER_NUMBER_LIMIT
        if not (number or isinstance(item, bool | str)):
            raise ProtocolError(f"{where}.{shown(name)}: a parameter is a boolean, a string or a number within ±2**63")
        checked[name] = item
    return checked


def flag(parameters: Any, name: str, where: str) -> bool | None:
    value = parameters.get(name) if parameters is not None else None
    if value is not None and type(value) is not bool:
        raise ProtocolError(f"{where}.{name} must be true or false")
    return value


def encode_response(
    *,
    model_name: str,
    model_version: str,
    request_id: str | None,
    output_name: str,
    probabilities: np.ndarray,
    binary: bool,
) -> tuple[bytes, tuple[tuple[str, str], ...]]:
    """The response body and its headers (lower-case names, as ASGI sends them): JSON, or a JSON
    header followed by the binary output."""
    output: dict[str, Any] = {"name": output_name, "datatype": "FP32", "shape": list(probabilities.shape)}
    blob = b""
    if binary:
        blob = probabilities.astype("<f4", copy=False).tobytes()
        output["parameters"] = {"binary_data_size": len(blob)}
    else:
        # As float64: the very numbers /predict answers with (float32 values, printed exactly).
        output["data"] = probabilities.astype(np.float64).ravel()
    response: dict[str, Any] = {"model_name": model_name, "model_version": model_version, "outputs": [output]}
    if request_id is not None:
        response["id"] = request_id
    header = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
    if not binary:
        return header, (("content-type", "application/json"),)
    headers = (("content-type", "application/octet-stream"), (HEADER_LENGTH, str(len(header))))
    return header + blob, headers
