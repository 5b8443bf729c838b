"""Soak benchmark: does the API's memory stay flat under long mixed load?

It starts this API (one worker, its own SQLite feedback file) and loads it with wrk for
--duration seconds (default 600) with every kind of request a deployment sees, in turn: one
digit, a batch of 64, the Open Inference Protocol in JSON and in binary, an uploaded image, a
verdict for the feedback store, bodies that are refused (422), and /healthz, /readyz and
/metrics. Meanwhile it samples the resident memory of the server (and anything it started)
every --interval seconds, and prints RSS after the first minute, at the end, the largest seen and
the growth, with the answers counted by status.

The target (issue 14): RSS at the end within 10% of RSS after the first minute. It is a
benchmark, not a test: the verdict is printed, never failed. Exit codes: 0 figures printed; 1 the
server died or answered a 5xx; 2 a prerequisite is missing; 130 interrupted.

    .venv/bin/python bench/soak.py                   # 10 minutes
    .venv/bin/python bench/soak.py --duration 120 --interval 2 --json
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import logging
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from digit_release.model import LiteRTModel, ModelLoadError
from digit_testing.processes import free_port
from harness import (
    EXIT_FAILED,
    EXIT_OK,
    HOST,
    JSON,
    MNIST,
    MODEL_DIR,
    ROOT,
    WRK_REQUEST_TIMEOUT,
    BenchError,
    Digit,
    PrerequisiteError,
    api_spec,
    checked,
    common_arguments,
    find_wrk,
    held_out_digit,
    lua_string,
    machine,
    now,
    rss_bytes,
    run_main,
    running,
    v2_binary,
    v2_json,
)

logger = logging.getLogger("bench.soak")

BASELINE_SECONDS = 60.0
GROWTH_TARGET = 0.10
BATCH = 64

# Each request a Lua table {method, path, headers, body}; after them, a verdict on a drawing of its own.
LUA = """
local requests = {%(requests)s}
local feedback = %(feedback)s
-- Global, not local: done() reads each thread's with thread:get.
counts = {}
local threads = {}
local i = 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function init(args)
  counts = {}
end

