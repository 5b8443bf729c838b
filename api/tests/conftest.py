"""The API's fixtures; the ones every suite shares (held_out_digits, shipped_model_dir, model_copy,
postgres_server, database_url) come from digit_testing.fixtures, a pytest plugin."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def make_client(tmp_path: Path):
    """Build a TestClient (lifespan run) for a service over `model_dir`; closed after the test."""
    from fastapi.testclient import TestClient

    from digit_api.config import Settings
    from digit_api.main import create_app

    clients = []

    def make(model_dir: Path, **settings) -> TestClient:
        settings.setdefault("reload_interval", 0)
        # Each test's own feedback file, never the repository's var/.
        settings.setdefault("database_url", f"sqlite:///{tmp_path / 'feedback.sqlite3'}")
        client = TestClient(create_app(Settings(model_dir=model_dir, **settings)), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client, shipped_model_dir: Path):
    """A service over the shipped model, as `make run` starts it."""
    return make_client(shipped_model_dir)


@pytest.fixture(scope="session")
def digit(held_out_digits) -> tuple[list[int], int]:
    """A held-out digit the shipped model gets right, as 784 ints, and its label."""
    images, labels = held_out_digits
    return images[0].ravel().tolist(), int(labels[0])


@pytest.fixture(scope="session")
def running_api(tmp_path_factory, shipped_model_dir: Path):
    """The API as a process over the shipped model on a free loopback port (its own feedback file): its URL."""
    from digit_testing.processes import running_api as api_process

    with api_process(shipped_model_dir, tmp_path_factory.mktemp("running-api"), {"RELOAD_INTERVAL": "0"}) as api:
        yield api.url
        assert api.process.poll() is None, f"the API died during the tests: {api.read_log()[-3000:]}"


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio, as uvicorn runs the service."""
    return "asyncio"
