"""The fast body reader against pydantic: whatever the body, the same pixels or the same error.

`read_pixels` and `read_instances` read a body with simdjson and check the contract with NumPy,
and only call pydantic when that check fails. These tests generate bodies near the contract's
edges (numbers spelled every way JSON allows, one value wrong, a key too many, text that is
almost JSON) and compare the result with what pydantic alone makes of the same bytes.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from digit_api.errors import ClientError
from digit_api.predict_codec import (
    BATCH_BODY,
    PREDICT_BODY,
    PREDICT_BODY_FAST,
    checked_body,
    read_instances,
    read_pixels,
)

PIXELS = 784
GOOD = [(i * 37) % 256 for i in range(PIXELS)]

# Every spelling of a number JSON allows, and some it does not, near the contract's bounds.
NUMBER_TEXT = st.one_of(
    st.sampled_from(
        [
            "0", "-0", "0.0", "-0.0", "255", "255.0", "255.0000000000000001", "255.00001", "256", "-1",
            "-0.0000001", "1e2", "1E2", "2.55e2", "2.5500001e2", "1e-400", "-1e-400", "1e400", "-1e400",
            "1e999", "NaN", "Infinity", "-Infinity", "01", "1.", ".5", "+1", "0x10", "18446744073709551616",
            "-9223372036854775809", "1" * 400, "true", "false", "null", '"7"', "[]", "{}", "[0]",
        ]
    ),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(2**70), 2**70).map(str),
)  # fmt: skip


def reference(body: bytes, adapter, explain) -> tuple[str, Any]:
    """What pydantic alone makes of a body: its pixels, or the error the client would read."""
    try:
        parsed = checked_body(body, adapter, explain)
    except ClientError as exc:
        return "error", (exc.status, exc.detail, exc.errors)
    if hasattr(parsed, "instances"):
        parsed = parsed.instances
    elif hasattr(parsed, "pixels"):
        parsed = parsed.pixels
    return "pixels", np.asarray(parsed, dtype=np.float32).reshape(-1, PIXELS).tobytes()


def fast(read, body: bytes) -> tuple[str, Any]:
    try:
        pixels = read(body)
    except ClientError as exc:
        return "error", (exc.status, exc.detail, exc.errors)
    assert pixels.dtype == np.float32
    assert pixels.flags.c_contiguous
    return "pixels", pixels.tobytes()


def pixels_text(values: list[str]) -> str:
    return "[" + ",".join(values) + "]"


@st.composite
def pixel_arrays(draw: st.DrawFn) -> str:
    """A pixel array's text: mostly right, with a few numbers spelled oddly and its length off by a little."""
    values = [str(v) for v in GOOD]
    for _ in range(draw(st.integers(0, 3))):
        values[draw(st.integers(0, PIXELS - 1))] = draw(NUMBER_TEXT)
    size = draw(st.sampled_from([PIXELS, PIXELS, PIXELS, PIXELS - 1, PIXELS + 1, 0, 28]))
    values = (values * 2)[:size]
    if size == 28 and draw(st.booleans()):
        return "[" + ",".join([pixels_text(values)] * 28) + "]"  # the 28x28 mistake
    return pixels_text(values)


@st.composite
def predict_bodies(draw: st.DrawFn) -> bytes:
    array = draw(pixel_arrays())
    form = draw(
        st.sampled_from(
            [
                '{"pixels":%s}', "%s", '{ "pixels" : %s }', '{"pixels":%s,"extra":1}', '{"pixels":%s,"pixels":[]}',
                '{"pixels":[],"pixels":%s}', '{"pixel":%s}', '{"PIXELS":%s}', '{"instances":[%s]}', '[%s]',
                '{"pixels":%s}garbage', '{"pixels":%s,}', '\ufeff{"pixels":%s}', '{"pixels":%s}\n\n',
                '{"pixels":%s', '{"pixels":{"0":%s}}', '{"pixels":"%s"}', '{"pix\\u0065ls":%s}',
            ]
        )
    )  # fmt: skip
    return (form % array).encode()


