"""Whole-stack fixtures: the real API, Debian's nginx with the project's config and Debian's Chromium, on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tooling import require_tool

from .stack import REPO, Nginx, free_port, nginx_binary, start_nginx, stop, wait_for


@dataclass
class Service:
    url: str
    process: subprocess.Popen
    log: Path


def start_api(log_dir: Path, **env: str) -> Service:
    port = free_port()
    log = log_dir / f"api-{port}.log"
    settings = {
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "MODEL_DIR": str(REPO / "api" / "models"),
        "DATABASE_URL": f"sqlite:///{log_dir / f'feedback-{port}.sqlite3'}",
        **env,
    }
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


CHROMIUM = "/usr/bin/chromium"
# As root in a container Chromium needs --no-sandbox; the rest keeps it off the (closed) network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    require_tool(CHROMIUM, "apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()