function request()
  i = i + 1
  local r = requests[(i %% (#requests + 1)) + 1]
  if r == nil then
    -- A drawing of its own each time (three pixels tell them apart), so the store grows as in service.
    local body = feedback[1] .. (i %% 256) .. "," .. (math.floor(i / 256) %% 256) .. "," .. id .. feedback[2]
    return wrk.format("POST", "/feedback", {["Content-Type"] = "application/json"}, body)
  end
  return wrk.format(r[1], r[2], r[3], r[4])
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("counts")) do
      total[status] = (total[status] or 0) + n
    end
  end
  io.write("STATUS")
  for status, n in pairs(total) do
    io.write(string.format(" %%d=%%d", status, n))
  end
  io.write("\\n")
end
"""


def lua_table(method: str, path: str, headers: dict[str, str], body: bytes | None) -> str:
    named = ", ".join(f"[{lua_string(k.encode())}] = {lua_string(v.encode())}" for k, v in headers.items())
    return f"{{{lua_string(method.encode())}, {lua_string(path.encode())}, {{{named}}}, {lua_string(body or b'')}}}"


def png_of(digit: Digit) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.asarray(digit.pixels, dtype=np.uint8).reshape(28, 28)).save(out, format="PNG")
    return out.getvalue()


def script(digit: Digit, model: LiteRTModel) -> str:
    """The mix: what a deployment sees, the refused requests included."""
    infer = f"/v2/models/{model.manifest.name}/infer"
    binary, binary_headers = v2_binary(digit, model.manifest.input.name)
    image = json.dumps({"image_base64": base64.b64encode(png_of(digit)).decode()}).encode()
    pixels = json.dumps(digit.pixels).encode()
    requests = [
        ("POST", "/predict", JSON, json.dumps({"pixels": digit.pixels}).encode()),
        ("POST", "/predict/batch", JSON, json.dumps({"instances": [digit.pixels] * BATCH}).encode()),
        ("POST", infer, JSON, v2_json(digit, model.manifest.input.name)),
        ("POST", infer, binary_headers, binary),
        ("POST", "/predict/image", JSON, image),
        ("POST", "/predict", JSON, b'{"pixels": [1, 2, 3]}'),  # 422
        ("POST", "/predict", JSON, b'{"pixels": [0, 0'),  # 422, not JSON
        ("POST", infer, JSON, v2_json(digit, "not-the-input")),  # 400
        ("GET", "/healthz", {}, None),
        ("GET", "/readyz", {}, None),
        ("GET", "/metrics", {}, None),
        ("POST", "/predict", JSON, pixels),
    ]
    rest = json.dumps(digit.pixels[3:]).encode()[1:]  # the other 781 pixels and the closing bracket
    feedback = [b'{"pixels": [', b"," + rest + b', "label": %d}' % digit.label]
    return LUA % {
        "requests": ",\n  ".join(lua_table(*r) for r in requests),
        "feedback": "{" + ", ".join(lua_string(part) for part in feedback) + "}",
    }


def run(args: argparse.Namespace) -> int:
    wrk = find_wrk()
    try:
        model = LiteRTModel.load(MODEL_DIR)
    except ModelLoadError as exc:
        raise PrerequisiteError(str(exc)) from None
    if not MNIST.exists():
        raise PrerequisiteError(f"{MNIST} is missing")
    digit = held_out_digit(model)
    started_at = now()
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        work = Path(tmp)
        lua = work / "mix.lua"
        lua.write_text(script(digit, model))
        port = free_port()
        spec = api_spec(port, work / "feedback.sqlite3", [])
        # The server log stays after the run (build/bench/logs/api.log): a 5xx is looked up there.
        with running(spec, ROOT / "build" / "bench" / "logs") as server:
            assert server.process is not None  # noqa: S101 - running() started it
            pid = server.process.pid
            argv = [wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "--latency"]
            argv += ["--timeout", WRK_REQUEST_TIMEOUT, "-s", str(lua), f"http://{HOST}:{port}/"]
            logger.info("mixed load for %d s; RSS sampled every %.0f s", args.duration, args.interval)
            samples: list[tuple[float, int]] = []
            begin = time.monotonic()
            with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as load:
                while load.poll() is None:
                    rss = rss_bytes(pid)
                    if rss is None:
                        load.kill()
                        raise BenchError(f"the API died under load:\n{server.log_tail()}")
                    samples.append((time.monotonic() - begin, rss))
                    if len(samples) % max(1, int(60 / args.interval)) == 0:
                        logger.info("%4.0f s: RSS %.1f MB", samples[-1][0], rss / 1e6)
                    time.sleep(args.interval)
                out, err = load.communicate()
            server.check_alive()
            if load.returncode != 0:
                raise BenchError(f"wrk exited with code {load.returncode}:\n{err}{out}")
            final = rss_bytes(pid)
    report = summarize(samples, final, out, args)
    report.update({"date": started_at, "machine": machine(), "digit": {"index": digit.index, "label": digit.label}})
    print_report(report, args)
    if args.json:
        print(json.dumps(report, indent=2))
    server_errors = sum(n for status, n in report["statuses"].items() if int(status) >= 500)
    return EXIT_FAILED if server_errors else EXIT_OK


def summarize(
    samples: list[tuple[float, int]], final: int | None, wrk_output: str, args: argparse.Namespace
) -> dict[str, Any]:
    baseline_seconds = min(BASELINE_SECONDS, args.duration / 2)
    baseline = next((rss for t, rss in samples if t >= baseline_seconds), samples[-1][1] if samples else 0)
    end = final or (samples[-1][1] if samples else 0)
    growth = (end - baseline) / baseline if baseline else None
    statuses = dict(re.findall(r"(\d+)=(\d+)", (re.search(r"^STATUS.*$", wrk_output, re.MULTILINE) or [""])[0]))
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", wrk_output, re.MULTILINE)
    return {
        "settings": {"duration_s": args.duration, "interval_s": args.interval, "connections": args.connections,
                     "threads": args.threads, "baseline_s": baseline_seconds},
        "rss_bytes": {"baseline": baseline, "end": end, "max": max((rss for _, rss in samples), default=0),
                      "min_after_baseline": min((rss for t, rss in samples if t >= baseline_seconds), default=0)},
        "growth": growth,
        "growth_met": None if growth is None else growth <= GROWTH_TARGET,
        "requests_per_s": float(rps.group(1)) if rps else None,
        "statuses": {status: int(n) for status, n in sorted(statuses.items())},
        "samples": [{"t_s": round(t, 1), "rss_bytes": rss} for t, rss in samples],
    }  # fmt: skip


def print_report(report: dict[str, Any], args: argparse.Namespace) -> None:
    out = sys.stderr if args.json else sys.stdout
    rss, settings = report["rss_bytes"], report["settings"]
    print(file=out)
    print(
        f"Mixed load, wrk -t{args.threads} -c{args.connections} for {args.duration} s, one worker; "
        f"{report['requests_per_s'] or 0:,.0f} requests/s; answers by status: "
        + ", ".join(f"{status} x{n:,}" for status, n in report["statuses"].items()),
        file=out,
    )
    print(
        f"RSS after {settings['baseline_s']:.0f} s: {rss['baseline'] / 1e6:.1f} MB; "
        f"at the end: {rss['end'] / 1e6:.1f} MB; largest: {rss['max'] / 1e6:.1f} MB",
        file=out,
    )
    growth = report["growth"]
    verdict = "n/a" if growth is None else ("met" if report["growth_met"] else "NOT met")
    shown = "—" if growth is None else f"{growth * 100:+.1f}%"
    print(
        f"target: RSS at the end within {GROWTH_TARGET:.0%} of RSS after the first minute: {verdict} ({shown})",
        file=out,
    )
    m = report["machine"]
    print(f"machine: {m['nproc']} CPUs, {m['cpu']}, {m['kernel']}; date: {report['date']}", file=out)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    common_arguments(parser, duration=600)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between RSS samples (default 5)")
    return checked(parser, parser.parse_args(argv))


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(run, parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
