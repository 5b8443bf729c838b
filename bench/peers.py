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
import contextlib
import datetime
import http.client
import json
import logging
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from digit_release.data import DataError, read_dataset
from digit_release.model import LiteRTModel, ModelLoadError
from digit_testing.processes import free_port

logger = logging.getLogger("bench.peers")

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
WRAPPERS_DIR = BENCH_DIR / "peers"
MODEL_DIR = ROOT / "api" / "models"
MNIST = ROOT / "training" / "data" / "mnist.npz"
PROJECT_VENV = ROOT / ".venv"
RELEASE_REQUIREMENTS = ROOT / "release" / "requirements.txt"
PEERS_DIR = ROOT / "build" / "peers"

# The frameworks under comparison, pinned like the project's own dependencies.
KSERVE_VERSION = "0.21.0"
BENTOML_VERSION = "1.4.40"
# Each framework's environment also gets these, at release/requirements.txt's versions, so that
# every server runs the same LiteRT build on the same NumPy.
SHARED_PACKAGES = ("ai-edge-litert", "numpy")
STAMP_NAME = "bench-peers-stamp.json"

HOST = "127.0.0.1"
EXIT_OK, EXIT_FAILED, EXIT_PREREQUISITE, EXIT_INTERRUPTED = 0, 1, 2, 130
WARMUP_SECONDS = 3
# wrk's default 2 s timeout would drop a slow server's worst answers from the histogram and
# flatter its p99; a long timeout keeps its latency honest.
WRK_REQUEST_TIMEOUT = "10s"
# BentoML starts an arbiter and a worker process, KServe imports a large tree: give them time on
# a busy 2-core machine.
READY_TIMEOUT = 180.0
STOP_TIMEOUT = 10.0
INSTALL_TIMEOUT = 1800.0
# The same model in the same LiteRT build gives the same floats; JSON round trips of float32
# through float64 text cost at most a few ulps.
PROBABILITY_TOLERANCE = 1e-5

_UNIT_TO_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


class PrerequisiteError(Exception):
    """Something the benchmark needs is missing; the message says how to get it (exit 2)."""


class BenchError(Exception):
    """A server or wrk failed; the message says which and why (exit 1)."""


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


VERSION_PROBE = """
import importlib.metadata as metadata, json, platform, sys
found = {"python": platform.python_version()}
for name in sys.argv[1:]:
    try:
        found[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        found[name] = None
print(json.dumps(found))
"""


def versions_in(python: Path, packages: Sequence[str]) -> dict[str, str | None]:
    """What an interpreter has installed: asked of that interpreter, not assumed from the pins."""
    done = subprocess.run(
        [str(python), "-c", VERSION_PROBE, *packages], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise PrerequisiteError(f"{python} cannot report its versions:\n{done.stderr[-2000:]}")
    return dict(json.loads(done.stdout))


# --- the servers and their routes -------------------------------------------------------------


@dataclass
class Route:
    """One route of one server: what it is posted and how its answer gives the 10 probabilities."""

    label: str
    path: str
    body: bytes
    probabilities: Callable[[Any], Any]


@dataclass
class ServerSpec:
    key: str
    name: str
    port: int
    argv: list[str]
    env: dict[str, str]
    ready_path: str
    routes: list[Route]


@dataclass
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    # wrk counts every status >= 400 here (its label says "Non-2xx or 3xx").
    non_2xx: int
    socket_errors: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())


@dataclass
class Row:
    server: str
    route: str
    result: WrkResult | None = None
    # Why there are no figures (or why they are not to be trusted), or "" when all went well.
    problem: str = ""


@dataclass(frozen=True)
class Digit:
    index: int
    label: int
    pixels: list[int]
    probabilities: np.ndarray


def pixels_answer(document: Any) -> Any:
    return document["probabilities"]


def v1_answer(document: Any) -> Any:
    return document["predictions"][0]


def v2_answer(document: Any) -> Any:
    return document["outputs"][0]["data"]


def bodies(digit: Digit, input_name: str) -> dict[str, bytes]:
    tensor = {"name": input_name, "shape": [1, 784], "datatype": "FP32", "data": digit.pixels}
    return {
        "pixels": json.dumps({"pixels": digit.pixels}).encode(),
        "v1": json.dumps({"instances": [digit.pixels]}).encode(),
        "v2": json.dumps({"inputs": [tensor]}).encode(),
    }


