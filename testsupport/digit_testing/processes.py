"""Subprocesses the tests and benchmarks run for real: free ports, the API up on /readyz, stopping."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


class NotStarted(RuntimeError):
    """A process exited, or never answered, while the caller waited for it; the message holds its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def poll_until(
    ready: Callable[[], bool],
    *,
    timeout: float,
    timed_out: str = "timed out",
    interval: float = 0.05,
    gone: Callable[[], str | None] = lambda: None,
) -> str | None:
    """Ask `ready` every `interval` s: None once it says yes; else why not: what `gone` said (what
    the caller waits on is gone) or, after `timeout` s, `timed_out`. A connection that fails
    (httpx's TransportError) is a no."""
    deadline = time.monotonic() + timeout
    while True:
        if (why := gone()) is not None:
            return why
        try:
            if ready():
                return None
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            return timed_out
        time.sleep(interval)


def answers(url: str, status: int = 200, timeout: float = 1) -> bool:
    """Whether GET `url` answers `status` now."""
    return httpx.get(url, timeout=timeout).status_code == status


def wait_for(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 30, status: int = 200) -> None:
    """Until `url` answers `status`; NotStarted (with the log's tail) if the process dies or time runs out."""
    why = poll_until(
        lambda: answers(url, status),
        timeout=timeout,
        timed_out=f"{url} never answered {status}",
        gone=lambda: None if process.poll() is None else f"{process.args!r} exited with {process.returncode}",
    )
    if why is not None:
        raise NotStarted(f"{why}; log:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """SIGTERM, `timeout` seconds to exit, then SIGKILL."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class RunningApi:
    url: str
    log: Path
    process: subprocess.Popen[bytes]

    def read_log(self) -> str:
        return self.log.read_text(errors="replace")

    def version(self) -> str | None:
        """The model_version /readyz reports, or None while it does not answer."""
        try:
            version = httpx.get(f"{self.url}/readyz", timeout=1).json().get("model_version")
        except (httpx.TransportError, ValueError):
            return None
        return str(version) if version is not None else None

    def wait_for_version(self, version: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.version() != version:
            if time.monotonic() > deadline:
                raise NotStarted(f"the API never served v{version}; log:\n{self.read_log()[-3000:]}")
            time.sleep(0.1)


@contextmanager
def running_api(
    model_dir: Path, log_dir: Path, env: Mapping[str, str] | None = None, ready: bool = True
) -> Iterator[RunningApi]:
    """`digit-api` serving `model_dir` on a free port, its output in a log file under `log_dir`.

    Its feedback database is a SQLite file of its own under `log_dir` unless `env` names one.
    With `ready`, returns once /readyz answers 200; otherwise once the service answers /healthz.
    """
    port = free_port()
    log = Path(log_dir) / f"api-{port}.log"
    settings = {
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "MODEL_DIR": str(model_dir),
        "DATABASE_URL": f"sqlite:///{Path(log_dir) / f'feedback-{port}.sqlite3'}",
        **(env or {}),
    }
    with open(log, "wb") as out:  # a file, not a pipe: a full pipe would stall the service
        process = subprocess.Popen(
            [sys.executable, "-m", "digit_api"], env={**os.environ, **settings}, stdout=out, stderr=subprocess.STDOUT
        )
    api = RunningApi(f"http://127.0.0.1:{port}", log, process)
    try:
        wait_for(f"{api.url}/{'readyz' if ready else 'healthz'}", process, log)
        yield api
    finally:
        stop(process)
