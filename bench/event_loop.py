"""Event-loop benchmark: does /healthz stay fast while large V2 bodies are being parsed?

It starts `python -m digit_api` (one worker, as `make run` does), then, several rounds over:

- sends eight 2 MiB-class V2 infer bodies at once, each from its own connection: the data nested as
  [N, 28, 28, 1], the form that once cost ~220 ms of Python each on the event loop;
- meanwhile asks GET /healthz every few milliseconds on a keep-alive connection, and records how
  long each answer took while any of the eight was still in flight.

It prints the /healthz latencies (p50, p99, max) during the parses, how long the eight took, and
the same for a pathological body (2 MiB of tiny nested lists, the worst the parser sees). The
target is /healthz within 20 ms while the bodies are parsed. It is a benchmark, not a test: it
asserts nothing (api/tests/routes/test_v2_event_loop.py checks the behaviour, without a clock).
Loopback only; bounded in requests and time. The client shares the machine with the server, and
so does anything else running: the figures move with the machine's load.

    .venv/bin/python bench/event_loop.py [--rounds 5] [--json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
BODIES = 8
PROBE_INTERVAL = 0.002
TARGET_MS = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def nested_body(seed: int) -> bytes:
    """A valid request of 128 digits as [128, 28, 28, 1] nested lists of floats, just under 2 MiB."""
    rng = np.random.default_rng(seed)
    pixels = np.round(rng.uniform(0, 255, (128, 28, 28, 1)), 9)
    tensor = {"name": "pixels", "shape": [128, 28, 28, 1], "datatype": "FP32", "data": pixels.tolist()}
    body = json.dumps({"inputs": [tensor]}).encode()
    if len(body) > 2 * 1024 * 1024:
        raise ValueError(f"{len(body)} bytes: over the body limit")
    return body


def pathological_body() -> bytes:
    """2 MiB of tiny nested lists: the most structure per byte (refused: wrong count)."""
    head = b'{"inputs": [{"name": "pixels", "shape": [1, 784], "datatype": "FP32", "data": ['
    unit = b"[[0,0],[0,0]],"
    count = (2 * 1024 * 1024 - len(head) - 100) // len(unit)
    return head + unit * count + b"[[0]]]}]}"


def post(port: int, body: bytes) -> tuple[int, float]:
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    started = time.perf_counter()
    try:
        conn.request("POST", "/v2/models/mnist-cnn/infer", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status, time.perf_counter() - started
    finally:
        conn.close()


def round_of(port: int, bodies: list[bytes]) -> dict:
    """Send the bodies at once; probe /healthz until every one is answered."""
    results: list[tuple[int, float]] = []
    done = threading.Event()
    lock = threading.Lock()
    pending = len(bodies)

    def send(body: bytes) -> None:
        nonlocal pending
        result = post(port, body)
        with lock:
            results.append(result)
            pending -= 1
            if pending == 0:
                done.set()

    probe = http.client.HTTPConnection(HOST, port, timeout=10)
    probe.request("GET", "/healthz")
    probe.getresponse().read()  # connection open and warm before the load starts
    threads = [threading.Thread(target=send, args=(body,)) for body in bodies]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    latencies = []
    while not done.is_set() and time.perf_counter() - started < 60:
        asked = time.perf_counter()
        probe.request("GET", "/healthz")
        response = probe.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"/healthz answered {response.status}")
        if not done.is_set():
            latencies.append((time.perf_counter() - asked) * 1000)
        time.sleep(PROBE_INTERVAL)
    for thread in threads:
        thread.join()
    probe.close()
    return {
        "statuses": sorted({status for status, _ in results}),
        "all_answered_s": time.perf_counter() - started,
        "healthz_ms": latencies,
    }


def summary(name: str, rounds: list[dict]) -> dict:
    latencies = [value for one in rounds for value in one["healthz_ms"]]
    return {
        "body": name,
        "rounds": len(rounds),
        "statuses": sorted({status for one in rounds for status in one["statuses"]}),
        "eight_bodies_answered_s_median": statistics.median(one["all_answered_s"] for one in rounds),
        "healthz_probes": len(latencies),
        "healthz_p50_ms": float(np.percentile(latencies, 50)) if latencies else None,
        "healthz_p99_ms": float(np.percentile(latencies, 99)) if latencies else None,
        "healthz_max_ms": max(latencies) if latencies else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of eight bodies per kind (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    port = free_port()
    python = ROOT / ".venv" / "bin" / "python"
    env = {
        **os.environ,
        "HOST": HOST,
        "PORT": str(port),
        "MODEL_DIR": str(ROOT / "api" / "models"),
        "LOG_LEVEL": "warning",
    }
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "api.log"
        with log.open("wb") as out:
            server = subprocess.Popen(
                [str(python if python.exists() else sys.executable), "-m", "digit_api"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    conn = http.client.HTTPConnection(HOST, port, timeout=1)
                    conn.request("GET", "/readyz")
                    if conn.getresponse().status == 200:
                        break
                except OSError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    print(log.read_text()[-2000:], file=sys.stderr)
                    return 1
                time.sleep(0.1)
            kinds = {
                "nested [128, 28, 28, 1] floats": [nested_body(seed) for seed in range(BODIES)],
                "pathological tiny nested lists": [pathological_body()] * BODIES,
            }
            figures = []
            for name, bodies in kinds.items():
                round_of(port, bodies[:2])  # warm-up: thread pool, parser buffers, first big batch
                figures.append(summary(name, [round_of(port, bodies) for _ in range(args.rounds)]))
                figures[-1]["body_bytes"] = len(bodies[0])
        finally:
            server.terminate()
            server.wait(timeout=10)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    for figure in figures:
        print(
            f"{figure['body']} ({figure['body_bytes'] / 2**20:.2f} MiB each, {BODIES} at once, "
            f"{figure['rounds']} rounds, answers {figure['statuses']}): all eight answered in "
            f"{figure['eight_bodies_answered_s_median'] * 1000:.0f} ms (median); /healthz during the parses "
            f"({figure['healthz_probes']} probes): p50 {figure['healthz_p50_ms']:.1f} ms, "
            f"p99 {figure['healthz_p99_ms']:.1f} ms, max {figure['healthz_max_ms']:.1f} ms (target {TARGET_MS:.0f} ms)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
