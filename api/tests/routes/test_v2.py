"""The Open Inference Protocol routes, as its standard clients use them (JSON and the binary tensor
data extension, compressed bodies, versioned paths), and every way a request can be wrong.

The real clients (tritonclient, kserve) drive a running API in tests/e2e/test_inference_clients.py;
here the requests are built by hand, so each rule of the protocol is pinned down byte by byte.
"""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path

import numpy as np
import pytest

import digit_api
from digit_api.config import MAX_BODY_BYTES

NAME = "mnist-cnn"
INFER = f"/v2/models/{NAME}/infer"
TENSOR = {"name": "pixels", "shape": [1, 784], "datatype": "FP32", "data": [0] * 784}


def request(images: np.ndarray, datatype: str = "FP32", shape: list[int] | None = None, nested: bool = False) -> dict:
    shape = shape or [len(images), 784]
    batch = images.astype(np.float32 if datatype == "FP32" else np.uint8)
    data = batch.reshape(shape).tolist() if nested else batch.ravel().tolist()
    return {"inputs": [{"name": "pixels", "shape": shape, "datatype": datatype, "data": data}]}


def binary_request(images: np.ndarray, datatype: str = "FP32", **parameters) -> tuple[bytes, dict[str, str]]:
    """A body of the binary tensor data extension, as tritonclient builds it."""
    blob = images.reshape(len(images), 784).astype("<f4" if datatype == "FP32" else "u1").tobytes()
    header = {
        "inputs": [
            {
                "name": "pixels",
                "shape": [len(images), 784],
                "datatype": datatype,
                "parameters": {"binary_data_size": len(blob)},
            }
        ],
        **parameters,
    }
    text = json.dumps(header).encode()
    return text + blob, {"Inference-Header-Content-Length": str(len(text))}


def probabilities(response) -> np.ndarray:
    """The output tensor of an answer, JSON or binary."""
    assert response.status_code == 200, response.text
    length = response.headers.get("inference-header-content-length")
    if length is None:
        [output] = response.json()["outputs"]
        return np.asarray(output["data"], dtype=np.float64).reshape(output["shape"])
    header = json.loads(response.content[: int(length)])
    [output] = header["outputs"]
    assert "data" not in output
    blob = response.content[int(length) :]
    assert len(blob) == output["parameters"]["binary_data_size"]
    return np.frombuffer(blob, dtype="<f4").astype(np.float64).reshape(output["shape"])


@pytest.fixture(scope="module")
def four(held_out_digits) -> tuple[np.ndarray, list[int]]:
    images, labels = held_out_digits
    return images[:4], labels[:4].tolist()


@pytest.fixture
def from_predict(client, four) -> np.ndarray:
    """What /predict answers for the four digits: every V2 answer must be exactly this."""
    images, _ = four
    answers = [client.post("/predict", json={"pixels": image.ravel().tolist()}).json() for image in images]
    return np.asarray([answer["probabilities"] for answer in answers])


# ---- health and metadata ------------------------------------------------------------------------


def test_server_metadata_is_this_servers_and_advertises_binary_data(client) -> None:
    meta = client.get("/v2").json()
    assert meta == {"name": "digit-api", "version": digit_api.__version__, "extensions": ["binary_tensor_data"]}
    assert meta["version"] == client.get("/openapi.json").json()["info"]["version"]
    assert meta["version"] != "2.3.0"  # LiteRT's version, which it used to report


def test_health_and_model_metadata(client) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    meta = client.get(f"/v2/models/{NAME}").json()
    assert meta["name"] == NAME and meta["versions"] == ["1"] and meta["platform"] == "tflite"
    assert meta["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 784]}]
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]
    assert client.get(f"/v2/models/{NAME}/ready").json() == {"name": NAME, "ready": True}


def test_versioned_paths_serve_the_loaded_version(client, four, from_predict) -> None:
    assert client.get(f"/v2/models/{NAME}/versions/1").json() == client.get(f"/v2/models/{NAME}").json()
    assert client.get(f"/v2/models/{NAME}/versions/1/ready").json() == {"name": NAME, "ready": True}
    images, _ = four
    response = client.post(f"/v2/models/{NAME}/versions/1/infer", json=request(images))
    assert response.json()["model_version"] == "1"
    assert np.array_equal(probabilities(response), from_predict)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/v2/models/{NAME}/versions/2"),
        ("GET", f"/v2/models/{NAME}/versions/2/ready"),
        ("POST", f"/v2/models/{NAME}/versions/2/infer"),
        ("POST", f"/v2/models/{NAME}/versions/1.0/infer"),
    ],
)
def test_a_version_that_is_not_loaded_is_404(client, method: str, path: str) -> None:
    response = client.request(method, path, json={"inputs": [TENSOR]})
    assert response.status_code == 404
    assert response.json() == {
        "error": f"model {NAME!r} version {path.split('/')[5]!r} is not loaded; this server serves version '1'"
    }


