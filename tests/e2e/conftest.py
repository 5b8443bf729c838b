"""Whole-stack fixtures: the real API and Debian's nginx with the project's config, on loopback ports."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .stack import REPO, Nginx, free_port, nginx_binary, start_nginx, stop, wait_for


@dataclass
class Service:
    url: str
    process: subprocess.Popen
    log: Path


def start_api(log_dir: Path, **env: str) -> Service:
    port = free_port()
    log = log_dir / f"api-{port}.log"
    settings = {"HOST": "127.0.0.1", "PORT": str(port), "MODEL_DIR": str(REPO / "api" / "models"), **env}
    with open(log, "wb") as out:  # a file, not a pipe, which would fill up and stall the service
        process = subprocess.Popen(
            [sys.executable, "-m", "digit_api"], env={**os.environ, **settings}, stdout=out, stderr=subprocess.STDOUT
        )
    service = Service(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_for(f"{service.url}/readyz", process, log)
    except BaseException:
        stop(process)
        raise
    return service


@pytest.fixture(scope="session")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The API serving the shipped model, shared by the whole session."""
    service = start_api(tmp_path_factory.mktemp("api"))
    yield service
    stop(service.process)


@pytest.fixture(scope="session")
def stack(api: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    """The page as production serves it: nginx (production defaults) in front of the API."""
    server, process = start_nginx(nginx_binary(), tmp_path_factory.mktemp("nginx"), api.url.removeprefix("http://"))
    yield server
    stop(process)


@pytest.fixture(scope="session")
def digit_pixels() -> list[int]:
    """A held-out digit as 784 ints."""
    from digit_training.data import held_out

    images, _ = held_out()
    return images[0].ravel().tolist()
