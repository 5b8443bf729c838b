"""Event-loop benchmark: does /healthz stay fast while large V2 bodies are being parsed?

It starts `python -m digit_api` (one worker, as `make run` does), then, several rounds over:

- sends eight 2 MiB-class V2 infer bodies at once, each from its own process and connection: the
  data nested as [N, 28, 28, 1], the form that once cost ~220 ms of Python each on the event loop;
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
import multiprocessing
import multiprocessing.pool
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from digit_testing.processes import free_port

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
BODIES = 8
PROBE_INTERVAL = 0.002
TARGET_MS = 20.0


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


_BODIES: list[bytes] = []


def _load_bodies(kind: str) -> None:
    """In each sender process: its copy of the bodies (made there, not sent over a pipe)."""
    _BODIES[:] = [nested_body(seed) for seed in range(BODIES)] if kind == "nested" else [pathological_body()] * BODIES


def _send(port: int, index: int) -> tuple[int, float]:
    return post(port, _BODIES[index])


def probe_healthz(port: int, until: Callable[[], bool], limit: float = 60) -> list[float]:
    """GET /healthz every few ms on one keep-alive connection until `until()`: the latencies in ms."""
    probe = http.client.HTTPConnection(HOST, port, timeout=10)
    probe.request("GET", "/healthz")
    probe.getresponse().read()  # connection open and warm first
    latencies = []
    started = time.perf_counter()
    while not until() and time.perf_counter() - started < limit:
        asked = time.perf_counter()
        probe.request("GET", "/healthz")
        response = probe.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"/healthz answered {response.status}")
        if not until():
            latencies.append((time.perf_counter() - asked) * 1000)
        time.sleep(PROBE_INTERVAL)
    probe.close()
    return latencies


def round_of(port: int, senders: multiprocessing.pool.Pool) -> dict:
    """The eight bodies at once, each from its own process and connection; /healthz probed meanwhile.

    The senders are processes apart from the probe, so that their work does not delay the probe's
    own measurement (the server and the probe still share the machine's two cores with them).
    """
    started = time.perf_counter()
    pending = senders.starmap_async(_send, [(port, index) for index in range(BODIES)])
    latencies = probe_healthz(port, pending.ready)
    results = pending.get(timeout=60)
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

    load = os.getloadavg()[0]
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
            deadline = time.perf_counter() + 2
            idle = probe_healthz(port, lambda: time.perf_counter() > deadline)
            figures = [
                {
                    "body": "none (idle, the same probe for 2 s)",
                    "healthz_probes": len(idle),
                    "healthz_p50_ms": float(np.percentile(idle, 50)),
                    "healthz_p99_ms": float(np.percentile(idle, 99)),
                    "healthz_max_ms": max(idle),
                }
            ]
            context = multiprocessing.get_context("fork")
            for kind, name in (
                ("nested", "nested [128, 28, 28, 1] floats"),
                ("pathological", "pathological tiny nested lists"),
            ):
                with context.Pool(BODIES, initializer=_load_bodies, initargs=(kind,)) as senders:
                    round_of(port, senders)  # warm-up: threads, parser buffers, the first big batch
                    figures.append(summary(name, [round_of(port, senders) for _ in range(args.rounds)]))
                _load_bodies(kind)
                figures[-1]["body_bytes"] = len(_BODIES[0])
        finally:
            server.terminate()
            server.wait(timeout=10)
    if args.json:
        print(json.dumps({"load_average": load, "figures": figures}, indent=2))
        return 0
    print(f"load average before the run: {load:.2f} (2 cores; anything else running moves these figures)")
    for figure in figures:
        if "rounds" not in figure:
            print(
                f"/healthz with no body in flight ({figure['healthz_probes']} probes): "
                f"p50 {figure['healthz_p50_ms']:.1f} ms, p99 {figure['healthz_p99_ms']:.1f} ms, "
                f"max {figure['healthz_max_ms']:.1f} ms"
            )
            continue
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
