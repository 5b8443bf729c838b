"""Serving benchmark: this API against the limit server and the Keras reference, in one run.

It starts, one at a time on a free loopback port with one worker each:

- this API (`digit-api`, as `make run` and the image run it), on POST /predict, the Open
  Inference Protocol's infer with a JSON body and with a binary one, and /predict/batch with 64
  digits;
- the limit (bench/limit_server.py): a raw ASGI app that parses with orjson and runs the same
  LiteRT model with no validation, on the same routes but the binary one;
- the reference (bench/reference_server.py): Keras `model.predict` per request, the way naive
  reference projects served a digit model, on POST /predict (it needs build/model: make train).

Each route must first answer a held-out digit as the model does in-process. Each is then loaded
with wrk, and one table is printed (requests/s, digits/s, p50, p99, errors, throughput as a
multiple of the limit's on the same route), with LiteRT's own cost per digit measured in this
process, the targets, the machine, the versions and the date.

It is a benchmark, not a test: missed targets are printed, never failed. Exit codes: 0 figures
printed; 1 a server did not start, a route answered wrongly or had errors; 2 a prerequisite is
missing (wrk, the project's .venv, the model, the data); 130 interrupted.

    .venv/bin/python bench/serve.py                        # 10 s per route
    .venv/bin/python bench/serve.py --only api --only limit --duration 5 --json
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from digit_release.manifest import KERAS_NAME, MANIFEST_NAME, TFLITE_NAME
from digit_release.model import LiteRTModel, ModelLoadError
from digit_testing.processes import free_port
from harness import (
    BENCH_DIR,
    EXIT_FAILED,
    EXIT_OK,
    HOST,
    MNIST,
    MODEL_DIR,
    PROBABILITY_TOLERANCE,
    PROJECT_VENV,
    ROOT,
    WARMUP_SECONDS,
    Digit,
    PrerequisiteError,
    Route,
    Row,
    ServerSpec,
    WrkResult,
    api_spec,
    batch_answer,
    bench_server,
    checked,
    common_arguments,
    find_wrk,
    held_out_digit,
    limit_spec,
    machine,
    now,
    pixels_answer,
    run_main,
    v2_answer,
    v2_binary,
    v2_json,
    versions_in,
)

logger = logging.getLogger("bench.serve")

KERAS_MODEL_DIR = ROOT / "build" / "model"
BATCH = 64
SERVERS = ("api", "limit", "reference")
NAMES = {"api": "this API", "limit": "limit server", "reference": "Keras reference"}
PREDICT, BATCH_ROUTE = "POST /predict", f"batch of {BATCH}"
V2_JSON, V2_BINARY = "V2 infer, JSON", "V2 infer, binary"
V2_JSON_BATCH, V2_BINARY_BATCH = f"V2 JSON, {BATCH}", f"V2 binary, {BATCH}"

# The targets (issue 14), each stated for one worker and 16 connections.
PREDICT_VS_LIMIT = 0.7
PREDICT_P99_MS = 4.0
V2_JSON_VS_LIMIT = 0.6
BATCH_VS_LITERT = 1.5
VS_REFERENCE = 100.0
TARGET_CONNECTIONS = 16


def routes_for(key: str, digit: Digit, model: LiteRTModel) -> list[Route]:
    manifest = model.manifest
    infer = f"/v2/models/{manifest.name}/infer"
    predict = Route(PREDICT, "/predict", json.dumps({"pixels": digit.pixels}).encode(), pixels_answer)
    if key == "reference":
        return [predict]
    batch = json.dumps({"instances": [digit.pixels] * BATCH}).encode()
    routes = [predict, Route(BATCH_ROUTE, "/predict/batch", batch, batch_answer, digits=BATCH)]
    for rows, json_label, binary_label in ((1, V2_JSON, V2_BINARY), (BATCH, V2_JSON_BATCH, V2_BINARY_BATCH)):
        routes.append(Route(json_label, infer, v2_json(digit, manifest.input.name, rows), v2_answer, digits=rows))
        if key == "api":  # the limit server does not read the binary extension
            body, headers = v2_binary(digit, manifest.input.name, rows)
            routes.append(Route(binary_label, infer, body, v2_answer, headers, digits=rows))
    return routes


def server_spec(key: str, digit: Digit, model: LiteRTModel, work: Path) -> ServerSpec:
    """How to start server `key` on a port free now (taken just before it starts, not minutes earlier)."""
    port = free_port()
    python = str(PROJECT_VENV / "bin" / "python")
    routes = routes_for(key, digit, model)
    if key == "api":
        return api_spec(port, work / "feedback.sqlite3", routes, NAMES[key])
    if key == "limit":
        return limit_spec(port, routes, NAMES[key])
    argv = [
        *(python, "-m", "uvicorn", "--app-dir", str(BENCH_DIR), "reference_server:app"),
        # uvicorn's defaults (info, access log on), as the reference projects ran it.
        *("--host", HOST, "--port", str(port), "--workers", "1", "--log-level", "info"),
    ]
    env = {"KERAS_MODEL": str(KERAS_MODEL_DIR / KERAS_NAME), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return ServerSpec(key, NAMES[key], port, argv, env, "/readyz", routes)


# --- LiteRT on its own -------------------------------------------------------------------------


@dataclass(frozen=True)
class InProcess:
    """LiteRT's own cost per digit in this process, one thread (as the API runs it), median of many calls."""

    single_us: float
    batched_us: float