def server_spec(key: str, digit: Digit, model: LiteRTModel, pythons: dict[str, Path], label: str) -> ServerSpec:
    """How to start server `key` on a port free now (taken just before it starts, not minutes earlier)."""
    name = model.manifest.name
    body = bodies(digit, model.manifest.input.name)
    v2 = Route("V2 infer, JSON", f"/v2/models/{name}/infer", body["v2"], v2_answer)
    port = free_port()
    if key == "api":
        # LOG_LEVEL=info is the service's production default; it logs successes at DEBUG by design.
        env = {"HOST": HOST, "PORT": str(port), "MODEL_DIR": str(MODEL_DIR), "LOG_LEVEL": "info", "WORKERS": "1"}
        routes = [Route("POST /predict", "/predict", body["pixels"], pixels_answer), v2]
        return ServerSpec(key, label, port, [str(PROJECT_VENV / "bin" / "digit-api")], env, "/readyz", routes)
    if key == "limit":
        argv = [
            *(str(PROJECT_VENV / "bin" / "python"), "-m", "uvicorn", "--app-dir", str(BENCH_DIR), "limit_server:app"),
            *("--loop", "uvloop", "--http", "httptools", "--workers", "1", "--no-access-log"),
            *("--host", HOST, "--port", str(port)),
        ]
        routes = [Route("POST /predict", "/predict", body["pixels"], pixels_answer), v2]
        return ServerSpec(key, label, port, argv, {"MODEL_DIR": str(MODEL_DIR)}, "/readyz", routes)
    if key == "kserve":
        # KServe binds every interface (it takes no host) and opens gRPC too, as it does by default.
        argv = [
            *(str(pythons["kserve"]), str(WRAPPERS_DIR / "kserve_server.py"), "--model_dir", str(MODEL_DIR)),
            *("--model_name", name, "--http_port", str(port), "--grpc_port", str(free_port()), "--workers", "1"),
        ]
        routes = [Route("V1 predict", f"/v1/models/{name}:predict", body["v1"], v1_answer), v2]
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
    routes = [Route("POST /predict", "/predict", body["pixels"], pixels_answer)]
    return ServerSpec(key, label, port, argv, env, "/readyz", routes)


# --- processes ---------------------------------------------------------------------------------


def http_request(
    port: int, method: str, path: str, body: bytes | None = None, timeout: float = 5.0
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def process_identity(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) from /proc, or None once the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses; the fields after its last ")" do not.
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[19])


def descendants(root: int) -> dict[int, int]:
    """Every process below `root`, as pid -> start time (to tell a reused pid from the original)."""
    children: dict[int, list[int]] = {}
    started: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        identity = process_identity(int(entry.name))
        if identity is not None:
            children.setdefault(identity[0], []).append(int(entry.name))
            started[int(entry.name)] = identity[1]
    found: dict[int, int] = {}
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found and child in started:
                found[child] = started[child]
                stack.append(child)
    return found


class Server:
    """One server in its own process group, stopped with everything it started.

    BentoML's arbiter (circus) starts its worker in a session of its own, out of reach of the
    group's signals, so its descendants are found in /proc and stopped one by one as well.
    """

    def __init__(self, spec: ServerSpec, log_path: Path) -> None:
        self.spec = spec
        self.port = spec.port
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        logger.info("starting %s on %s:%d (log %s)", self.spec.name, HOST, self.port, self.log_path)
        env = {**os.environ, **self.spec.env}
        # A file, not a pipe: nobody reads the output during the run, and a full pipe would stall the server.
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.spec.argv,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def wait_ready(self) -> None:
        if self.process is None:
            raise BenchError(f"{self.spec.name} was never started")
        started = time.monotonic()
        while time.monotonic() < started + READY_TIMEOUT:
            code = self.process.poll()
            if code is not None:
                raise BenchError(
                    f"{self.spec.name} exited with code {code} before it was ready (log {self.log_path}):\n"
                    f"{self.log_tail()}"
                )
            with contextlib.suppress(OSError, http.client.HTTPException):
                status, _ = http_request(self.port, "GET", self.spec.ready_path, timeout=2.0)
                if status == 200:
                    logger.info("%s ready after %.1f s", self.spec.name, time.monotonic() - started)
                    return
            time.sleep(0.25)
        raise BenchError(
            f"{self.spec.name} was not ready within {READY_TIMEOUT:.0f} s (log {self.log_path}):\n{self.log_tail()}"
        )

    def stop(self) -> None:
        if self.process is None:
            return
        leader = self.process.pid
        family = descendants(leader)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(leader, signal.SIGTERM)
        for pid in family:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop on SIGTERM; killing it", self.spec.name)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and any(alive(pid, start) for pid, start in family.items()):
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(leader, signal.SIGKILL)
        for pid, start in family.items():
            if alive(pid, start):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=STOP_TIMEOUT)
        logger.info("stopped %s", self.spec.name)


def alive(pid: int, start: int) -> bool:
    identity = process_identity(pid)
    return identity is not None and identity[1] == start