def test_unknown_model_is_404(client) -> None:
    response = client.post("/v2/models/resnet/infer", json={"inputs": [TENSOR]})
    assert response.status_code == 404
    assert response.json() == {"error": "unknown model 'resnet'; this server serves 'mnist-cnn'"}
    for path in ("/v2/models/resnet", "/v2/models/resnet/ready", "/v2/models/resnet/versions/1/infer"):
        assert client.request("POST" if path.endswith("infer") else "GET", path).status_code == 404, path


def test_without_a_model_readiness_is_503_and_the_rest_says_why(make_client, tmp_path: Path) -> None:
    """The choice documented in the README: 503, like /readyz (tritonclient's is_*_ready then say False)."""
    client = make_client(tmp_path / "empty")
    assert client.get("/v2/health/live").json() == {"live": True}
    ready = client.get("/v2/health/ready")
    assert (ready.status_code, ready.json()) == (503, {"ready": False})
    for path in (f"/v2/models/{NAME}/ready", f"/v2/models/{NAME}", f"/v2/models/{NAME}/versions/1/ready"):
        response = client.get(path)
        assert response.status_code == 503, path
        assert response.json()["error"].startswith("no model is ready")
    assert client.post(INFER, json={"inputs": [TENSOR]}).status_code == 503


# ---- inference: JSON -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "form",
    [("FP32", [4, 784], False), ("UINT8", [4, 784], False), ("FP32", [4, 784], True),
     ("FP32", [4, 28, 28, 1], True), ("UINT8", [4, 28, 28, 1], False), ("UINT8", [4, 28, 28, 1], True)],
)  # fmt: skip
def test_infer_answers_exactly_what_predict_answers(client, four, from_predict, form) -> None:
    images, labels = four
    datatype, shape, nested = form
    response = client.post(INFER, json={**request(images, datatype, shape, nested), "id": "req-1"})
    body = response.json()
    assert body["model_name"] == NAME and body["model_version"] == "1" and body["id"] == "req-1"
    assert response.headers["x-model-version"] == "1"
    assert body["outputs"][0]["name"] == "probabilities" and body["outputs"][0]["datatype"] == "FP32"
    assert np.array_equal(probabilities(response), from_predict)
    assert probabilities(response).argmax(axis=1).tolist() == labels


@pytest.mark.parametrize("content_type", [None, "application/json", "application/octet-stream", "text/plain", "application/x-www-form-urlencoded", "nonsense"])  # fmt: skip
def test_json_is_read_whatever_the_content_type(client, four, from_predict, content_type) -> None:
    """tritonclient sends none, its aio client application/octet-stream: the body decides."""
    images, _ = four
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post(INFER, content=json.dumps(request(images)).encode(), headers=headers)
    assert np.array_equal(probabilities(response), from_predict)


def test_no_id_no_id_in_the_answer(client, four) -> None:
    assert "id" not in client.post(INFER, json=request(four[0])).json()


def test_requested_output_by_name(client, four, from_predict) -> None:
    body = {**request(four[0]), "outputs": [{"name": "probabilities"}]}
    assert np.array_equal(probabilities(client.post(INFER, json=body)), from_predict)
    body = {**request(four[0]), "outputs": []}
    assert np.array_equal(probabilities(client.post(INFER, json=body)), from_predict)


def test_kserve_clients_model_name_field_is_accepted(client, four, from_predict) -> None:
    body = {**request(four[0]), "model_name": NAME, "id": "0b6c"}
    assert np.array_equal(probabilities(client.post(INFER, json=body)), from_predict)


# ---- inference: the binary tensor data extension -------------------------------------------------


