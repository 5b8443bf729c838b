"""Prometheus hygiene of /metrics: what is counted, under which names, with bounded labels, and a
scrape that Prometheus' own linter (`promtool check metrics`) passes."""

from __future__ import annotations

import base64
import gzip
import json
import re
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from digit_testing.tooling import require_tool

# The families the service exports, with their types: the names follow Prometheus' conventions
# (base unit in the name, _total on counters, _ratio for 0-1, _info for a constant 1).
FAMILIES = {
    "http_requests": "counter",
    "http_request_duration_seconds": "histogram",
    "predictions": "counter",
    "prediction_confidence_ratio": "histogram",
    "model_info": "gauge",
    "model_reloads": "counter",
    "feedback": "counter",
}
SCANNER_METHODS = [
    "PROPFIND",
    "MKCOL",
    "PURGE",
    "TRACE",
    "OPTIONS",
    "PATCH",
    "PUT",
    "DELETE",
    "CONNECT",
    "LOCK",
    "X-FUZZ",
]


def workload(client, digit) -> None:
    """A little of everything: each route, each kind of error, and a scanner's methods."""
    pixels, _ = digit
    client.post("/predict", json={"pixels": pixels})
    client.post("/predict", json=pixels)
    client.post("/predict/batch", json={"instances": [pixels, pixels]})
    client.post("/feedback", json={"pixels": pixels, "label": 7})
    client.post("/predict", json={"pixels": [1000] * 784})
    client.post("/predict", content=b"x", headers={"Content-Type": "text/plain"})
    client.post("/predict/image", json={"image_base64": base64.b64encode(b"not an image").decode()})
    tensor = {"name": "pixels", "shape": [1, 784], "datatype": "UINT8", "data": pixels}
    client.post("/v2/models/mnist-cnn/infer", json={"inputs": [tensor]})
    client.post(
        "/v2/models/mnist-cnn/infer",
        content=gzip.compress(json.dumps({"inputs": [tensor]}).encode()),
        headers={"Content-Encoding": "gzip"},
    )
    client.post("/v2/models/mnist-cnn/versions/9/infer", json={"inputs": [tensor]})
    for path in ("/healthz", "/readyz", "/model", "/v2", "/v2/health/ready", "/nope", "/api/api/metrics", "/.env"):
        client.get(path)
    for method in SCANNER_METHODS:
        client.request(method, "/predict")
        client.request(method, f"/{method.lower()}")


def scrape(client) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return response.text


def test_predictions_are_counted(client, digit) -> None:
    pixels, label = digit
    for _ in range(3):
        client.post("/predict", json={"pixels": pixels})
    text = scrape(client)
    assert f'predictions_total{{label="{label}"}} 3.0' in text
    assert 'http_requests_total{method="POST",route="/predict",status="200"} 3.0' in text
    assert 'http_request_duration_seconds_count{method="POST",route="/predict",status="200"} 3.0' in text
    assert "prediction_confidence_ratio_count 3.0" in text
    assert 'model_info{name="mnist-cnn",version="1"} 1.0' in text
    assert 'model_reloads_total{result="success"} 1.0' in text


def test_v2_predictions_are_counted_like_the_others(client, digit) -> None:
    pixels, label = digit
    tensor = {"name": "pixels", "shape": [2, 784], "datatype": "FP32", "data": pixels + pixels}
    assert client.post("/v2/models/mnist-cnn/infer", json={"inputs": [tensor]}).status_code == 200
    assert f'predictions_total{{label="{label}"}} 2.0' in scrape(client)


def test_names_and_types_follow_prometheus_conventions(client, digit) -> None:
    workload(client, digit)
    families = {family.name: family.type for family in text_string_to_metric_families(scrape(client))}
    assert families == FAMILIES


def test_no_created_series(client, digit) -> None:
    workload(client, digit)
    text = scrape(client)
    assert "_created" not in text


def test_methods_outside_the_routes_own_are_counted_as_other(client, digit) -> None:
    workload(client, digit)
    scrape(client)  # so that the scrape's own series exists before the count
    methods = set()
    series = 0
    for family in text_string_to_metric_families(scrape(client)):
        if family.name == "http_requests":
            series = len(family.samples)
            methods = {sample.labels["method"] for sample in family.samples}
    assert methods <= {"GET", "HEAD", "POST", "other"}
    assert "other" in methods
    # Each scanner method hit two paths: without the bound that is 22 series more, not 2.
    before = series
    for method in SCANNER_METHODS:
        client.request(method, "/predict")
        client.request(method, f"/{method.lower()}")
    after = next(len(f.samples) for f in text_string_to_metric_families(scrape(client)) if f.name == "http_requests")
    assert after == before


def test_promtool_check_metrics_passes_on_a_scrape_after_a_mixed_workload(client, digit) -> None:
    promtool = require_tool("promtool", "apt-get install --no-install-recommends prometheus")
    workload(client, digit)
    text = scrape(client)
    assert re.search(r'^http_requests_total\{method="other"', text, re.MULTILINE)
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (result.stdout + result.stderr).strip(), result.stdout + result.stderr


@pytest.mark.parametrize(
    "text", ["# TYPE x_created gauge\nx_created 1\n", "# HELP requests Requests\n# TYPE requests counter\nrequests 1\n"]
)
def test_promtool_is_not_a_rubber_stamp(text: str) -> None:
    """The linter the test above relies on does complain about a bad scrape."""
    promtool = require_tool("promtool", "apt-get install --no-install-recommends prometheus")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode != 0


def test_the_docs_and_the_page_are_counted_under_their_paths(client) -> None:
    """Starlette's own routes set no route in the scope; they are still not lumped with the 404s."""
    for path in ("/openapi.json", "/docs", "/", "/js/app.js", "/no-such-page"):
        client.get(path)
    lines = client.get("/metrics").text.splitlines()

    def counted(route: str, status: int) -> bool:
        return any(
            line.startswith(f'http_requests_total{{method="GET",route="{route}",status="{status}"}}') for line in lines
        )

    assert counted("/openapi.json", 200)
    assert counted("/docs", 200)
    assert counted("/", 200)
    assert counted("/js", 200)  # the page's folders, one series each, not one per file
    assert counted("unmatched", 404)
