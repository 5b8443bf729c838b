"""A real Prometheus (Debian's `prometheus` package) scrapes the running API for a few seconds, and
a series is read back through Prometheus' HTTP API, as a dashboard would."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx

from digit_testing.processes import RunningApi
from digit_testing.tooling import require_tool

from .stack import free_port, stop, wait_for


def query(url: str, promql: str) -> list[dict]:
    response = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5)
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_prometheus_scrapes_the_api(api: RunningApi, tmp_path: Path, digit_pixels: list[int]) -> None:
    prometheus = require_tool("prometheus", "apt-get install --no-install-recommends prometheus")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n"
        "  - job_name: digit-api\n"
        f"    static_configs:\n      - targets: ['{api.url.removeprefix('http://')}']\n"
    )
    log = tmp_path / "prometheus.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                prometheus,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/-/ready", process, log)
        for _ in range(5):
            assert httpx.post(f"{api.url}/predict", json={"pixels": digit_pixels}, timeout=10).status_code == 200
        # A few scrapes (one a second), bounded: the series appears once a scrape has seen the requests.
        deadline = time.monotonic() + 30
        while True:
            served = query(url, 'sum(http_requests_total{job="digit-api",method="POST",route="/predict",status="200"})')
            if served and float(served[0]["value"][1]) >= 5:
                break
            assert time.monotonic() < deadline, f"no series after 30 s; prometheus log:\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
        [up] = query(url, 'up{job="digit-api"}')
        assert up["value"][1] == "1"
        [model] = query(url, "model_info")
        assert model["metric"]["name"] == "mnist-cnn" and model["metric"]["version"] == "1"
        targets = httpx.get(f"{url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        assert [(target["health"], target["lastError"]) for target in targets] == [("up", "")]
        assert not query(url, '{__name__=~".+_created"}'), "no _created series"
    finally:
        stop(process)
