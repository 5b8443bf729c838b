"""A table of awkward numbers, run on every route and in every place a number goes.

Each number must get a 4xx (with a JSON body) or a correct answer: never a 5xx. A number is
"correct" to serve when it reads as a finite double from 0 to 255 (whole, for UINT8); the answer
must then be the model's answer for that value. 10**400 once gave a 500 on the V2 route.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

# JSON text of the number, as a client could send it.
NUMBERS = [
    "1" + "0" * 400,  # an integer too large for a double
    "-1" + "0" * 400,
    "1e309",  # a float literal past the largest double
    "-1e309",
    "1e99999999999",
    "1.7976931348623157e308",  # the largest double
    "18446744073709551616",  # 2**64
    "9223372036854775808",  # 2**63
    "-9223372036854775809",
    "256",
    "255.0000001",
    "255.00000000000001",  # reads as 255.0
    "254.99999999999999",  # reads as 255.0
    "-0.0",
    "-0",
    "0e99999999999",  # zero with a huge exponent
    "5e-324",  # the smallest subnormal
    "2.2250738585072014e-308",  # the smallest normal
    "1e-400",  # underflows to 0.0
    "-1e-400",  # underflows to -0.0
    "-5e-324",
    "1E2",
    "1e+2",
    "0.5",
    "128",
    # Not JSON numbers at all.
    "NaN",
    "Infinity",
    "-Infinity",
    "1.",
    ".5",
    "+1",
    "01",
    "0x10",
    "1e",
    "--1",
    "\u0661",  # an Arabic-Indic digit one
]


def value_of(token: str) -> float | None:
    """The double a JSON parser reads, or None when the text is no JSON number or no finite double."""

    def refuse(constant: str) -> None:
        raise ValueError(constant)

    try:
        number = json.loads(token, parse_constant=refuse)
    except ValueError:
        return None
    if not isinstance(number, int | float) or isinstance(number, bool):
        return None
    try:
        value = float(number)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def servable(token: str, whole: bool = False) -> float | None:
    value = value_of(token)
    if value is None or not 0 <= value <= 255 or (whole and not value.is_integer()):
        return None
    return value


ZEROS = ",".join(["0"] * 783)
TENSOR = '{{"inputs": [{{"name": "pixels", "shape": {shape}, "datatype": "{datatype}", {data}}}]}}'
# Where a number can go: (route, body with the number at {n}, whether it is a pixel, whole only).
PLACES = {
    "predict": ("/predict", '{"pixels": [{n},' + ZEROS + "]}", "pixel"),
    "predict-bare": ("/predict", "[{n}," + ZEROS + "]", "pixel"),
    "batch": ("/predict/batch", '{"instances": [[{n},' + ZEROS + "]]}", "pixel"),
    "image": ("/predict/image", '{"image_base64": {n}}', "never"),
    "v2-fp32": ("/v2/models/mnist-cnn/infer", TENSOR.format(shape="[1, 784]", datatype="FP32", data='"data": [{n},' + ZEROS + "]"), "pixel"),
    "v2-uint8": ("/v2/models/mnist-cnn/infer", TENSOR.format(shape="[1, 784]", datatype="UINT8", data='"data": [{n},' + ZEROS + "]"), "whole"),
    "v2-nested": ("/v2/models/mnist-cnn/infer", TENSOR.format(shape="[1, 28, 28, 1]", datatype="FP32", data='"data": [[[[{n}]' + ",[0]" * 27 + "]" + (",[" + ",".join(["[0]"] * 28) + "]") * 27 + "]]"), "pixel"),
    "v2-shape": ("/v2/models/mnist-cnn/infer", TENSOR.format(shape="[{n}, 784]", datatype="FP32", data='"data": [0,' + ZEROS + "]"), "never"),
    "v2-binary-size": ("/v2/models/mnist-cnn/infer", TENSOR.format(shape="[1, 784]", datatype="FP32", data='"parameters": {{"binary_data_size": {n}}}'), "never"),
    "v2-id": ("/v2/models/mnist-cnn/infer", '{"id": {n}, "inputs": [{"name": "pixels", "shape": [1, 784], "datatype": "FP32", "data": [0,' + ZEROS + "]}]}", "never"),
    "v2-parameter": ("/v2/models/mnist-cnn/infer", '{"parameters": {"binary_data_output": {n}}, "inputs": [{"name": "pixels", "shape": [1, 784], "datatype": "FP32", "data": [0,' + ZEROS + "]}]}", "never"),
}  # fmt: skip


@pytest.fixture(scope="module")
def reference(shipped_model_dir):
    """The model itself, to tell what the answer for a pixel value must be."""
    from digit_release.model import LiteRTModel

    model = LiteRTModel.load(shipped_model_dir)

    def answer(value: float) -> np.ndarray:
        pixels = np.zeros((1, 784), dtype=np.float32)
        pixels[0, 0] = value
        return model.predict(pixels)[0]

    return answer


def probabilities_of(route: str, body: dict) -> list[float]:
    if route.startswith("/v2/"):
        return body["outputs"][0]["data"]
    return body["predictions"][0]["probabilities"] if "predictions" in body else body["probabilities"]


@pytest.mark.parametrize("token", NUMBERS, ids=[f"{t[:24]}" for t in NUMBERS])
@pytest.mark.parametrize("place", list(PLACES))
def test_a_number_gets_a_4xx_or_the_right_answer(client, reference, place: str, token: str) -> None:
    route, template, kind = PLACES[place]
    body = template.replace("{n}", token).replace("{{", "{").replace("}}", "}")
    response = client.post(route, content=body.encode(), headers={"Content-Type": "application/json"})
    value = None if kind == "never" else servable(token, whole=kind == "whole")
    if value is None:
        assert 400 <= response.status_code < 500, (response.status_code, response.text)
        assert response.json(), "a client error says what was wrong"
        return
    assert response.status_code == 200, response.text
    assert np.array_equal(probabilities_of(route, response.json()), reference(value))


@pytest.mark.parametrize("token", NUMBERS, ids=[f"{t[:24]}" for t in NUMBERS])
def test_a_number_as_the_model_version_is_not_found(client, token: str) -> None:
    """Not the loaded version ("1"): a 404, or a 400 when longer than a version can be."""
    expected = 400 if len(token) > 64 else 404
    for method, path in (("GET", "/versions/{n}"), ("GET", "/versions/{n}/ready"), ("POST", "/versions/{n}/infer")):
        response = client.request(method, "/v2/models/mnist-cnn" + path.replace("{n}", token), json={})
        assert response.status_code == expected, (path, response.text)
        assert "error" in response.json()


@pytest.mark.parametrize(
    "value",
    [np.float32("nan"), np.float32("inf"), np.float32("-inf"), np.float32(-0.0), np.float32(1e-45), np.float32(-1e-45),
     np.float32(255), np.nextafter(np.float32(255), np.float32(300)), np.float32(3.4e38), np.finfo(np.float32).tiny],
    ids=["nan", "inf", "-inf", "-0.0", "subnormal", "-subnormal", "255", "just-above-255", "huge", "smallest-normal"],
)  # fmt: skip
def test_a_binary_fp32_number_gets_a_4xx_or_the_right_answer(client, reference, value: np.float32) -> None:
    blob = np.zeros(784, dtype="<f4")
    blob[0] = value
    header = json.dumps(
        {
            "inputs": [
                {"name": "pixels", "shape": [1, 784], "datatype": "FP32", "parameters": {"binary_data_size": 3136}}
            ]
        }
    ).encode()
    response = client.post(
        "/v2/models/mnist-cnn/infer",
        content=header + blob.tobytes(),
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    if not (np.isfinite(value) and 0 <= value <= 255):
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "pixels must be finite numbers from 0 to 255"
        return
    assert response.status_code == 200, response.text
    assert np.array_equal(response.json()["outputs"][0]["data"], reference(float(value)))
