"""The shortcut to the prediction path (serving.Shortcut) against FastAPI's own routing.

The busiest routes skip FastAPI's routing and dependency injection. A client must not be able to
tell: the same requests, good and bad, sent to a service with FAST_PATH on and to one with it
off, get the same status, the same headers and the same bytes, and leave the same metrics.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from digit_api.config import MAX_BATCH, MAX_BODY_BYTES
from digit_api.serving import Shortcut

NAME = "mnist-cnn"
HEADER = "Inference-Header-Content-Length"
GOOD = [(i * 37) % 256 for i in range(784)]
J = {"Content-Type": "application/json"}


def v2(data: list, datatype: str = "FP32", shape: list[int] | None = None, **extra) -> bytes:
    tensor = {"name": "pixels", "shape": shape or [len(data) // 784, 784], "datatype": datatype, "data": data}
    return json.dumps({"inputs": [tensor], **extra}).encode()


def v2_binary(rows: int, **parameters) -> tuple[bytes, dict[str, str]]:
    blob = np.tile(np.asarray(GOOD, dtype="<f4"), rows).tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "pixels",
                    "shape": [rows, 784],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(blob)},
                }
            ],
            **parameters,
        }
    ).encode()
    return header + blob, {"Inference-Header-Content-Length": str(len(header)), **J}


class Chunked:
    """A body sent without a Content-Length, in pieces (a new iterator for each client)."""

    def __init__(self, body: bytes, size: int = 4096) -> None:
        self.body, self.size = body, size

    def __iter__(self) -> Iterator[bytes]:
        return (self.body[start : start + self.size] for start in range(0, len(self.body), self.size))


def cases(version: str) -> list[tuple[str, str, object, dict[str, str]]]:
    """(id, path, body, headers): the routes the shortcut takes, every way a request can be wrong, and its neighbours."""
    predict = json.dumps({"pixels": GOOD}).encode()
    batch = json.dumps({"instances": [GOOD] * 3}).encode()
    binary, binary_headers = v2_binary(2, outputs=[{"name": "probabilities", "parameters": {"binary_data": True}}])
    infer = f"/v2/models/{NAME}/infer"
    versioned = f"/v2/models/{NAME}/versions/{version}/infer"
    listed = [
        ("predict", "/predict", predict, J),
        ("predict-api-prefix", "/api/predict", predict, J),
        ("predict-bare-array", "/predict", json.dumps(GOOD).encode(), J),
        ("predict-floats", "/predict", json.dumps({"pixels": [v / 3 for v in GOOD]}).encode(), J),
        ("predict-json-suffix", "/predict", predict, {"Content-Type": "application/vnd.digits+json; charset=utf-8"}),
        ("predict-request-id", "/predict", predict, {**J, "X-Request-Id": "client-id.1"}),
        ("predict-forged-request-id", "/predict", predict, {**J, "X-Request-Id": "bad id\r\nx"}),
        ("predict-gzip", "/predict", gzip.compress(predict), {**J, "Content-Encoding": "gzip"}),
        ("predict-deflate", "/predict", zlib.compress(predict), {**J, "Content-Encoding": "deflate"}),
        ("predict-bad-gzip", "/predict", b"\x1f\x8b not gzip", {**J, "Content-Encoding": "gzip"}),
        ("predict-gzip-bomb", "/predict", gzip.compress(b" " * (MAX_BODY_BYTES + 10)), {**J, "Content-Encoding": "gzip"}),
        ("predict-brotli", "/predict", predict, {**J, "Content-Encoding": "br"}),
        ("predict-declared-too-large", "/predict", predict, {**J, "Content-Length": str(MAX_BODY_BYTES + 1)}),
        ("predict-chunked-too-large", "/predict", Chunked(b"[" + b"0," * MAX_BODY_BYTES), J),
        ("predict-chunked", "/predict", Chunked(predict, 100), J),
        ("predict-783", "/predict", json.dumps({"pixels": GOOD[:-1]}).encode(), J),
        ("predict-256", "/predict", json.dumps({"pixels": [256, *GOOD[1:]]}).encode(), J),
        ("predict-nested", "/predict", json.dumps({"pixels": [GOOD[:28]] * 28}).encode(), J),
        ("predict-extra-key", "/predict", json.dumps({"pixels": GOOD, "x": 1}).encode(), J),
        ("predict-nan", "/predict", b'{"pixels":[NaN' + b",0" * 783 + b"]}", J),
        ("predict-bom", "/predict", b"\xef\xbb\xbf" + predict, J),
        ("predict-truncated", "/predict", predict[:-5], J),
        ("predict-empty", "/predict", b"", J),
        ("predict-not-utf8", "/predict", b'{"pixels":"\xff"}', J),
        ("predict-text-plain", "/predict", predict, {"Content-Type": "text/plain"}),
        ("predict-no-type", "/predict", predict, {}),
        ("predict-trailing-slash", "/predict/", predict, J),
        ("predict-get", "/predict", None, {}),
        ("batch", "/predict/batch", batch, J),
        ("batch-inline-limit", "/predict/batch", json.dumps({"instances": [GOOD] * 8}).encode(), J),
        ("batch-thread", "/predict/batch", json.dumps({"instances": [GOOD] * 9}).encode(), J),
        ("batch-max", "/predict/batch", json.dumps({"instances": [GOOD] * MAX_BATCH}).encode(), J),
        ("batch-over-max", "/predict/batch", json.dumps({"instances": [GOOD] * (MAX_BATCH + 1)}).encode(), J),
        ("batch-empty", "/predict/batch", b'{"instances":[]}', J),
        ("batch-bad-row", "/predict/batch", json.dumps({"instances": [GOOD, GOOD[:10]]}).encode(), J),
        ("batch-text-plain", "/predict/batch", batch, {"Content-Type": "text/plain"}),
        ("v2", infer, v2(GOOD), J),
        ("v2-api-prefix", f"/api{infer}", v2(GOOD), J),
        ("v2-no-type", infer, v2(GOOD), {}),
        ("v2-uint8", infer, v2(GOOD * 2, "UINT8"), J),
        ("v2-nested", infer, json.dumps({"inputs": [{"name": "pixels", "shape": [1, 28, 28], "datatype": "FP32", "data": [GOOD[i : i + 28] for i in range(0, 784, 28)]}]}).encode(), J),
        ("v2-id-and-binary-output", infer, v2(GOOD, id="req-7", outputs=[{"name": "probabilities", "parameters": {"binary_data": True}}]), J),
        ("v2-binary", infer, binary, binary_headers),
        ("v2-binary-gzip", infer, gzip.compress(binary), {**binary_headers, "Content-Encoding": "gzip"}),
        ("v2-binary-bad-length", infer, binary, {**binary_headers, "Inference-Header-Content-Length": "99999999"}),
        ("v2-binary-length-not-number", infer, binary, {**binary_headers, "Inference-Header-Content-Length": "ten"}),
        ("v2-large", infer, v2(GOOD * 100), J),
        ("v2-versioned", versioned, v2(GOOD), J),
        ("v2-wrong-version", f"/v2/models/{NAME}/versions/0.0.0-nope/infer", v2(GOOD), J),
        ("v2-wrong-model", "/v2/models/resnet/infer", v2(GOOD), J),
        ("v2-long-name", f"/v2/models/{'n' * 129}/infer", v2(GOOD), J),
        ("v2-long-version", f"/v2/models/{NAME}/versions/{'9' * 65}/infer", v2(GOOD), J),
        ("v2-encoded-slash", f"/v2/models/{NAME}%2Fx/infer", v2(GOOD), J),
        ("v2-wrong-datatype", infer, v2(GOOD, "BYTES"), J),
        ("v2-wrong-shape", infer, v2(GOOD, shape=[2, 784]), J),
        ("v2-wrong-input-name", infer, v2(GOOD).replace(b'"pixels"', b'"image"'), J),
        ("v2-not-json", infer, b"{", J),
        ("v2-parameter-name-nul", infer, v2(GOOD, parameters={"\x00": 1}), J),
        ("v2-empty", infer, b"", J),
        ("v2-declared-too-large", infer, v2(GOOD), {**J, "Content-Length": str(MAX_BODY_BYTES + 1)}),
        ("v2-chunked-too-large", infer, Chunked(b'{"inputs":[' + b" " * MAX_BODY_BYTES), J),
        ("v2-ready-neighbour", f"/v2/models/{NAME}/ready", None, {}),
        # Found from outside: a header sent twice counts by its first value on both doors.
        ("predict-two-types-plain-first", "/predict", predict, [("Content-Type", "text/plain"), *J.items()]),
        ("predict-two-types-json-first", "/predict", predict, [*J.items(), ("Content-Type", "text/plain")]),
        ("batch-two-types", "/predict/batch", batch, [("Content-Type", "text/plain"), *J.items()]),
        ("v2-two-header-lengths", infer, binary, [(HEADER, "5"), *binary_headers.items()]),
        # ... and header lengths that are digits to str.isdigit() but not to int().
        ("v2-length-superscript", infer, v2(GOOD), {**J, HEADER: b"\xb2"}),
        ("v2-length-4301-digits", infer, v2(GOOD), {**J, HEADER: "9" * 4301}),
        ("v2-repeated-field", infer, b'{"inputs":[],' + v2(GOOD)[1:], J),
        ("v2-form-feed-body", infer, b"\x0c", J),
        ("predict-form-feed-body", "/predict", b"\x0c", J),
        ("v2-int-below-int64", infer, v2(GOOD, parameters={"x": -(2**63) - 1}), J),
    ]  # fmt: skip
    return listed


def exchange(client, path: str, body: object, headers) -> tuple[int, list[tuple[str, str]], bytes]:
    """One request (headers a dict, or a list of pairs to send one twice): status, headers, body."""
    if body is None:
        response = client.get(path, headers=headers)
    else:
        if isinstance(body, Chunked):
            body = iter(body)
        response = client.post(path, content=body, headers=headers)
    named = sorted((name.lower(), value) for name, value in response.headers.items())
    given = dict(headers).get("X-Request-Id")
    if not any(name == "x-request-id" and value == given for name, value in named):
        # A fresh id per response; its form is the same.
        named = [(n, "<generated>" if n == "x-request-id" and re.fullmatch("[0-9a-f]{32}", v) else v) for n, v in named]
    return response.status_code, named, response.content


@pytest.fixture
def doors(make_client, shipped_model_dir: Path):
    """Two services over the shipped model: the shortcut on (as shipped) and off."""
    return make_client(shipped_model_dir, fast_path=True), make_client(shipped_model_dir, fast_path=False)


def test_both_doors_answer_every_request_the_same(doors) -> None:
    fast, slow = doors
    version = fast.get("/healthz").headers["x-model-version"]
    answered = set()
    for case, path, body, headers in cases(version):
        fast_answer = exchange(fast, path, body, headers)
        slow_answer = exchange(slow, path, body, headers)
        assert fast_answer == slow_answer, case
        assert fast_answer[0] < 500, (case, fast_answer)  # client input never makes a server error
        answered.add(fast_answer[0])
    # The corpus reaches the answers a client can get from these routes, not only the happy path.
    assert {200, 400, 404, 405, 413, 415, 422} <= answered


def test_both_doors_leave_the_same_metrics(doors) -> None:
    fast, slow = doors
    version = slow.get("/healthz").headers["x-model-version"]
    fast.get("/healthz")
    for _, path, body, headers in cases(version):
        exchange(fast, path, body, headers)
        exchange(slow, path, body, headers)

    def counted(client) -> list[str]:
        text = client.get("/metrics").text
        return sorted(
            line.split(" ")[0] + " " + line.split(" ")[1]
            for line in text.splitlines()
            if re.match(
                r"(http_requests_total|predictions_total|prediction_confidence_count|http_request_duration_seconds_count)\{",
                line,
            )
        )

    fast_counts, slow_counts = counted(fast), counted(slow)
    assert fast_counts == slow_counts
    assert any('handler="/predict"' in line or 'route="/predict"' in line for line in fast_counts), fast_counts


def test_a_model_not_ready_is_the_same_503_from_both_doors(make_client, tmp_path: Path) -> None:
    empty = tmp_path / "no-model"
    empty.mkdir()
    answers = []
    for fast_path in (True, False):
        client = make_client(empty, fast_path=fast_path)
        answers.append(
            [
                exchange(client, path, body, J)
                for path, body in (
                    ("/predict", json.dumps({"pixels": GOOD}).encode()),
                    (f"/v2/models/{NAME}/infer", v2(GOOD)),
                )
            ]
        )
    assert answers[0] == answers[1]
    assert [status for status, _, _ in answers[0]] == [503, 503]


def test_the_shortcut_takes_only_documented_routes(client) -> None:
    """Every path the shortcut answers is one of the OpenAPI document's POST routes."""
    paths = client.get("/openapi.json").json()["paths"]
    taken = [route for _, route in Shortcut.EXACT.values()] + list(Shortcut.INFER_ROUTES)
    for route in taken:
        assert "post" in paths[route], route


@pytest.mark.parametrize("path", ["/predict", "/predict/batch", f"/v2/models/{NAME}/infer"])
def test_a_client_that_leaves_mid_body_is_a_499_on_both_doors(doors, path: str, caplog) -> None:
    """No answer, no prediction counted, no server error logged: the client closed the request."""

    def leave(client) -> list[dict]:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"5000")],
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
        }  # fmt: skip
        messages = [
            {"type": "http.request", "body": b'{"pixels": [0, 0,', "more_body": True},
            {"type": "http.disconnect"},
        ]
        sent: list[dict] = []

        async def receive() -> dict:
            return messages.pop(0)

        async def send(message: dict) -> None:
            sent.append(message)

        async def call() -> None:
            await client.app(scope, receive, send)

        client.portal.call(call)
        return sent

    for client in doors:
        assert leave(client) == []
        text = client.get("/metrics").text
        route = "/v2/models/{name}/infer" if path.startswith("/v2") else path
        assert f'http_requests_total{{method="POST",route="{route}",status="499"}} 1.0' in text
        assert "predictions_total{" not in text
    assert "unhandled error" not in caplog.text
