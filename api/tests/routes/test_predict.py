"""The prediction routes: right answers for real held-out digits, and a named 4xx for every bad input."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from digit_api.config import MAX_BATCH, MAX_BODY_BYTES


def png_of(image: np.ndarray, scale: int = 10, invert: bool = True) -> bytes:
    """A held-out digit as a user's drawing: enlarged, dark ink on white, PNG."""
    big = np.kron(image, np.ones((scale, scale), dtype=np.uint8))
    buffer = io.BytesIO()
    Image.fromarray(255 - big if invert else big).save(buffer, format="PNG")
    return buffer.getvalue()


def check_answer(body: dict, label: int) -> None:
    assert body["prediction"] == label
    assert body["probability"] == max(body["probabilities"]) > 0.5
    assert len(body["probabilities"]) == 10 and sum(body["probabilities"]) == pytest.approx(1, abs=1e-4)
    assert body["model_version"] == "1"


def test_predict_object_form(client, digit) -> None:
    pixels, label = digit
    response = client.post("/predict", json={"pixels": pixels})
    assert response.status_code == 200
    check_answer(response.json(), label)
    assert response.headers["X-Model-Version"] == "1"


def test_predict_bare_array_form_and_floats(client, digit) -> None:
    pixels, label = digit
    response = client.post("/predict", json=[p + 0.25 if p < 255 else 255.0 for p in pixels])
    assert response.status_code == 200
    check_answer(response.json(), label)


def test_every_route_answers_under_api_too(client, digit) -> None:
    pixels, label = digit
    check_answer(client.post("/api/predict", json={"pixels": pixels}).json(), label)
    assert client.get("/api/readyz").status_code == 200
    assert client.get("/api/openapi.json").json()["info"]["title"] == "Digit recognition API"


def test_predict_batch(client, held_out_digits) -> None:
    images, labels = held_out_digits
    instances = images[:50].reshape(50, 784).tolist()
    response = client.post("/predict/batch", json={"instances": instances})
    assert response.status_code == 200
    body = response.json()
    predicted = [p["prediction"] for p in body["predictions"]]
    assert len(predicted) == 50 and body["model_version"] == "1"
    # The model is 99% accurate: at most a couple of these 50 may be wrong, and each must match /predict.
    assert sum(p == y for p, y in zip(predicted, labels[:50].tolist(), strict=True)) >= 48
    single = client.post("/predict", json={"pixels": instances[7]}).json()
    assert body["predictions"][7]["probabilities"] == pytest.approx(single["probabilities"], abs=1e-6)


def test_predict_image_multipart_and_base64(client, held_out_digits) -> None:
    images, labels = held_out_digits
    for image, label in zip(images[:5], labels[:5].tolist(), strict=True):
        png = png_of(image)
        response = client.post("/predict/image", files={"image": ("digit.png", png, "image/png")})
        assert response.status_code == 200, response.text
        check_answer(response.json(), label)
        assert len(response.json()["pixels"]) == 784
        encoded = "data:image/png;base64," + base64.b64encode(png).decode()
        assert client.post("/predict/image", json={"image_base64": encoded}).json()["prediction"] == label


