"""What the serving benchmarks share: servers as processes, routes checked against the model, wrk.

bench/serve.py (this API, the limit server and the Keras reference), bench/peers.py (KServe and
BentoML) and bench/soak.py (memory under hours of mixed load) each say which servers to start and
what to post to them; this module starts a server in its own process group on a free loopback
port, checks that each route answers a held-out digit as the model does in-process, loads it
with wrk, and stops the server with everything it started.
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
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from digit_release.data import read_dataset
from digit_release.model import LiteRTModel

logger = logging.getLogger("bench")

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
MODEL_DIR = ROOT / "api" / "models"
MNIST = ROOT / "training" / "data" / "mnist.npz"
PROJECT_VENV = ROOT / ".venv"

HOST = "127.0.0.1"
EXIT_OK, EXIT_FAILED, EXIT_PREREQUISITE, EXIT_INTERRUPTED = 0, 1, 2, 130
WARMUP_SECONDS = 3
# wrk's default 2 s timeout would turn slow answers into "timeout" errors and drop them from the
# histogram, flattering p99; a long timeout keeps the slow servers' latency honest.
WRK_REQUEST_TIMEOUT = "10s"
STOP_TIMEOUT = 10.0
# float32 probabilities printed and read back through JSON differ by rounding at most.
PROBABILITY_TOLERANCE = 1e-5
JSON = {"Content-Type": "application/json"}
_UNIT_TO_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


class PrerequisiteError(Exception):
    """Something the benchmark needs is missing; the message says how to get it (exit 2)."""


class BenchError(Exception):
    """A server or wrk failed, so there are no figures to report (exit 1)."""


# --- what is posted, and how an answer gives the probabilities --------------------------------


@dataclass(frozen=True)
class Digit:
    """A held-out digit the model gets right in-process, and the probabilities it gives it."""

    index: int
    label: int
    pixels: list[int]
    probabilities: np.ndarray


def held_out_digit(model: LiteRTModel) -> Digit:
    """The first held-out digit the model gets right in-process: what every server must then answer."""
    data = read_dataset(MNIST)
    labels = [int(label) for label in model.labels]
    for index in range(len(data.x_test)):
        image = data.x_test[index]
        probabilities = model.predict(image.reshape(1, 784).astype(np.float32))[0]
        if labels[int(probabilities.argmax())] == int(data.y_test[index]):
            return Digit(index, int(data.y_test[index]), [int(v) for v in image.reshape(-1)], probabilities)
    raise PrerequisiteError(f"the model gets none of {MNIST}'s held-out digits right")


Answer = Callable[[bytes, Mapping[str, str]], Any]


def pixels_answer(body: bytes, headers: Mapping[str, str]) -> Any:
    return json.loads(body)["probabilities"]


def batch_answer(body: bytes, headers: Mapping[str, str]) -> Any:
    return [row["probabilities"] for row in json.loads(body)["predictions"]]


def v1_answer(body: bytes, headers: Mapping[str, str]) -> Any:
    return json.loads(body)["predictions"]


def v2_answer(body: bytes, headers: Mapping[str, str]) -> Any:
    """The output tensor of an Open Inference Protocol answer, JSON or binary."""
    length = headers.get("inference-header-content-length")
    if length is None:
        return json.loads(body)["outputs"][0]["data"]
    [output] = json.loads(body[: int(length)])["outputs"]
    return np.frombuffer(body[int(length) :], dtype="<f4")[: int(np.prod(output["shape"]))]


@dataclass(frozen=True)
class Route:
    """One route of one server: what it is posted and how its answer gives the probabilities."""

    label: str
    path: str
    body: bytes
    answer: Answer
    headers: Mapping[str, str] = field(default_factory=lambda: dict(JSON))
    # How many digits one request carries: a batch route's throughput counts digits too.
    digits: int = 1


def v2_json(digit: Digit, input_name: str, rows: int = 1) -> bytes:
    tensor = {"name": input_name, "shape": [rows, 784], "datatype": "FP32", "data": digit.pixels * rows}
    return json.dumps({"inputs": [tensor]}).encode()


def v2_binary(digit: Digit, input_name: str, rows: int = 1) -> tuple[bytes, dict[str, str]]:
    """A body of the binary tensor data extension as tritonclient builds it by default.

    Its InferenceServerClient.infer with a binary input and no outputs named asks for every
    output in binary (`binary_data_output`).
    """
    blob = np.asarray(digit.pixels * rows, dtype="<f4").tobytes()
    size = {"binary_data_size": len(blob)}
    header = {
        "inputs": [{"name": input_name, "shape": [rows, 784], "datatype": "FP32", "parameters": size}],
        "parameters": {"binary_data_output": True},
    }
    text = json.dumps(header).encode()
    return text + blob, {**JSON, "Inference-Header-Content-Length": str(len(text))}


# --- processes ---------------------------------------------------------------------------------


@dataclass
class ServerSpec:
    key: str
    name: str
    port: int
    argv: list[str]
    env: dict[str, str]
    ready_path: str
    routes: list[Route]
    ready_timeout: float = 180.0


def api_spec(port: int, database: Path, routes: list[Route], name: str = "this API") -> ServerSpec:
    """This API as `make run` starts it, one worker, with a feedback file of its own at `database`."""
    env = {
        **{"HOST": HOST, "PORT": str(port), "MODEL_DIR": str(MODEL_DIR), "WORKERS": "1"},
        # The production default: successes are logged at DEBUG by design, client errors at INFO.
        "LOG_LEVEL": "info",
        # Not the repository's var/: a benchmark leaves no verdicts behind.
        "DATABASE_URL": f"sqlite:///{database}",
    }
    return ServerSpec("api", name, port, [str(PROJECT_VENV / "bin" / "digit-api")], env, "/readyz", routes)


def limit_spec(port: int, routes: list[Route], name: str = "limit server") -> ServerSpec:
    """The limit server (limit_server.py) on uvicorn with uvloop and httptools, one worker."""
    argv = [
        *(str(PROJECT_VENV / "bin" / "python"), "-m", "uvicorn", "--app-dir", str(BENCH_DIR), "limit_server:app"),
        *("--loop", "uvloop", "--http", "httptools", "--workers", "1", "--no-access-log"),
        *("--host", HOST, "--port", str(port)),
    ]
    return ServerSpec("limit", name, port, argv, {"MODEL_DIR": str(MODEL_DIR)}, "/readyz", routes)


def find_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise PrerequisiteError("wrk is missing: apt-get install wrk")
    return wrk


def http_request(
    port: int,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
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


def alive(pid: int, start: int) -> bool:
    identity = process_identity(pid)
    return identity is not None and identity[1] == start


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process and all it started have used so far, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for member in (pid, *descendants(pid)):
        try:
            stat = Path(f"/proc/{member}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def rss_bytes(pid: int) -> int | None:
    """The resident set size of a process and all it started, from /proc; None once it is gone."""
    total = 0
    for member in (pid, *descendants(pid)):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            if member == pid:
                return None
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        total += int(match.group(1)) * 1024 if match else 0
    return total


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
        # A file, not a pipe: nobody reads the output during the run, and a full pipe would stall the server.
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.spec.argv,
                cwd=ROOT,
                env={**os.environ, **self.spec.env},
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

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise BenchError(f"{self.spec.name} died (log {self.log_path}):\n{self.log_tail()}")

    def wait_ready(self) -> None:
        if self.process is None:
            raise BenchError(f"{self.spec.name} was never started")
        started = time.monotonic()
        while time.monotonic() < started + self.spec.ready_timeout:
            code = self.process.poll()
            if code is not None:
                raise BenchError(
                    f"{self.spec.name} exited with code {code} before it was ready (log {self.log_path}):\n"
                    f"{self.log_tail()}"
                )
            with contextlib.suppress(OSError, http.client.HTTPException):
                status, _, _ = http_request(self.port, "GET", self.spec.ready_path, timeout=2.0)
                if status == 200:
                    logger.info("%s ready after %.1f s", self.spec.name, time.monotonic() - started)
                    return
            time.sleep(0.25)
        raise BenchError(
            f"{self.spec.name} was not ready within {self.spec.ready_timeout:.0f} s (log {self.log_path}):\n"
            f"{self.log_tail()}"
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


@contextlib.contextmanager
def running(spec: ServerSpec, log_dir: Path) -> Iterator[Server]:
    log_dir.mkdir(parents=True, exist_ok=True)
    server = Server(spec, log_dir / f"{spec.key}.log")
    try:
        server.start()
        server.wait_ready()
        yield server
    finally:
        server.stop()


# --- checking a route ----------------------------------------------------------------------------


class WrongAnswer(Exception):
    """A route whose answer is not the model's; the message says how it differs."""