@contextlib.contextmanager
def running(spec: ServerSpec, log_dir: Path) -> Iterator[Server]:
    server = Server(spec, log_dir / f"{spec.key}.log")
    try:
        server.start()
        server.wait_ready()
        yield server
    finally:
        server.stop()


# --- checking and loading ----------------------------------------------------------------------


def held_out_digit(model: LiteRTModel) -> Digit:
    """The first held-out digit the model gets right in-process: what every server must then answer."""
    data = read_dataset(MNIST)
    labels = [int(label) for label in model.labels]
    for index in range(len(data.x_test)):
        image = data.x_test[index]
        probabilities = model.predict(image.reshape(1, 784).astype(np.float32))[0]
        if labels[int(probabilities.argmax())] == int(data.y_test[index]):
            pixels = [int(v) for v in image.reshape(-1)]
            return Digit(index, int(data.y_test[index]), pixels, probabilities)
    raise PrerequisiteError(f"the model gets none of {MNIST}'s held-out digits right")


class WrongAnswer(Exception):
    """A route whose answer is not the model's; the message says how it differs."""


def probabilities_from(server: Server, route: Route) -> np.ndarray:
    """The probabilities the route answers for its body; WrongAnswer if it answers anything else."""
    try:
        status, raw = http_request(server.port, "POST", route.path, body=route.body, timeout=30.0)
    except (OSError, http.client.HTTPException) as exc:
        raise WrongAnswer(f"POST {route.path} failed: {exc}") from None
    if status != 200:
        raise WrongAnswer(f"POST {route.path} answered {status}: {raw[:300]!r}")
    try:
        return np.asarray(route.probabilities(json.loads(raw)), dtype=np.float64).reshape(-1)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise WrongAnswer(f"POST {route.path}: no probabilities in {raw[:300]!r} ({exc})") from None


def check_route(server: Server, route: Route, digit: Digit, labels: Sequence[str]) -> str:
    """What is wrong with the route's answer to the digit, or "" when it answers as the model does in-process."""
    try:
        probabilities = probabilities_from(server, route)
    except WrongAnswer as exc:
        return str(exc)
    if probabilities.shape != digit.probabilities.shape:
        return f"POST {route.path}: {probabilities.size} probabilities, expected {digit.probabilities.size}"
    answer = int(labels[int(probabilities.argmax())])
    difference = float(np.abs(probabilities - digit.probabilities).max())
    if answer != digit.label:
        return f"POST {route.path}: answered {answer} for a held-out {digit.label}"
    if difference > PROBABILITY_TOLERANCE:
        return f"POST {route.path}: probabilities differ from the model's by up to {difference:.2e}"
    logger.info("%s %s: %d, as in-process (largest difference %.1e)", server.spec.name, route.label, answer, difference)
    return ""


def write_lua(path: Path, body: bytes) -> None:
    # A level-1 long bracket cannot be closed by anything a JSON list of numbers contains.
    path.write_text(
        f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [=[{body.decode()}]=]\n'
    )


def to_ms(value: str, unit: str) -> float:
    return float(value) * _UNIT_TO_MS[unit]


def parse_wrk(output: str) -> WrkResult:
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    p50 = re.search(r"^\s*50%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.MULTILINE)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.MULTILINE)
    if not (rps and p50 and p99):
        raise BenchError(f"could not read Requests/sec and the 50%/99% latency lines from wrk's output:\n{output}")
    requests = re.search(r"^\s*(\d+) requests in", output, re.MULTILINE)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    socket_errors = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, sockets.groups()), strict=True)) if sockets else {}
    )
    return WrkResult(
        requests_per_s=float(rps.group(1)),
        p50_ms=to_ms(*p50.groups()),
        p99_ms=to_ms(*p99.groups()),
        requests=int(requests.group(1)) if requests else 0,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=socket_errors,
    )