def litert_cost(model: LiteRTModel, digit: Digit, repeats: int = 300) -> InProcess:
    one = np.asarray(digit.pixels, dtype=np.float32).reshape(1, 784)
    many = np.repeat(one, BATCH, axis=0)

    def per_digit(x: np.ndarray) -> float:
        for _ in range(20):
            model.predict(x)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            model.predict(x)
            times.append(time.perf_counter() - started)
        return statistics.median(times) / len(x) * 1e6

    return InProcess(single_us=per_digit(one), batched_us=per_digit(many))


# --- the report ----------------------------------------------------------------------------------


def measured(rows: Sequence[Row], server: str, route: str) -> WrkResult | None:
    """A route's figures, if it was measured without errors."""
    for row in rows:
        if row.server == NAMES[server] and row.route == route and row.result and not row.result.errors:
            return row.result
    return None


def find(rows: Sequence[Row], server: str, route: str) -> float | None:
    """A route's requests/s, if it was measured without errors."""
    result = measured(rows, server, route)
    return result.requests_per_s if result else None


@dataclass(frozen=True)
class Target:
    text: str
    value: str
    met: bool | None  # None: not measured (a server skipped, or a run with errors)

    def document(self) -> dict[str, Any]:
        return {"target": self.text, "value": self.value, "met": self.met}


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def targets(rows: Sequence[Row], litert: InProcess, connections: int) -> list[Target]:
    def times(value: float | None) -> str:
        return "not measured" if value is None else f"{value:.2f}x"

    def bound(text: str, value: float | None, shown: str, ok: Callable[[float], bool]) -> Target:
        return Target(text, shown, None if value is None else ok(value))

    found: list[Target] = []
    predict = ratio(find(rows, "api", PREDICT), find(rows, "limit", PREDICT))
    found.append(
        bound(f"/predict >= {PREDICT_VS_LIMIT}x the limit", predict, times(predict), lambda v: v >= PREDICT_VS_LIMIT)
    )
    result = measured(rows, "api", PREDICT)
    latency = result.p99_ms if result and connections == TARGET_CONNECTIONS else None
    shown = "not measured" if latency is None else f"{latency:.2f} ms"
    if connections != TARGET_CONNECTIONS:
        shown = f"measured at {connections} connections"
    text = f"/predict p99 < {PREDICT_P99_MS:.0f} ms at {TARGET_CONNECTIONS} connections"
    found.append(bound(text, latency, shown, lambda v: v < PREDICT_P99_MS))
    v2 = ratio(find(rows, "api", V2_JSON), find(rows, "limit", V2_JSON))
    found.append(bound(f"V2 JSON >= {V2_JSON_VS_LIMIT}x the limit", v2, times(v2), lambda v: v >= V2_JSON_VS_LIMIT))
    for size, binary_route, json_route in ((1, V2_BINARY, V2_JSON), (BATCH, V2_BINARY_BATCH, V2_JSON_BATCH)):
        binary = ratio(find(rows, "api", binary_route), find(rows, "api", json_route))
        costs = [
            r.cpu_us_per_request if r else None
            for r in (measured(rows, "api", binary_route), measured(rows, "api", json_route))
        ]
        shown = times(binary) + (f"; CPU {costs[0]:.0f} vs {costs[1]:.0f} us a request" if all(costs) else "")
        text = f"V2 binary no slower than V2 JSON, {size} digit{'s' if size > 1 else ''} a request"
        found.append(bound(text, binary, shown, lambda v: v >= 1.0))
    batch_rps = find(rows, "api", BATCH_ROUTE)
    per_digit = 1e6 / (batch_rps * BATCH) if batch_rps else None
    cost = ratio(per_digit, litert.batched_us)
    shown = "not measured" if per_digit is None else f"{per_digit:.1f} us, {times(cost)}"
    text = f"batch of {BATCH}: time per digit <= {BATCH_VS_LITERT}x LiteRT's batched ({litert.batched_us:.1f} us)"
    found.append(bound(text, cost, shown, lambda v: v <= BATCH_VS_LITERT))
    reference = ratio(find(rows, "api", PREDICT), find(rows, "reference", PREDICT))
    text = f"/predict >= {VS_REFERENCE:.0f}x the Keras reference"
    found.append(bound(text, reference, times(reference), lambda v: v >= VS_REFERENCE))
    return found


