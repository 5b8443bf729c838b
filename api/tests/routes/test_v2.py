"""The Open Inference Protocol routes, as a KServe V2 client uses them."""

from __future__ import annotations

import json

import numpy as np
import pytest

NAME = "mnist-cnn"


def test_health_and_metadata(client) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    meta = client.get(f"/v2/models/{NAME}").json()
    assert meta["name"] == NAME and meta["versions"] == ["1"] and meta["platform"] == "tflite"
    assert meta["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 784]}]
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]
    assert client.get(f"/v2/models/{NAME}/ready").json() == {"name": NAME, "ready": True}


@pytest.mark.parametrize(
    ("datatype", "shape", "nested"),
    [("FP32", [4, 784], False), ("UINT8", [4, 784], False), ("FP32", [4, 28, 28, 1], True), ("UINT8", [4, 28, 28, 1], False)],
)  # fmt: skip
def test_infer_gives_the_labels_of_held_out_digits(client, held_out_digits, datatype, shape, nested) -> None:
    images, labels = held_out_digits
    batch = images[:4].astype(np.float32 if datatype == "FP32" else np.uint8)
    data = batch.reshape(shape).tolist() if nested else batch.ravel().tolist()
    request = {"id": "req-1", "inputs": [{"name": "pixels", "shape": shape, "datatype": datatype, "data": data}]}
    response = client.post(f"/v2/models/{NAME}/infer", json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == NAME and body["model_version"] == "1" and body["id"] == "req-1"
    [output] = body["outputs"]
    assert output["shape"] == [4, 10] and output["datatype"] == "FP32"
    assert np.asarray(output["data"]).reshape(4, 10).argmax(axis=1).tolist() == labels[:4].tolist()


@pytest.mark.parametrize(
    ("tensor", "status", "message"),
    [
        ({"shape": [1, 783], "datatype": "FP32", "data": [0] * 783}, 400, "input shape must be [N, 784] or [N, 28, 28, 1]"),
        ({"shape": [2, 784], "datatype": "FP32", "data": [0] * 784}, 400, "data holds 784 numbers, shape [2, 784] needs 1568"),
        ({"shape": [0, 784], "datatype": "FP32", "data": []}, 400, "batch size must be 1 to 128"),
        ({"shape": [1, 784], "datatype": "UINT8", "data": [0.5] * 784}, 400, "UINT8 data must be whole numbers"),
        ({"shape": [1, 784], "datatype": "FP32", "data": [300] * 784}, 400, "pixels must be finite numbers from 0 to 255"),
        ({"shape": [1, 784], "datatype": "FP32", "data": ["a"] * 784}, 400, "data must hold only numbers"),
        ({"shape": [1, 784], "datatype": "FP32", "data": [[0, 0], [0]]}, 400, "evenly nested list of numbers"),
        ({"shape": [1, 784], "datatype": "INT64", "data": [0] * 784}, 400, "datatype: Input should be 'FP32' or 'UINT8'"),
    ],
    ids=["783", "count", "empty", "uint8-float", "range", "strings", "ragged", "datatype"],
)  # fmt: skip
def test_bad_tensors_get_the_protocols_error_body(client, tensor: dict, status: int, message: str) -> None:
    response = client.post(f"/v2/models/{NAME}/infer", json={"inputs": [{"name": "pixels", **tensor}]})
    assert response.status_code == status
    assert message in response.json()["error"]


def test_unknown_model_is_404(client) -> None:
    tensor = {"name": "pixels", "shape": [1, 784], "datatype": "UINT8", "data": [0] * 784}
    response = client.post("/v2/models/resnet/infer", json={"inputs": [tensor]})
    assert response.status_code == 404
    assert response.json() == {"error": "unknown model 'resnet'; this server serves 'mnist-cnn'"}
    assert client.get("/v2/models/resnet").status_code == 404


TENSOR = {"name": "pixels", "shape": [1, 784], "datatype": "FP32", "data": [0] * 784}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"inputs": [{**TENSOR, "data": [True] + [0] * 783}]}, "data must hold only numbers"),
        ({"inputs": [{**TENSOR, "shape": [True, 784]}]}, "shape[0]: Input should be a valid integer"),
        ({"inputs": [TENSOR], "outputs": [{}] * 100_000}, "outputs: List should have at most 1 item"),
    ],
    ids=["bool-data", "bool-shape", "huge-outputs"],
)
def test_hostile_bodies_get_a_400(client, body: dict, message: str) -> None:
    response = client.post(f"/v2/models/{NAME}/infer", json=body)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_an_id_that_cannot_be_echoed_is_refused(client) -> None:
    """A lone surrogate is valid JSON escaping but no text: it is refused, not echoed into a 500."""
    raw = json.dumps({"id": "ID", "inputs": [TENSOR]}).replace('"ID"', '"\\ud800"').encode()
    assert b'"\\ud800"' in raw
    response = client.post(f"/v2/models/{NAME}/infer", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "error" in response.json()