GOOD = [0] * 784


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"pixels": [0] * 783}, 422, "pixels: List should have at least 784 items after validation, not 783"),
        ({"pixels": [0] * 785}, 422, "pixels: List should have at most 784 items after validation, not 785"),
        ([0] * 783, 422, "pixels: List should have at least 784 items"),
        ({"pixels": []}, 422, "pixels: List should have at least 784 items"),
        ({"pixels": [*GOOD[:-1], -1]}, 422, "pixels[783]: Input should be greater than or equal to 0"),
        ({"pixels": [256, *GOOD[1:]]}, 422, "pixels[0]: Input should be less than or equal to 255"),
        ({"pixels": ["7", *GOOD[1:]]}, 422, "pixels[0]: Input should be a valid number"),
        ({"pixels": [True, *GOOD[1:]]}, 422, "pixels[0]: Input should be a valid number"),
        ({"pixels": [None, *GOOD[1:]]}, 422, "pixels[0]: Input should be a valid number"),
        ({"pixels": [*GOOD[1:], [0, 0]]}, 422, "pixels[783]: Input should be a valid number"),
        ({"pixels": [GOOD[:28]] * 28}, 422, "pixels: Value error, pixels must be one flat list of 784 numbers"),
        ({"pixel": GOOD}, 422, "pixels: Field required"),
        ({"pixels": GOOD, "extra": 1}, 422, "extra: Extra inputs are not permitted"),
        ({"pixels": GOOD, "array": 1}, 422, "array: Extra inputs are not permitted"),
        ("seven", 422, "body: Input should be an object"),
        (17, 422, "body: Input should be an object"),
    ],
    ids=["783", "785", "bare-783", "empty-list", "-1", "256", "string", "bool", "null", "nested", "28x28-nested",
         "wrong-key", "extra-key", "key-named-like-a-tag", "string-body", "number-body"],
)  # fmt: skip
def test_bad_pixels_get_a_named_422(client, body, status: int, message: str) -> None:
    response = client.post("/predict", json=body)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert message in response.json()["detail"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"pixels": [NaN' + b", 0" * 783 + b"]}", "pixels[0]: Input should be a finite number"),
        (b'{"pixels": [Infinity' + b", 0" * 783 + b"]}", "pixels[0]: Input should be a finite number"),
        (b'{"pixels": [1e999' + b", 0" * 783 + b"]}", "pixels[0]: Input should be a finite number"),
        (b"", "body is empty"),
        (b'{"pixels": [0, 0', "body is not valid JSON"),
    ],
    ids=["NaN", "Infinity", "overflow", "empty-body", "truncated-json"],
)
def test_malformed_json_gets_a_named_422(client, raw: bytes, message: str) -> None:
    response = client.post("/predict", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert message in response.json()["detail"]


def test_wrong_content_type_is_415(client) -> None:
    response = client.post("/predict", content=json.dumps({"pixels": GOOD}), headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    assert response.json()["detail"] == "Content-Type must be application/json, got text/plain"
    form = client.post("/predict", data={"pixels": "0"})
    assert form.status_code == 415
    image_as_text = client.post("/predict/image", content=b"abc", headers={"Content-Type": "text/plain"})
    assert image_as_text.status_code == 415 and "multipart/form-data" in image_as_text.json()["detail"]


def test_huge_body_is_413_before_it_is_read(client) -> None:
    huge = b"[" + b"0," * (MAX_BODY_BYTES // 2) + b"0]"
    response = client.post("/predict", content=huge, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["detail"] == f"request body is larger than the limit of {MAX_BODY_BYTES} bytes"


def test_huge_body_on_v2_gets_the_protocols_error_shape(client) -> None:
    huge = b"[" + b"0," * MAX_BODY_BYTES + b"0]"
    response = client.post("/v2/models/mnist-cnn/infer", content=huge, headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "larger than the limit" in response.json()["error"]


def test_huge_chunked_body_is_413(client) -> None:
    """No Content-Length to trust: the limit is counted as the body streams in."""

    def chunks():
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b" " * 65536

    response = client.post("/predict", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413


@pytest.mark.parametrize("route", ["/predict", "/predict/batch", "/predict/image", "/v2/models/mnist-cnn/infer"])
def test_huge_chunked_body_is_413_on_every_route(client, route: str) -> None:
    chunks = (b" " * 65536 for _ in range(MAX_BODY_BYTES // 65536 + 2))
    response = client.post(route, content=chunks, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "larger than the limit" in response.text


def test_huge_chunked_multipart_upload_is_413(client) -> None:
    """A multipart upload streamed without a Content-Length, over the limit: 413, as any other body."""
    boundary = "digitboundary"

    def chunks():
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="d.png"\r\n'.encode()
        yield b"Content-Type: image/png\r\n\r\n"
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b"\x89" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post(
        "/predict/image", content=chunks(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert response.status_code == 413, response.text
    assert response.json() == {"detail": f"request body is larger than the limit of {MAX_BODY_BYTES} bytes"}


def test_oversize_batch_names_the_limit(client) -> None:
    response = client.post("/predict/batch", json={"instances": [[0] * 784] * (MAX_BATCH + 1)})
    assert response.status_code == 422
    assert f"instances: List should have at most {MAX_BATCH} items" in response.json()["detail"]
    assert client.post("/predict/batch", json={"instances": []}).status_code == 422
    bad_row = client.post("/predict/batch", json={"instances": [[0] * 784, [0] * 10]})
    assert "instances[1]: List should have at least 784 items" in bad_row.json()["detail"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"files": {"image": ("x.png", b"\x89PNG\r\n\x1a\n broken", "image/png")}}, "damaged"),
        ({"files": {"image": ("x.txt", b"hello", "text/plain")}}, "PNG or JPEG"),
        ({"files": {"photo": ("x.png", b"x", "image/png")}}, "multipart field 'image' with a file is required"),
        (
            {"files": [("image", ("a.png", b"x", "image/png")), ("image", ("b.png", b"x", "image/png"))]},
            "multipart body not readable",
        ),
        (
            {"files": {"image": ("x.png", b"x", "image/png")}, "data": {"note": "x"}},
            "unknown multipart field(s) ['note']",
        ),
        ({"json": {"image_base64": "%%%not base64%%%"}}, "image_base64: Value error, not base64"),
        ({"json": {"image_base64": ""}}, "image_base64: Value error, not base64"),
        ({"json": {"image_base64": "data:image/png;base64,"}}, "image_base64: Value error, not base64"),
        ({"json": {"image_base64": "data:text/plain;base64,AAAA"}}, "image_base64: Value error, not base64"),
        ({"json": {"image_base64": "AAA"}}, "image_base64: Value error, not base64"),
        ({"json": {"image_base64": "AAAA\nAAAA"}}, "image_base64: Value error, not base64"),
        ({"json": {"image_base64": "AAAA"}}, "PNG or JPEG"),
        ({"json": {"image_base64": 7}}, "image_base64: Input should be a valid string"),
        ({"json": {"image": "abc"}}, "image_base64: Field required"),
    ],
    ids=[
        "broken-png",
        "text-file",
        "wrong-field",
        "two-files",
        "extra-field",
        "bad-base64",
        "empty-base64",
        "empty-data-url",
        "text-data-url",
        "unpadded",
        "line-break",
        "not-an-image",
        "number",
        "wrong-key",
    ],
)
def test_bad_images_get_a_named_422(client, kwargs: dict, message: str) -> None:
    response = client.post("/predict/image", **kwargs)
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]


def test_blank_image_is_a_422_not_a_guess(client) -> None:
    blank = png_of(np.zeros((28, 28), dtype=np.uint8))
    response = client.post("/predict/image", files={"image": ("blank.png", blank, "image/png")})
    assert response.status_code == 422
    assert "no ink" in response.json()["detail"]