@pytest.mark.parametrize("datatype", ["FP32", "UINT8"])
def test_binary_input_and_output(client, four, from_predict, datatype: str) -> None:
    images, _ = four
    body, headers = binary_request(images, datatype, parameters={"binary_data_output": True})
    response = client.post(INFER, content=body, headers={**headers, "Content-Type": "application/octet-stream"})
    assert response.headers["content-type"] == "application/octet-stream"
    assert "inference-header-content-length" in response.headers
    # Binary output is the float32 tensor: exactly /predict's numbers, which are float32 printed.
    assert np.array_equal(probabilities(response), from_predict)


def test_binary_input_json_output_and_the_per_output_choice(client, four, from_predict) -> None:
    images, _ = four
    body, headers = binary_request(images)
    response = client.post(INFER, content=body, headers=headers)
    assert "inference-header-content-length" not in response.headers
    assert np.array_equal(probabilities(response), from_predict)
    # An output's own binary_data wins over the request's binary_data_output, both ways.
    body, headers = binary_request(
        images,
        parameters={"binary_data_output": True},
        outputs=[{"name": "probabilities", "parameters": {"binary_data": False}}],
    )
    assert "inference-header-content-length" not in client.post(INFER, content=body, headers=headers).headers
    json_in = {**request(images), "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}]}
    response = client.post(INFER, json=json_in)
    assert "inference-header-content-length" in response.headers
    assert np.array_equal(probabilities(response), from_predict)


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda body, headers: (body, {"Inference-Header-Content-Length": "abc"}), "Inference-Header-Content-Length must be a byte count"),
        (lambda body, headers: (body, {"Inference-Header-Content-Length": str(len(body) + 1)}), "Inference-Header-Content-Length must be a byte count"),
        (lambda body, headers: (body, {"Inference-Header-Content-Length": "-5"}), "Inference-Header-Content-Length must be a byte count"),
        (lambda body, headers: (body, {"Inference-Header-Content-Length": b"\xb2"}), "Inference-Header-Content-Length must be a byte count"),
        (lambda body, headers: (body, {"Inference-Header-Content-Length": "9" * 4301}), "Inference-Header-Content-Length must be a byte count"),
        (lambda body, headers: (body[:-4], headers), "the binary part of the body holds 3132 bytes, binary_data_size says 3136"),
        (lambda body, headers: (body + b"\0", headers), "the binary part of the body holds 3137 bytes"),
        (lambda body, headers: (body.replace(b'"binary_data_size": 3136', b'"binary_data_size": 3135'), headers), "binary_data_size must be 3136 for FP32 of shape [1, 784], got 3135"),
        (lambda body, headers: (body.replace(b'"binary_data_size": 3136', b'"binary_data_size": true'), headers), "binary_data_size must be 3136"),
        (lambda body, headers: (body[:-4] + np.float32("nan").tobytes(), headers), "pixels must be finite numbers from 0 to 255"),
        (lambda body, headers: (body[:-4] + np.float32("inf").tobytes(), headers), "pixels must be finite numbers from 0 to 255"),
        (lambda body, headers: (body[:-4] + np.float32(255.5).tobytes(), headers), "pixels must be finite numbers from 0 to 255"),
        (lambda body, headers: (body[:-4] + np.float32(-1e-45).tobytes(), headers), "pixels must be finite numbers from 0 to 255"),
    ],
    ids=["length-not-a-number", "length-past-the-body", "length-negative", "length-superscript-two", "length-4301-digits", "binary-short", "binary-long", "size-wrong", "size-bool", "nan", "inf", "above-255", "negative-subnormal"],
)  # fmt: skip
def test_bad_binary_requests_get_a_400(client, mangle, message: str) -> None:
    body, headers = mangle(*binary_request(np.zeros((1, 784))))
    response = client.post(INFER, content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_binary_data_needs_binary_data_size_and_not_data_too(client) -> None:
    text = json.dumps({"inputs": [TENSOR]}).encode()
    response = client.post(INFER, content=text + b"\0" * 8, headers={"Inference-Header-Content-Length": str(len(text))})
    assert response.status_code == 400
    assert "no input has binary_data_size" in response.json()["error"]
    body, headers = binary_request(np.zeros((1, 784)))
    both = body.replace(b'"datatype": "FP32"', b'"datatype": "FP32", "data": [1]')
    headers = {"Inference-Header-Content-Length": str(int(headers["Inference-Header-Content-Length"]) + 13)}
    response = client.post(INFER, content=both, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"] == "inputs[0] has both data and binary_data_size: send one"


# ---- compressed bodies ---------------------------------------------------------------------------


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("coding", "compress"),
    [("gzip", gzip.compress), ("x-gzip", gzip.compress), ("deflate", zlib.compress), ("deflate", raw_deflate), ("GZip", gzip.compress)],
    ids=["gzip", "x-gzip", "deflate-zlib", "deflate-raw", "case"],
)  # fmt: skip
def test_compressed_bodies(client, four, from_predict, coding: str, compress) -> None:
    images, _ = four
    body = compress(json.dumps(request(images)).encode())
    response = client.post(INFER, content=body, headers={"Content-Encoding": coding})
    assert np.array_equal(probabilities(response), from_predict)
    binary, headers = binary_request(images)
    response = client.post(INFER, content=compress(binary), headers={**headers, "Content-Encoding": coding})
    assert np.array_equal(probabilities(response), from_predict)


def test_the_body_limit_applies_after_decompression(client) -> None:
    """A compression bomb: 3 KB on the wire, 3 MiB inflated, a 413 before it is all inflated."""
    bomb = gzip.compress(b'{"inputs": [{"data": [' + b"0," * (3 * 1024 * 1024 // 2) + b"0]}]}")
    assert len(bomb) < 20_000
    response = client.post(INFER, content=bomb, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert response.json() == {"error": f"request body is larger than the limit of {MAX_BODY_BYTES} bytes"}
    # Just under the limit once inflated: read, and judged on its content.
    under = gzip.compress(b" " * (MAX_BODY_BYTES - 4000) + json.dumps({"inputs": [TENSOR]}).encode())
    assert client.post(INFER, content=under, headers={"Content-Encoding": "gzip"}).status_code == 200


@pytest.mark.parametrize(
    ("coding", "body", "status", "message"),
    [
        ("gzip", b"not gzip at all", 400, "body is not valid gzip data"),
        ("gzip", gzip.compress(b'{"inputs": []}')[:-6], 400, "body is not valid gzip data: the compressed stream ends early"),
        ("gzip", gzip.compress(b"{}") + b"trailing", 400, "body is not valid gzip data: data after the end"),
        ("deflate", b"\x78\x9c garbage", 400, "body is not valid deflate data"),
        ("br", b"\x0b\x02\x80{}\x03", 415, "Content-Encoding 'br' is not supported: send gzip, deflate or identity"),
        ("gzip, gzip", gzip.compress(gzip.compress(b"{}")), 415, "is not supported"),
    ],
    ids=["not-gzip", "truncated", "trailing", "bad-deflate", "brotli", "two-codings"],
)  # fmt: skip
def test_bad_compressed_bodies(client, coding: str, body: bytes, status: int, message: str) -> None:
    response = client.post(INFER, content=body, headers={"Content-Encoding": coding})
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_compressed_bodies_work_on_the_contract_routes_too(client, digit) -> None:
    pixels, label = digit
    body = gzip.compress(json.dumps({"pixels": pixels}).encode())
    response = client.post(
        "/predict", content=body, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
    )
    assert response.status_code == 200 and response.json()["prediction"] == label
    response = client.post(
        "/predict", content=b"junk", headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"].startswith("body is not valid gzip data")


# ---- what the request gets wrong -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        ({"shape": [1, 783], "data": [0] * 783}, "input shape must be [N, 784] or [N, 28, 28, 1], got [1, 783]"),
        ({"shape": [2, 784], "data": [0] * 784}, "data holds 784 numbers, shape [2, 784] needs 1568"),
        ({"shape": [0, 784], "data": []}, "batch size must be 1 to 128, got 0"),
        ({"shape": [129, 784], "data": [0] * 784}, "batch size must be 1 to 128, got 129"),
        ({"shape": [-1, 784], "data": [0] * 784}, "batch size must be 1 to 128, got -1"),
        ({"datatype": "UINT8", "data": [0.5] * 784}, "UINT8 data must be whole numbers"),
        ({"data": [300] * 784}, "pixels must be numbers from 0 to 255"),
        ({"data": [-1] + [0] * 783}, "pixels must be numbers from 0 to 255"),
        ({"data": ["a"] * 784}, "data must hold only numbers"),
        ({"data": [None] * 784}, "data must hold only numbers"),
        ({"data": [True] + [0] * 783}, "data must hold only numbers"),
        ({"data": [{"x": 1}] + [0] * 783}, "data must hold only numbers"),
        ({"data": 0}, "inputs[0] needs data (a list of numbers) or parameters.binary_data_size"),
        ({"data": [[0, 0], [0]]}, "data holds 3 numbers, shape [1, 784] needs 784"),
        ({"data": [[0]] + [0] * 783}, "data must be a flat list or nested as the shape [1, 784]"),
        ({"data": [[[0] * 28] * 28]}, "data must be a flat list or nested as the shape [1, 784]"),
        ({"data": [[0] * 783, [0]]}, "data must be a flat list or nested as the shape [1, 784]"),
        ({"shape": [1, 28, 28, 1], "data": [[0] * 784]}, "data must be a flat list or nested as the shape [1, 28, 28, 1]"),
        ({"shape": [2, 784], "data": [[0] * 783, [0] * 785]}, "data must be a flat list or nested as the shape [2, 784]"),
        ({"shape": [2, 784], "data": [[0] * 784, 0] + [0] * 783}, "data must be a flat list or nested as the shape [2, 784]"),
        ({"shape": [1, 28, 28, 1], "data": [[[[]] + [[0]] * 27] + [[[0]] * 28] * 26 + [[[0, 0]] + [[0]] * 27]]}, "data must be a flat list or nested as the shape [1, 28, 28, 1]"),
        ({"shape": [1, 28, 28, 1], "data": [[[0] * 28] * 28]}, "data must be a flat list or nested as the shape [1, 28, 28, 1]"),
        ({"datatype": "INT64"}, "datatype must be FP32 or UINT8, got 'INT64'"),
        ({"datatype": "FP16"}, "datatype must be FP32 or UINT8, got 'FP16'"),
        ({"shape": [True, 784]}, "shape must be a list of integers"),
        ({"shape": [1.5, 784]}, "shape must be a list of integers"),
        ({"shape": "1,784"}, "shape must be a list of integers"),
        ({"shape": [1, 784, 1, 1, 1]}, "shape must be a list of integers"),
        ({"name": "image"}, "unknown input 'image': this model's one input is 'pixels'"),
        ({"name": ["pixels"]}, "unknown input a list: this model's one input is 'pixels'"),
        ({"extra": 1}, "inputs[0] has unknown fields ['extra']"),
        ({"parameters": {"shared_memory_region": "r"}}, "inputs[0].parameters.shared_memory_region is not supported"),
        ({"parameters": []}, "inputs[0].parameters must be a JSON object"),
    ],
)  # fmt: skip
def test_bad_tensors_get_a_400_that_names_the_problem(client, tensor: dict, message: str) -> None:
    response = client.post(INFER, json={"inputs": [{**TENSOR, **tensor}]})
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"inputs": [TENSOR, {**TENSOR, "name": "mask"}]}, "inputs must be a list of one tensor, 'pixels'"),
        ({"inputs": []}, "inputs must be a list of one tensor, 'pixels'"),
        ({"inputs": {"pixels": TENSOR}}, "inputs must be a list of one tensor, 'pixels'"),
        ({}, "inputs must be a list of one tensor, 'pixels'"),
        ({"inputs": [TENSOR], "outputs": [{"name": "logits"}]}, "unknown output 'logits': this model's one output is 'probabilities'"),
        ({"inputs": [TENSOR], "outputs": [{}]}, "unknown output None"),
        ({"inputs": [TENSOR], "outputs": [{"name": "probabilities"}] * 2}, "outputs must be a list of at most one tensor"),
        ({"inputs": [TENSOR], "outputs": [{}] * 100_000}, "outputs must be a list of at most one tensor"),
        ({"inputs": [TENSOR], "outputs": [{"name": "probabilities", "parameters": {"classification": 3}}]}, "outputs[0].parameters.classification is not supported"),
        ({"inputs": [TENSOR], "outputs": [{"name": "probabilities", "parameters": {"binary_data": "yes"}}]}, "outputs[0].binary_data must be true or false"),
        ({"inputs": [TENSOR], "parameters": {"binary_data_output": 1}}, "parameters.binary_data_output must be true or false"),
        ({"inputs": [TENSOR], "parameters": {f"p{i}": i for i in range(100)}}, "parameters must be a JSON object of at most 64 parameters"),
        ({"inputs": [TENSOR], "parameters": {"nested": {"a": 1}}}, "parameters.'nested': a parameter is a boolean, a string or a number"),
        ({"inputs": [TENSOR], "parameters": {"list": [1]}}, "parameters.'list': a parameter is a boolean"),
        ({"inputs": [TENSOR], "parameters": {"none": None}}, "parameters.'none': a parameter is a boolean"),
        ({"inputs": [TENSOR], "parameters": {"big": 2**64 - 1}}, "parameters.'big': a parameter is a boolean"),
        ({"inputs": [TENSOR], "parameters": {"big": 1e300}}, "parameters.'big': a parameter is a boolean"),
        ({"inputs": [{**TENSOR, "parameters": {"x": {}}}]}, "inputs[0].parameters.'x': a parameter is a boolean"),
        ({"inputs": [TENSOR], "id": 7}, "id must be a string of at most 256 characters"),
        ({"inputs": [TENSOR], "id": "x" * 257}, "id must be a string of at most 256 characters"),
        ({"inputs": [TENSOR], "model_name": 3}, "model_name must be a string"),
        ({"inputs": [TENSOR], "model_name": ["x"]}, "model_name must be a string"),
        ({"input": [TENSOR]}, "the request has unknown fields ['input']"),
        ({"inputs": [TENSOR], **{f"k{i}": i for i in range(100_000)}}, "the request has unknown fields ['...']"),
        ([TENSOR], "the request must be a JSON object"),
    ],
)  # fmt: skip
def test_bad_requests_get_a_400_that_names_the_problem(client, body, message: str) -> None:
    response = client.post(INFER, json=body)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_whole_numbers_written_as_floats_are_integers(client, four, from_predict) -> None:
    """JSON Schema's integers (the OpenAPI document's word) include 4.0 and 784.0."""
    body = request(four[0])
    body["inputs"][0]["shape"] = [4.0, 784.0]
    assert np.array_equal(probabilities(client.post(INFER, json=body)), from_predict)


