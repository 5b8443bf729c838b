"""Whole-stack fixtures: the real API and Debian's nginx with the project's config, on loopback ports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from digit_testing.processes import RunningApi, running_api

from .stack import REPO, Nginx, nginx_binary, start_nginx, stop

SHIPPED = REPO / "api" / "models"


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