def print_report(
    rows: Sequence[Row], report: dict[str, Any], found: Sequence[Target], args: argparse.Namespace
) -> None:
    # With --json, stdout carries the JSON document alone, so the table goes where the log goes.
    out = sys.stderr if args.json else sys.stdout
    head = (
        f"{'server':<16} {'route':<17} {'requests/s':>11} {'digits/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'errors':>7} {'÷ limit':>8} {'CPU us/req':>10}"
    )
    print(file=out)
    print(
        f"wrk -t{args.threads} -c{args.connections}, {args.duration} s per route after a {WARMUP_SECONDS} s warm-up, "
        f"one worker each; servers and wrk share {report['machine']['nproc']} CPUs",
        file=out,
    )
    print(head, file=out)
    print("-" * len(head), file=out)
    for row in rows:
        if row.result is None:
            print(
                f"{row.server:<16} {row.route:<17} {'—':>11} {'—':>9} {'—':>8} {'—':>8} {'—':>7} {'—':>8} {'—':>10}",
                file=out,
            )
            continue
        r = row.result
        limit = find(rows, "limit", row.route)
        multiple = ratio(r.requests_per_s, limit) if not r.errors else None
        print(
            f"{row.server:<16} {row.route:<17} {r.requests_per_s:>11,.0f} {r.requests_per_s * row.digits:>9,.0f} "
            f"{r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.errors:>7d} "
            f"{times(multiple):>8} {(f'{r.cpu_us_per_request:.0f}' if r.cpu_us_per_request else '—'):>10}",
            file=out,
        )
    for row in rows:
        if row.problem:
            print(f"NOTE {row.server}, {row.route}: {row.problem}", file=out)
    litert = report["litert_in_process_us_per_digit"]
    print(
        f"\nLiteRT in this process, one thread: {litert['single']:.1f} us a digit alone, "
        f"{litert['batched']:.1f} us a digit in a batch of {BATCH}",
        file=out,
    )
    print("targets:", file=out)
    for target in found:
        verdict = "n/a" if target.met is None else ("met" if target.met else "NOT met")
        print(f"  {target.text}: {verdict} ({target.value})", file=out)
    m, v = report["machine"], report["versions"]
    print(f"\nmachine: {m['nproc']} CPUs, {m['cpu']}, {m['kernel']}", file=out)
    print(
        f"versions: Python {v.get('python')}, ai-edge-litert {v.get('ai-edge-litert')}, numpy {v.get('numpy')}, "
        f"fastapi {v.get('fastapi')}, uvicorn {v.get('uvicorn')}, orjson {v.get('orjson')}, "
        f"tensorflow-cpu {v.get('tensorflow-cpu') or '—'}, keras {v.get('keras') or '—'}",
        file=out,
    )
    print(
        f"date: {report['date']}; held-out digit: x_test[{report['digit']['index']}], a {report['digit']['label']}",
        file=out,
    )


