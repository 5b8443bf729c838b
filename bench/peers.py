"""Peers benchmark: this API against KServe's and BentoML's Python servers on the same model.tflite.

It makes one virtual environment per framework under build/peers/ (pinned KServe or BentoML,
plus the LiteRT and NumPy pins of release/requirements.txt; reused while its pins are unchanged),
wraps api/models/model.tflite the way each framework documents a custom model
(bench/peers/kserve_server.py, bench/peers/bentoml_service.py), and then runs, one server at a
time on a free loopback port: this project's API (POST /predict and the V2 infer route), the
limit server (bench/limit_server.py, the same work with no framework), KServe (V1 and V2) and
BentoML. Each route must first answer a held-out MNIST digit as the model does in-process (same
label, same probabilities); a route that does not is reported and not loaded. The others are
loaded with wrk and one table is printed: requests/s, p50, p99, errors, and throughput as a
multiple of this API's /predict, with the machine, the versions and the date.

It is a benchmark, not a test: nothing is asserted on time. Exit codes: 0 every route measured
without errors; 1 a server did not start, a route answered wrongly, had errors or could not be
measured (the other rows are still printed); 2 a prerequisite is missing (wrk, the project's
.venv, the model or the data, or a framework that would not install); 130 interrupted.

    .venv/bin/python bench/peers.py                          # installs once, 10 s per route
    .venv/bin/python bench/peers.py --duration 5 --only api --only kserve --json
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from digit_release.data import DataError
from digit_release.model import LiteRTModel, ModelLoadError
from digit_testing.processes import free_port
from harness import (
    BENCH_DIR,
    EXIT_FAILED,
    EXIT_OK,
    HOST,
    MNIST,
    MODEL_DIR,
    PROJECT_VENV,
    ROOT,
    WARMUP_SECONDS,
    Digit,
    PrerequisiteError,
    Route,
    Row,
    ServerSpec,
    api_spec,
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
    v1_answer,
    v2_answer,
    v2_json,
    versions_in,
)

logger = logging.getLogger("bench.peers")

WRAPPERS_DIR = BENCH_DIR / "peers"
RELEASE_REQUIREMENTS = ROOT / "release" / "requirements.txt"
PEERS_DIR = ROOT / "build" / "peers"
# The frameworks under comparison, pinned like the project's own dependencies.
KSERVE_VERSION = "0.21.0"
BENTOML_VERSION = "1.4.40"
# Each framework's environment also gets these, at release/requirements.txt's versions, so that
# every server runs the same LiteRT build on the same NumPy.
SHARED_PACKAGES = ("ai-edge-litert", "numpy")
STAMP_NAME = "bench-peers-stamp.json"
INSTALL_TIMEOUT = 1800.0


# --- the frameworks' environments -------------------------------------------------------------


@dataclass(frozen=True)
class PeerEnv:
    """One framework's own virtual environment under build/peers/."""

    name: str
    package: str
    version: str

    @property
    def path(self) -> Path:
        return PEERS_DIR / f"{self.name}-venv"

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def requirements(self, shared: Sequence[str]) -> list[str]:
        return [f"{self.package}=={self.version}", *shared]


KSERVE = PeerEnv("kserve", "kserve", KSERVE_VERSION)
BENTOML = PeerEnv("bentoml", "bentoml", BENTOML_VERSION)