def run_wrk(wrk: str, url: str, lua: Path, seconds: int, args: argparse.Namespace) -> str:
    argv = [wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s", "--latency"]
    argv += ["--timeout", WRK_REQUEST_TIMEOUT, "-s", str(lua), url]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk did not finish within {seconds + 60} s") from None
    if done.returncode != 0:
        raise BenchError(f"wrk exited with code {done.returncode}:\n{done.stderr}{done.stdout}")
    return done.stdout


def measure(server: Server, route: Route, wrk: str, work: Path, args: argparse.Namespace) -> WrkResult:
    lua = work / f"{server.spec.key}-{re.sub(r'[^a-z0-9]+', '-', route.label.lower())}.lua"
    write_lua(lua, route.body)
    url = f"http://{HOST}:{server.port}{route.path}"
    logger.info("%s %s: warm-up %d s", server.spec.name, route.label, WARMUP_SECONDS)
    run_wrk(wrk, url, lua, WARMUP_SECONDS, args)
    logger.info("%s %s: measuring %d s", server.spec.name, route.label, args.duration)
    result = parse_wrk(run_wrk(wrk, url, lua, args.duration, args))
    if server.process is not None and server.process.poll() is not None:
        raise BenchError(f"{server.spec.name} died during the run (log {server.log_path}):\n{server.log_tail()}")
    return result


def bench_server(
    spec: ServerSpec, *, digit: Digit, labels: Sequence[str], wrk: str, work: Path, args: argparse.Namespace
) -> list[Row]:
    rows = [Row(spec.name, route.label) for route in spec.routes]
    try:
        with running(spec, PEERS_DIR / "logs") as server:
            # Every route is checked before any is loaded: a wrong answer is reported, not benchmarked.
            problems = [check_route(server, route, digit, labels) for route in spec.routes]
            for row, route, problem in zip(rows, spec.routes, problems, strict=True):
                if problem:
                    logger.error("%s %s answers wrongly, not benchmarked: %s", spec.name, route.label, problem)
                    row.problem = f"wrong answer: {problem}"
                    continue
                try:
                    row.result = measure(server, route, wrk, work, args)
                except BenchError as exc:
                    logger.error("%s %s: %s", spec.name, route.label, exc)
                    row.problem = f"not measured: {str(exc).splitlines()[0]}"
                    if server.process is not None and server.process.poll() is not None:
                        raise
                    continue
                if row.result.errors:
                    row.problem = f"{describe_errors(row.result)}: figures not trustworthy"
    except BenchError as exc:
        logger.error("%s", exc)
        first_line = str(exc).splitlines()[0]
        for row in rows:
            if row.result is None and not row.problem:
                row.problem = f"not measured: {first_line}"
    return rows


def describe_errors(result: WrkResult) -> str:
    sockets = ", ".join(f"{kind} {count}" for kind, count in result.socket_errors.items() if count)
    return f"{result.non_2xx} non-2xx/3xx responses" + (f", socket errors {sockets}" if sockets else "")


# --- the report ----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "kernel": f"{platform.system()} {platform.release()}",
    }


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
    wrk = shutil.which("wrk")
    if wrk is None:
        raise PrerequisiteError("wrk is missing: apt-get install wrk")
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
    (PEERS_DIR / "logs").mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        # One server at a time: an idle server still holds memory and wakes for its timers.
        for key in (key for key in SERVERS if key in args.only):
            spec = server_spec(key, digit, model, pythons, names[key])
            rows.extend(bench_server(spec, digit=digit, labels=model.labels, wrk=wrk, work=Path(tmp), args=args))
    unit = baseline(rows)
    report = {
        "date": date,
        "machine": machine(),
        "versions": versions,
        "settings": {
            "duration_s": args.duration,
            "warmup_s": WARMUP_SECONDS,
            "threads": args.threads,
            "connections": args.connections,
            "workers": 1,
        },
        "digit": {"index": digit.index, "label": digit.label},
        "rows": [
            {
                "server": row.server,
                "route": row.route,
                **({**asdict(row.result), "errors": row.result.errors} if row.result else {}),
                "throughput_vs_api_predict": ratio(row, unit),
                "problem": row.problem,
            }
            for row in rows
        ],
    }
    print_report(rows, report, args)
    if args.json:
        print(json.dumps(report, indent=2))
    return EXIT_FAILED if any(row.problem for row in rows) else EXIT_OK


SERVERS = ("api", "limit", "kserve", "bentoml")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--duration", type=positive_int, default=10, help="seconds of load per route (default 10)")
    parser.add_argument("--connections", type=positive_int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--threads", type=positive_int, default=2, help="wrk threads (default 2)")
    parser.add_argument(
        "--only", action="append", choices=SERVERS, help="run only these servers (repeatable; default all)"
    )
    parser.add_argument(
        "--skip-install", action="store_true", help="use the environments in build/peers/ as they are, never pip"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the results as JSON on stdout (the table then goes to stderr)"
    )
    args = parser.parse_args(argv)
    args.only = tuple(args.only or SERVERS)
    if args.connections < args.threads:
        # wrk refuses this itself, with a less helpful message.
        parser.error("--connections must be at least --threads")
    return args


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    # SIGTERM (a CI timeout, a kill) unwinds like Ctrl-C, so every server's processes are stopped;
    # SIGINT is taken too, as a shell without job control starts background jobs with it ignored.
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return run(args)
    except PrerequisiteError as exc:
        logger.error("%s", exc)
        return EXIT_PREREQUISITE
    except KeyboardInterrupt:
        logger.warning("interrupted; servers stopped")
        return EXIT_INTERRUPTED
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    raise SystemExit(main())