def times(multiple: float | None) -> str:
    if multiple is None:
        return "—"
    return f"{multiple:.2f}x" if multiple >= 0.01 else f"{multiple:.4f}x"


def tflite_sha256(folder: Path) -> str | None:
    try:
        return str(json.loads((folder / MANIFEST_NAME).read_text())["files"][TFLITE_NAME]["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_prerequisites(args: argparse.Namespace) -> str:
    wrk = find_wrk()
    for path in (PROJECT_VENV / "bin" / "digit-api", MODEL_DIR / TFLITE_NAME, MODEL_DIR / MANIFEST_NAME, MNIST):
        if not path.exists():
            raise PrerequisiteError(f"{path} is missing: run make setup")
    if "reference" in args.only:
        if not (KERAS_MODEL_DIR / KERAS_NAME).exists():
            raise PrerequisiteError(
                f"{KERAS_MODEL_DIR / KERAS_NAME} is missing: run `make train` (the reference serves it), "
                "or leave the reference out with --only api --only limit"
            )
        if tflite_sha256(KERAS_MODEL_DIR) != tflite_sha256(MODEL_DIR):
            # Its own training run: the same recipe and data, maybe not the same weights. Each route is
            # still checked against the model in service, so a reference that answers otherwise is named.
            logger.warning("build/model is not the model in api/models: the reference serves its own training run")
    return wrk


def run(args: argparse.Namespace) -> int:
    wrk = check_prerequisites(args)
    try:
        model = LiteRTModel.load(MODEL_DIR, num_threads=1)
    except ModelLoadError as exc:
        raise PrerequisiteError(str(exc)) from None
    digit = held_out_digit(model)
    litert = litert_cost(model, digit)
    logger.info("LiteRT in-process: %.1f us a digit alone, %.1f us batched", litert.single_us, litert.batched_us)
    packages = ["ai-edge-litert", "numpy", "fastapi", "uvicorn", "orjson", "tensorflow-cpu", "keras"]
    versions = versions_in(PROJECT_VENV / "bin" / "python", packages)
    date = now()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        work = Path(tmp)
        # One server at a time: an idle server still holds memory and wakes for its timers.
        for key in (key for key in SERVERS if key in args.only):
            spec = server_spec(key, digit, model, work)
            # A reference trained apart has weights of its own: the label it answers is what is checked.
            own_weights = key == "reference" and tflite_sha256(KERAS_MODEL_DIR) != tflite_sha256(MODEL_DIR)
            tolerance = 1.0 if own_weights else PROBABILITY_TOLERANCE
            rows.extend(
                bench_server(spec, digit=digit, labels=model.labels, wrk=wrk, work=work, args=args, tolerance=tolerance)
            )
    found = targets(rows, litert, args.connections)
    report = {
        "date": date,
        "machine": machine(),
        "versions": versions,
        "settings": {"duration_s": args.duration, "warmup_s": WARMUP_SECONDS, "threads": args.threads,
                     "connections": args.connections, "workers": 1},
        "digit": {"index": digit.index, "label": digit.label},
        "litert_in_process_us_per_digit": {"single": litert.single_us, "batched": litert.batched_us, "batch": BATCH},
        "rows": [row.document() for row in rows],
        "targets": [target.document() for target in found],
    }  # fmt: skip
    print_report(rows, report, found, args)
    if args.json:
        print(json.dumps(report, indent=2))
    return EXIT_FAILED if any(row.problem for row in rows) else EXIT_OK


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    common_arguments(parser, duration=10, servers=SERVERS)
    return checked(parser, parser.parse_args(argv), SERVERS)


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(run, parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
