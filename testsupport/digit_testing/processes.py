"""Subprocesses the tests and benchmarks run for real: free ports, the API up on /readyz, stopping."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
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


def wait_for(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 30, status: int = 200) -> None:
    """Until `url` answers `status`; NotStarted (with the log's tail) if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise NotStarted(f"{process.args!r} exited with {process.returncode}; log:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == status:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise NotStarted(f"{url} never answered {status}; log:\n{log.read_text()[-3000:]}")


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