@st.composite
def batch_bodies(draw: st.DrawFn) -> bytes:
    rows = draw(st.sampled_from([0, 1, 2, 3, 129]))
    arrays = [pixels_text([str(v) for v in GOOD])] * rows
    if rows and draw(st.booleans()):
        arrays[draw(st.integers(0, rows - 1))] = draw(pixel_arrays())
    instances = "[" + ",".join(arrays) + "]"
    form = draw(
        st.sampled_from(
            [
                '{"instances":%s}',
                "%s",
                '{"instances":%s,"x":0}',
                '{"instances":[%s]}',
                '{"instances":%s}]',
                '{"pixels":%s}',
            ]
        )
    )
    return (form % instances).encode()


@given(body=predict_bodies())
@example(body=json.dumps({"pixels": GOOD}).encode())
@example(body=json.dumps(GOOD).encode())
@example(body=b"")
@example(body=b"  \n")
@example(body=b"null")
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_predict_body_reads_as_pydantic_reads_it(body: bytes) -> None:
    assert fast(read_pixels, body) == reference(body, PREDICT_BODY_FAST, PREDICT_BODY)


@given(body=batch_bodies())
@example(body=json.dumps({"instances": [GOOD] * 128}).encode())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_batch_body_reads_as_pydantic_reads_it(body: bytes) -> None:
    assert fast(read_instances, body) == reference(body, BATCH_BODY, None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0.0), ("255", 255.0), ("1e2", 100.0), ("-0.0", 0.0), ("127.5", 127.5), ("1e-400", 0.0)],
)
def test_a_valid_body_is_read_exactly(text: str, expected: float) -> None:
    body = ('{"pixels":[' + ",".join([text] * PIXELS) + "]}").encode()
    pixels = read_pixels(body)
    assert pixels.shape == (1, PIXELS)
    assert (pixels == np.float32(expected)).all()


def test_the_reader_survives_a_parse_it_refused() -> None:
    """simdjson keeps one parser per thread: a refused body must not break the next read."""
    with pytest.raises(ClientError):
        read_pixels(b'{"pixels": [0,')
    assert read_pixels(json.dumps(GOOD).encode()).tolist() == [GOOD]


# --- the Open Inference Protocol's bodies: counting brackets against looking into the data -------

V2_DATA = [
    "[" + ",".join(map(str, GOOD)) + "]",  # flat
    "[[" + ",".join(map(str, GOOD)) + "]]",  # nested as [1, 784]
    "[" + ",".join(map(str, GOOD[:-1])) + ",[0]]",  # one number in a list of its own
    "[[" + "],[".join(",".join(map(str, GOOD[i : i + 28])) for i in range(0, 784, 28)) + "]]",  # 28 x 28
    "[" + ",".join(map(str, GOOD[:-2])) + ",[],[0,0]]",  # as many elements as numbers, yet nested
]
V2_SHAPES = ["[1,784]", "[1,28,28,1]", "[2,784]"]
V2_EXTRAS = [
    "", ',"id":"a[b"', ',"id":"["', ',"outputs":[]', ',"outputs":[{"name":"probabilities"}]', ',"outputs":{}',
    ',"outputs":7', ',"outputs":"["', ',"outputs":[{"name":"probabilities","parameters":{"x":"[["}}]',
    ',"parameters":{"p":"]"}', ',"model_name":"["',
]  # fmt: skip


@given(data=st.sampled_from(V2_DATA), shape=st.sampled_from(V2_SHAPES), extra=st.sampled_from(V2_EXTRAS))
@settings(max_examples=300, deadline=None)
def test_a_v2_body_reads_the_same_whether_its_brackets_are_counted_or_not(data: str, shape: str, extra: str) -> None:
    from digit_api import v2_codec
    from digit_api.jsonread import parser

    header = f'{{"inputs":[{{"name":"pixels","shape":{shape},"datatype":"FP32","data":{data}}}]{extra}}}'.encode()

    def outcome(brackets: int) -> tuple[str, object]:
        document = parser().parse(header)
        try:
            request = v2_codec.read_request(document, b"", "pixels", "probabilities", brackets)
        except v2_codec.ProtocolError as exc:
            return "error", str(exc)
        finally:
            del document
        return "pixels", (request.pixels.tobytes(), request.id, request.binary_output)

    # -1 never matches: the data is looked into, as it was before brackets were counted.
    assert outcome(header.count(b"[")) == outcome(-1)