def probabilities_from(server: Server, route: Route) -> np.ndarray:
    """The probabilities the route answers for its body, one row per digit; WrongAnswer for anything else."""
    try:
        status, headers, raw = http_request(
            server.port, "POST", route.path, body=route.body, headers=route.headers, timeout=30.0
        )
    except (OSError, http.client.HTTPException) as exc:
        raise WrongAnswer(f"POST {route.path} failed: {exc}") from None
    if status != 200:
        raise WrongAnswer(f"POST {route.path} answered {status}: {raw[:300]!r}")
    try:
        return np.asarray(route.answer(raw, headers), dtype=np.float64).reshape(route.digits, -1)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise WrongAnswer(f"POST {route.path}: no probabilities in {raw[:300]!r} ({exc})") from None


def check_route(
    server: Server, route: Route, digit: Digit, labels: Sequence[str], tolerance: float = PROBABILITY_TOLERANCE
) -> str:
    """What is wrong with the route's answer to the digit, or "" when it answers as the model does in-process.

    `tolerance`: how far its probabilities may be from the model's (1 checks the label alone).
    """
    try:
        rows = probabilities_from(server, route)
    except WrongAnswer as exc:
        return str(exc)
    if rows.shape[1:] != digit.probabilities.shape:
        return f"POST {route.path}: {rows.shape[1]} probabilities a digit, expected {digit.probabilities.size}"
    answers = {int(labels[int(i)]) for i in rows.argmax(axis=1)}
    difference = float(np.abs(rows - digit.probabilities).max())
    if answers != {digit.label}:
        return f"POST {route.path}: answered {sorted(answers)} for a held-out {digit.label}"
    if difference > tolerance:
        return f"POST {route.path}: probabilities differ from the model's by up to {difference:.2e}"
    logger.info(
        "%s %s: %d, as in-process (largest difference %.1e)", server.spec.name, route.label, digit.label, difference
    )
    return ""


