"""Hot reload: a new model goes live without a failed request; a bad one never replaces a good one."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np
import pytest

from digit_api.metrics import ServiceMetrics
from digit_api.store import ModelStore, NotReady
from digit_release.manifest import MANIFEST_NAME, TFLITE_NAME, file_entry, manifest_json, read_manifest, write_atomic
from digit_testing.processes import running_api


def publish(model_dir: Path, version: str, tflite: bytes | None = None) -> None:
    """Write a model the way the poller does: the model file first, the manifest last, each atomically."""
    manifest = read_manifest(model_dir)
    files = dict(manifest.files)
    if tflite is not None:
        write_atomic(model_dir / TFLITE_NAME, tflite)
        files[TFLITE_NAME] = file_entry(model_dir / TFLITE_NAME)
    updated = manifest.model_copy(update={"version": version, "files": files})
    write_atomic(model_dir / MANIFEST_NAME, manifest_json(updated).encode())


def test_refresh_swaps_in_a_new_version(model_copy: Path) -> None:
    store = ModelStore(model_copy, ServiceMetrics())
    with pytest.raises(NotReady):
        store.current()
    assert store.refresh() and store.version == "1"
    assert not store.refresh()  # nothing changed: nothing reloaded
    before = store.current()
    publish(model_copy, "2")
    assert store.refresh() and store.version == "2"
    # A request holding the old model keeps it to the end, and it still answers.
    assert before.version == "1" and before.predict(np.zeros((1, 784))).shape == (1, 10)


def test_refresh_keeps_the_old_model_when_the_new_one_is_bad(model_copy: Path, caplog) -> None:
    metrics = ServiceMetrics()
    store = ModelStore(model_copy, metrics)
    store.refresh()
    publish(model_copy, "2", tflite=b"this is not a model")
    assert not store.refresh()
    assert store.version == "1" and store.ready
    assert "new model in" in caplog.text and "refused, still serving version 1" in caplog.text
    assert metrics.reloads.labels("failure")._value.get() == 1
    assert not store.refresh()  # the same broken files are not retried every tick


# LiteRT's C++ core prints this once, on its own, to stderr; every other line is our JSON.
NATIVE_LINE = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."


@pytest.fixture
def start_service(tmp_path: Path):
    """Start the API over a model folder; gives (base URL, function returning its log so far)."""
    services = ExitStack()

    def start(model_dir: Path, **env: str) -> tuple[str, Callable[[], str]]:
        api = services.enter_context(running_api(model_dir, tmp_path, {"LOG_LEVEL": "info", **env}))
        return api.url, api.read_log

    with services:
        yield start


def test_reload_under_load_drops_no_request(start_service, model_copy: Path, digit) -> None:
    base, read_log = start_service(model_copy, RELOAD_INTERVAL="0.2")
    model_dir = model_copy
    pixels, label = digit
    per_client: list[list[tuple[int, str, str, int]]] = [[] for _ in range(4)]
    stop = threading.Event()

    def hammer(results: list) -> None:
        with httpx.Client(base_url=base, timeout=5) as http:
            while not stop.is_set():
                r = http.post("/predict", json={"pixels": pixels})
                body = r.json()
                results.append(
                    (r.status_code, r.headers["X-Model-Version"], body.get("model_version"), body.get("prediction"))
                )

    threads = [threading.Thread(target=hammer, args=(results,)) for results in per_client]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        publish(model_dir, "2")
        deadline = time.monotonic() + 10
        while httpx.get(f"{base}/readyz").json()["model_version"] != "2":
            assert time.monotonic() < deadline, "version 2 never went live"
            time.sleep(0.05)
        time.sleep(0.5)
        # A corrupt replacement: refused, and version 2 keeps serving.
        publish(model_dir, "3", tflite=b"\x00" * 1000)
        time.sleep(1.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join()

    results = [result for client in per_client for result in client]
    assert len(results) > 100
    assert all(status == 200 for status, *_ in results), {r[0] for r in results}
    assert all(header == version for _, header, version, _ in results)  # the header names the model that answered
    assert all(prediction == label for *_, prediction in results)
    assert {version for _, _, version, _ in results} == {"1", "2"}
    for client in per_client:  # each client, in its own order: once it saw version 2, never 1 again
        versions = [version for _, _, version, _ in client]
        assert versions == sorted(versions, key=int)
    assert httpx.get(f"{base}/readyz").json() == {"status": "ready", "model_version": "2"}
    metrics = httpx.get(f"{base}/metrics").text
    assert 'model_reloads_total{result="success"} 2.0' in metrics
    assert 'model_reloads_total{result="failure"} 1.0' in metrics
    assert 'model_info{name="mnist-cnn",version="2"} 1.0' in metrics
    assert "refused, still serving version 2" in read_log()


def log_records(text: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.strip() and line != NATIVE_LINE]
    return [json.loads(line) for line in lines]  # every line is one JSON object


def test_logs_are_json_lines_with_request_ids(start_service, model_copy: Path) -> None:
    base, read_log = start_service(model_copy, LOG_LEVEL="debug")
    httpx.get(f"{base}/healthz", headers={"X-Request-Id": "trace-42"})
    time.sleep(0.3)
    records = log_records(read_log())
    access = [r for r in records if r.get("request_id") == "trace-42"]
    assert len(access) == 1 and access[0]["logger"] == "digit_api.access" and access[0]["level"] == "DEBUG"
    assert access[0]["status"] == 200 and access[0]["path"] == "/healthz" and access[0]["duration_ms"] > 0
    assert any("serving model mnist-cnn version 1" in r["message"] for r in records)


def test_info_level_logs_client_errors_not_successes(start_service, model_copy: Path) -> None:
    base, read_log = start_service(model_copy)
    httpx.post(f"{base}/predict", json={"pixels": [0] * 784}, headers={"X-Request-Id": "ok-1"})
    httpx.post(f"{base}/predict", json={"pixels": [0] * 783}, headers={"X-Request-Id": "bad-1"})
    time.sleep(0.3)
    records = log_records(read_log())
    assert not [r for r in records if r.get("request_id") == "ok-1"]
    [error] = [r for r in records if r.get("request_id") == "bad-1"]
    assert error["level"] == "INFO" and error["status"] == 422 and error["path"] == "/predict"
