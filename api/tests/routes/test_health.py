"""Liveness, readiness, the manifest, metrics, docs and the headers every response carries."""

from __future__ import annotations

import json
from pathlib import Path

from digit_release.manifest import TFLITE_NAME


def test_health_ready_and_model(client, shipped_model_dir: Path) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready", "model_version": "1"}
    manifest = client.get("/model").json()
    assert manifest == json.loads((shipped_model_dir / "model.json").read_text())


def test_every_response_names_the_model_version(client) -> None:
    for path in ("/healthz", "/readyz", "/model", "/metrics", "/docs", "/openapi.json", "/no-such-route"):
        assert client.get(path).headers["X-Model-Version"] == "1", path


def test_request_id_is_echoed_or_made(client) -> None:
    assert client.get("/healthz", headers={"X-Request-Id": "abc-123"}).headers["X-Request-Id"] == "abc-123"
    made = client.get("/healthz", headers={"X-Request-Id": "bad id\twith tabs"}).headers["X-Request-Id"]
    assert len(made) == 32 and made != "bad id\twith tabs"


def test_docs_and_schema(client) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    schema = client.get("/openapi.json").json()
    for path in (
        "/predict",
        "/predict/batch",
        "/predict/image",
        "/model",
        "/healthz",
        "/readyz",
        "/metrics",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{name}",
        "/v2/models/{name}/infer",
    ):
        assert path in schema["paths"], path  # fmt: skip
    # Both forms of /predict are documented, each with exactly 784 numbers in 0..255.
    obj, bare = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    for pixels in (obj["properties"]["pixels"], bare):
        assert (pixels["minItems"], pixels["maxItems"]) == (784, 784)
        assert (pixels["items"]["minimum"], pixels["items"]["maximum"]) == (0, 255)


def test_unknown_route_is_a_json_404(client) -> None:
    response = client.get("/api/nope")
    assert response.status_code == 404 and response.json() == {"detail": "Not Found"}


def test_page_is_served_at_the_root_and_under_api(client) -> None:
    for path in ("/", "/api/"):
        response = client.get(path)
        assert response.status_code == 200 and "<html" in response.text


def test_tampered_model_never_reports_ready(make_client, model_copy: Path, caplog) -> None:
    data = bytearray((model_copy / TFLITE_NAME).read_bytes())
    data[1000] ^= 0x55
    (model_copy / TFLITE_NAME).write_bytes(bytes(data))
    client = make_client(model_copy)
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert "does not match the manifest" in ready.json()["reason"]
    assert client.get("/v2/health/ready").status_code == 503
    predict = client.post("/predict", json={"pixels": [0] * 784})
    assert predict.status_code == 503 and "no model is ready" in predict.json()["detail"]
    assert predict.headers["X-Model-Version"] == "none"
    assert client.get("/healthz").status_code == 200  # alive: restarting would not fix the files
    assert "not ready: model in" in caplog.text
    assert 'model_reloads_total{result="failure"} 1.0' in client.get("/metrics").text


def test_an_internal_error_is_a_json_500_with_the_usual_headers(client, caplog) -> None:
    from digit_api.deps import get_store

    def broken():
        raise RuntimeError("disk on fire")

    client.app.dependency_overrides[get_store] = broken
    try:
        response = client.get("/readyz", headers={"X-Request-Id": "boom-1"})
    finally:
        client.app.dependency_overrides.clear()
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error; the X-Request-Id of this response finds it in the logs"}
    assert response.headers["X-Request-Id"] == "boom-1" and response.headers["X-Model-Version"] == "1"
    assert "disk on fire" in caplog.text
    [record] = [r for r in caplog.records if r.message.startswith("unhandled error")]
    assert record.exc_info is not None


def test_wrong_method_is_405_not_a_page(client) -> None:
    assert client.get("/predict").status_code == 405
    assert client.post("/healthz").status_code == 405
    assert client.head("/").status_code == 200