def shared_pins(requirements: Path = RELEASE_REQUIREMENTS) -> list[str]:
    """`name==version` for SHARED_PACKAGES as release/requirements.txt pins them."""
    pins: dict[str, str] = {}
    for line in requirements.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\s*([A-Za-z0-9._-]+)==([^\s#;]+)", line)
        if match and match.group(1).lower() in SHARED_PACKAGES:
            pins[match.group(1).lower()] = match.group(2)
    missing = [name for name in SHARED_PACKAGES if name not in pins]
    if missing:
        raise PrerequisiteError(f"{requirements} pins no exact version of {', '.join(missing)}")
    return [f"{name}=={pins[name]}" for name in SHARED_PACKAGES]


def stamp_for(requirements: Sequence[str]) -> dict[str, Any]:
    # A different interpreter would leave compiled packages built for another ABI.
    return {"requirements": list(requirements), "python": platform.python_version()}


def read_stamp(env: PeerEnv) -> dict[str, Any] | None:
    try:
        stamp = json.loads((env.path / STAMP_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def ensure_env(env: PeerEnv, shared: Sequence[str], *, skip_install: bool) -> Path:
    """The environment's python: reused while its stamp matches the pins, else made anew."""
    requirements = env.requirements(shared)
    wanted = stamp_for(requirements)
    present = read_stamp(env) if env.python.exists() else None
    if present == wanted:
        logger.info("reusing %s (%s)", env.path.relative_to(ROOT), ", ".join(requirements))
        return env.python
    if skip_install:
        if env.python.exists():
            logger.warning("%s does not match the pins %s; used as it is (--skip-install)", env.path, requirements)
            return env.python
        raise PrerequisiteError(f"{env.path} does not exist; run without --skip-install to make it")
    logger.info("installing %s into %s", ", ".join(requirements), env.path.relative_to(ROOT))
    shutil.rmtree(env.path, ignore_errors=True)
    PEERS_DIR.mkdir(parents=True, exist_ok=True)
    log = PEERS_DIR / f"{env.name}-install.log"
    steps = [
        [sys.executable, "-m", "venv", str(env.path)],
        [str(env.python), "-m", "pip", "install", "--disable-pip-version-check", *requirements],
    ]
    with log.open("wb") as out:
        for step in steps:
            try:
                done = subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, timeout=INSTALL_TIMEOUT, check=False)
            except subprocess.TimeoutExpired:
                raise PrerequisiteError(f"{' '.join(step[:4])} took over {INSTALL_TIMEOUT:.0f} s; see {log}") from None
            if done.returncode != 0:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
                raise PrerequisiteError(f"installing {env.name} failed ({' '.join(step[:4])}); {log}:\n{tail}")
    # Written last: an interrupted install leaves no stamp, so the next run starts it over.
    (env.path / STAMP_NAME).write_text(json.dumps(wanted, indent=2) + "\n", encoding="utf-8")
    return env.python


# --- the servers and their routes -------------------------------------------------------------


def server_spec(key: str, digit: Digit, model: LiteRTModel, pythons: dict[str, Path], label: str) -> ServerSpec:
    """How to start server `key` on a port free now (taken just before it starts, not minutes earlier)."""
    name = model.manifest.name
    predict = Route("POST /predict", "/predict", json.dumps({"pixels": digit.pixels}).encode(), pixels_answer)
    v2 = Route("V2 infer, JSON", f"/v2/models/{name}/infer", v2_json(digit, model.manifest.input.name), v2_answer)
    port = free_port()
    if key == "api":
        return api_spec(port, PEERS_DIR / "api-feedback.sqlite3", [predict, v2], label)
    if key == "limit":
        return limit_spec(port, [predict, v2], label)
    if key == "kserve":
        # KServe binds every interface (it takes no host) and opens gRPC too, as it does by default.
        argv = [
            *(str(pythons["kserve"]), str(WRAPPERS_DIR / "kserve_server.py"), "--model_dir", str(MODEL_DIR)),
            *("--model_name", name, "--http_port", str(port), "--grpc_port", str(free_port()), "--workers", "1"),
        ]
        v1_body = json.dumps({"instances": [digit.pixels]}).encode()
        routes = [Route("V1 predict", f"/v1/models/{name}:predict", v1_body, v1_answer), v2]
        return ServerSpec(key, label, port, argv, {}, f"/v2/models/{name}/ready", routes)
    argv = [
        *(str(pythons["bentoml"].parent / "bentoml"), "serve", "bentoml_service:DigitClassifier"),
        *("--working-dir", str(WRAPPERS_DIR), "--host", HOST, "--port", str(port)),
    ]
    env = {
        "MODEL_DIR": str(MODEL_DIR),
        # Its model store and configuration stay in build/, not in the user's home.
        "BENTOML_HOME": str(PEERS_DIR / "bentoml-home"),
        # No usage reports: this machine may have no internet, and a report is not serving.
        "BENTOML_DO_NOT_TRACK": "true",
    }
    return ServerSpec(key, label, port, argv, env, "/readyz", [predict])


# --- the report ----------------------------------------------------------------------------------


def baseline(rows: Sequence[Row]) -> float | None:
    """This API's /predict throughput, the unit of the last column."""
    for row in rows:
        if row.server == "this API" and row.route == "POST /predict" and row.result and not row.result.errors:
            return row.result.requests_per_s if row.result.requests_per_s > 0 else None
    return None


def ratio(row: Row, unit: float | None) -> float | None:
    return row.result.requests_per_s / unit if row.result and unit else None


def print_report(rows: Sequence[Row], report: dict[str, Any], args: argparse.Namespace) -> None:
    # With --json, stdout carries the JSON document alone, so the table goes where the log goes.
    out = sys.stderr if args.json else sys.stdout
    unit = baseline(rows)
    head = (
        f"{'server':<16} {'route':<16} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'÷ /predict':>11}"
    )
    print(file=out)
    print(
        f"Peers on the same model.tflite: wrk -t{args.threads} -c{args.connections}, {args.duration} s per route "
        f"after a {WARMUP_SECONDS} s warm-up, one worker each; servers and wrk share "
        f"{report['machine']['nproc']} CPUs",
        file=out,
    )
    print(head, file=out)
    print("-" * len(head), file=out)
    for row in rows:
        if row.result is None:
            print(f"{row.server:<16} {row.route:<16} {'—':>11} {'—':>8} {'—':>8} {'—':>7} {'—':>11}", file=out)
            continue
        r, multiple = row.result, ratio(row, unit)
        shown = f"{multiple:.2f}x" if multiple is not None else "—"
        print(
            f"{row.server:<16} {row.route:<16} {r.requests_per_s:>11,.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} "
            f"{r.errors:>7d} {shown:>11}",
            file=out,
        )
    for row in rows:
        if row.problem:
            print(f"NOTE {row.server}, {row.route}: {row.problem}", file=out)
    m, v = report["machine"], report["versions"]
    print(file=out)
    print(f"machine: {m['nproc']} CPUs, {m['cpu']}, {m['kernel']}", file=out)
    print(
        f"versions: KServe {v.get('kserve', {}).get('kserve', '—')}, "
        f"BentoML {v.get('bentoml', {}).get('bentoml', '—')}, "
        f"ai-edge-litert {v['project'].get('ai-edge-litert')}, numpy {v['project'].get('numpy')}, "
        f"this API: fastapi {v['project'].get('fastapi')} on uvicorn {v['project'].get('uvicorn')}, "
        f"Python {v['project'].get('python')}",
        file=out,
    )
    print(
        f"date: {report['date']}; held-out digit: x_test[{report['digit']['index']}], a {report['digit']['label']}",
        file=out,
    )


def check_prerequisites() -> str:
    wrk = find_wrk()
    for path in (PROJECT_VENV / "bin" / "digit-api", PROJECT_VENV / "bin" / "python"):
        if not path.exists():
            raise PrerequisiteError(f"{path} is missing: run make setup")
    for path in (MODEL_DIR / "model.tflite", MODEL_DIR / "model.json", MNIST, WRAPPERS_DIR / "kserve_server.py"):
        if not path.exists():
            raise PrerequisiteError(f"{path} is missing")
    return wrk


def run(args: argparse.Namespace) -> int:
    wrk = check_prerequisites()
    try:
        model = LiteRTModel.load(MODEL_DIR)
        digit = held_out_digit(model)
    except (ModelLoadError, DataError) as exc:
        raise PrerequisiteError(str(exc)) from None
    logger.info("held-out digit x_test[%d], a %d", digit.index, digit.label)
    shared = shared_pins()
    pythons: dict[str, Path] = {}
    project_packages = ["ai-edge-litert", "numpy", "fastapi", "uvicorn"]
    versions = {"project": versions_in(PROJECT_VENV / "bin" / "python", project_packages)}
    for env in (KSERVE, BENTOML):
        if env.name in args.only:
            pythons[env.name] = ensure_env(env, shared, skip_install=args.skip_install)
            versions[env.name] = versions_in(pythons[env.name], [env.package, *SHARED_PACKAGES])
            for name in ("python", *SHARED_PACKAGES):
                if versions[env.name].get(name) != versions["project"].get(name):
                    logger.warning(
                        "%s has %s %s but the project's .venv has %s: not the same runtime",
                        env.path.relative_to(ROOT),
                        name,
                        versions[env.name].get(name),
                        versions["project"].get(name),
                    )
    names = {
        "api": "this API",
        "limit": "limit server",
        "kserve": f"KServe {versions.get('kserve', {}).get('kserve')}",
        "bentoml": f"BentoML {versions.get('bentoml', {}).get('bentoml')}",
    }
    rows: list[Row] = []
    date = now()
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        # One server at a time: an idle server still holds memory and wakes for its timers.
        for key in (key for key in SERVERS if key in args.only):
            spec = server_spec(key, digit, model, pythons, names[key])
            rows.extend(
                bench_server(
                    spec,
                    digit=digit,
                    labels=model.labels,
                    wrk=wrk,
                    work=Path(tmp),
                    args=args,
                    log_dir=PEERS_DIR / "logs",
                )
            )
    unit = baseline(rows)
    report = {
        "date": date,
        "machine": machine(),
        "versions": versions,
        "settings": {"duration_s": args.duration, "warmup_s": WARMUP_SECONDS, "threads": args.threads,
                     "connections": args.connections, "workers": 1},
        "digit": {"index": digit.index, "label": digit.label},
        "rows": [{**row.document(), "throughput_vs_api_predict": ratio(row, unit)} for row in rows],
    }  # fmt: skip
    print_report(rows, report, args)
    if args.json:
        print(json.dumps(report, indent=2))
    return EXIT_FAILED if any(row.problem for row in rows) else EXIT_OK


SERVERS = ("api", "limit", "kserve", "bentoml")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    common_arguments(parser, duration=10, servers=SERVERS)
    parser.add_argument(
        "--skip-install", action="store_true", help="use the environments in build/peers/ as they are, never pip"
    )
    return checked(parser, parser.parse_args(argv), SERVERS)


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(run, parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