def test_protocol_parameters_that_do_not_concern_this_server_are_ignored(client) -> None:
    """tritonclient sends priority, timeout, sequence ids and custom parameters."""
    body = {
        "inputs": [{**TENSOR, "parameters": {"note": "x"}}],
        "parameters": {"priority": 1, "timeout": 100, "w": -2.5, "b": 2**63, "s": "x", "t": True},
    }
    assert client.post(INFER, json=body).status_code == 200


def test_a_parameter_named_with_a_nul_is_read_like_any_other(client) -> None:
    """Found by schemathesis: simdjson looks names up as C strings, and such a name was a 500."""
    body = {"inputs": [TENSOR], "parameters": {"\x00": 1, "a\x00b": "x", "a": True}}
    assert client.post(INFER, json=body).status_code == 200
    body["parameters"] = {"a": True, "a\x00": [1, 2]}
    response = client.post(INFER, json=body)
    assert response.status_code == 400
    assert "a parameter is a boolean, a string or a number" in response.json()["error"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "body is empty: send a JSON inference request"),
        (b"   ", "body is empty: send a JSON inference request"),
        (b'{"inputs": [', "body is not valid JSON"),
        (b"\xff\xfe", "body is not valid JSON"),
        (b'{"id": "\\ud800", "inputs": []}', "body is not valid JSON"),
        (b"[" * 5000 + b"]" * 5000, "body is not valid JSON"),
        (b"\x0c", "body is not valid JSON"),  # a form feed is no JSON whitespace
        (b'{"inputs": [], "parameters": {"x": -9223372036854775809}}', "an integer beyond 64 bits"),
        (b'{"inputs": [], "inputs": []}', "the request has the field(s) ['inputs'] more than once"),
        (b'{"inputs": [], "parameters": {"p": 1, "p": 2}}', "parameters names a parameter more than once"),
    ],
    ids=[
        "empty",
        "blank",
        "truncated",
        "not-utf8",
        "lone-surrogate",
        "too-deep",
        "form-feed",
        "int-below-int64",
        "field-twice",
        "parameter-twice",
    ],
)
def test_unreadable_bodies_get_a_400(client, raw: bytes, message: str) -> None:
    response = client.post(INFER, content=raw)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_a_huge_body_gets_the_protocols_error_shape(client) -> None:
    response = client.post(INFER, content=b"0" * (MAX_BODY_BYTES + 1))
    assert response.status_code == 413
    assert response.json() == {"error": f"request body is larger than the limit of {MAX_BODY_BYTES} bytes"}
