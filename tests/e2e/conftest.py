"""Whole-stack fixtures: the real API, Debian's nginx with the project's config and Debian's Chromium, on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from digit_testing.processes import RunningApi, running_api
from digit_testing.releases import SHIPPED
from digit_testing.tooling import require_tool

from .stack import Nginx, nginx_binary, start_nginx, stop


@pytest.fixture(scope="session")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApi]:
    """The API serving the shipped model, shared by the whole session."""
    with running_api(SHIPPED, tmp_path_factory.mktemp("api")) as service:
        yield service


@pytest.fixture(scope="session")
def stack(api: RunningApi, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
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


@pytest.fixture(scope="session")
def digit_pixels(held_out_digits) -> list[int]:
    """A held-out digit as 784 ints."""
    images, _ = held_out_digits
    return images[0].ravel().tolist()