# --- wrk -----------------------------------------------------------------------------------------


@dataclass
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    # wrk counts every status >= 400 here (its label says "Non-2xx or 3xx").
    non_2xx: int
    socket_errors: dict[str, int] = field(default_factory=dict)
    # The server's own CPU time per request: steadier than requests/s when wrk shares the CPUs.
    cpu_us_per_request: float | None = None

    @property
    def errors(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())


def lua_string(data: bytes) -> str:
    """A Lua string literal of any bytes (a binary body included): printable ASCII as it is, the rest escaped."""
    out = []
    for byte in data:
        char = chr(byte)
        out.append(char if 32 <= byte < 127 and char not in '"\\' else f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def lua_script(route: Route) -> str:
    lines = ['wrk.method = "POST"', f"wrk.body = {lua_string(route.body)}"]
    lines += [f"wrk.headers[{lua_string(k.encode())}] = {lua_string(v.encode())}" for k, v in route.headers.items()]
    return "\n".join(lines) + "\n"


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
        p50_ms=float(p50.group(1)) * _UNIT_TO_MS[p50.group(2)],
        p99_ms=float(p99.group(1)) * _UNIT_TO_MS[p99.group(2)],
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
    lua.write_text(lua_script(route))
    url = f"http://{HOST}:{server.port}{route.path}"
    logger.info("%s %s: warm-up %d s", server.spec.name, route.label, WARMUP_SECONDS)
    run_wrk(wrk, url, lua, WARMUP_SECONDS, args)
    logger.info("%s %s: measuring %d s", server.spec.name, route.label, args.duration)
    assert server.process is not None  # noqa: S101 - running() started it
    cpu_before = cpu_seconds(server.process.pid)
    result = parse_wrk(run_wrk(wrk, url, lua, args.duration, args))
    cpu = cpu_seconds(server.process.pid) - cpu_before
    server.check_alive()
    if result.requests:
        result.cpu_us_per_request = cpu / result.requests * 1e6
    return result


def describe_errors(result: WrkResult) -> str:
    sockets = ", ".join(f"{kind} {count}" for kind, count in result.socket_errors.items() if count)
    return f"{result.non_2xx} non-2xx/3xx responses" + (f", socket errors {sockets}" if sockets else "")


@dataclass
class Row:
    server: str
    route: str
    digits: int = 1
    result: WrkResult | None = None
    # Why there are no figures (or why they are not to be trusted), or "" when all went well.
    problem: str = ""

    def document(self) -> dict[str, Any]:
        measured = {} if self.result is None else {**self.result.__dict__, "errors": self.result.errors}
        return {
            "server": self.server,
            "route": self.route,
            "digits_per_request": self.digits,
            **measured,
            "problem": self.problem,
        }


def bench_server(
    spec: ServerSpec,
    *,
    digit: Digit,
    labels: Sequence[str],
    wrk: str,
    work: Path,
    args: argparse.Namespace,
    tolerance: float = PROBABILITY_TOLERANCE,
    log_dir: Path | None = None,
) -> list[Row]:
    """Start the server, check every route, load each one that answers right; one row per route.

    `work` takes wrk's scripts, `log_dir` the server's log (`work/logs` unless given).
    """
    rows = [Row(spec.name, route.label, route.digits) for route in spec.routes]
    try:
        with running(spec, log_dir or work / "logs") as server:
            # Every route is checked before any is loaded: a wrong answer is reported, not benchmarked.
            problems = [check_route(server, route, digit, labels, tolerance) for route in spec.routes]
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
                    server.check_alive()
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


# --- the report ----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"nproc": len(os.sched_getaffinity(0)), "cpu": cpu, "kernel": f"{platform.system()} {platform.release()}"}


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


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
        raise PrerequisiteError(f"{python} could not report its versions:\n{done.stderr[-2000:]}")
    found: dict[str, str | None] = json.loads(done.stdout)
    return found


def common_arguments(parser: argparse.ArgumentParser, duration: int, servers: Sequence[str] = ()) -> None:
    """--duration, --connections, --threads, --json, and --only when there are `servers` to choose from."""
    if servers:
        parser.add_argument(
            "--only", action="append", choices=servers, help="run only these servers (repeatable; default all)"
        )
    parser.add_argument(
        "--duration",
        type=positive_int,
        default=duration,
        help=f"seconds of load, per route where there are several (default {duration})",
    )
    parser.add_argument("--connections", type=positive_int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--threads", type=positive_int, default=2, help="wrk threads (default 2)")
    parser.add_argument(
        "--json", action="store_true", help="print the results as JSON on stdout (the table then goes to stderr)"
    )


def checked(
    parser: argparse.ArgumentParser, args: argparse.Namespace, servers: Sequence[str] = ()
) -> argparse.Namespace:
    if servers:
        args.only = tuple(args.only or servers)
    if args.connections < args.threads:
        # wrk refuses this itself, with a less helpful message.
        parser.error("--connections must be at least --threads")
    return args


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_main(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a benchmark with its exit codes: 2 for a missing prerequisite, 1 for a failure, 130 interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    # SIGTERM (a CI timeout, a kill) unwinds like Ctrl-C, so every server's processes are stopped;
    # SIGINT is taken too, as a shell without job control starts background jobs with it ignored.
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return run(args)
    except PrerequisiteError as exc:
        logger.error("%s", exc)
        return EXIT_PREREQUISITE
    except BenchError as exc:
        logger.error("%s", exc)
        return EXIT_FAILED
    except KeyboardInterrupt:
        logger.warning("interrupted; servers stopped")
        return EXIT_INTERRUPTED
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
