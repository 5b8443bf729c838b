from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from digit_training.data import held_out

SHIPPED_MODEL_DIR = Path(__file__).resolve().parents[1] / "models"


@pytest.fixture(scope="session")
def held_out_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 2,000 held-out digits (uint8 images, labels): the project's accuracy fixture."""
    return held_out()


@pytest.fixture(scope="session")
def shipped_model_dir() -> Path:
    """`api/models/`: the model in service, as committed."""
    return SHIPPED_MODEL_DIR


@pytest.fixture
def model_copy(tmp_path: Path, shipped_model_dir: Path) -> Path:
    """A scratch copy of the shipped model folder, free to tamper with."""
    target = tmp_path / "models"
    shutil.copytree(shipped_model_dir, target)
    return target


@pytest.fixture
def make_client(tmp_path: Path):
    """Build a TestClient (lifespan run) for a service over `model_dir`; closed after the test."""
    from fastapi.testclient import TestClient

    from digit_api.config import Settings
    from digit_api.main import create_app

    clients = []

    def make(model_dir: Path, **settings) -> TestClient:
        settings.setdefault("reload_interval", 0)
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
    """`python -m digit_api` over the shipped model on a free loopback port: its base URL."""
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = tmp_path_factory.mktemp("running-api") / "api.log"
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "MODEL_DIR": str(shipped_model_dir),
        "RELOAD_INTERVAL": "0",
    }
    with open(log, "wb") as out:  # a file, not a pipe, which would fill up and stall the service
        process = subprocess.Popen([sys.executable, "-m", "digit_api"], env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"the API exited: {log.read_text()[-3000:]}"
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the API never got ready: {log.read_text()[-3000:]}"
            time.sleep(0.05)
        yield url
        assert process.poll() is None, f"the API died during the tests: {log.read_text()[-3000:]}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio, as uvicorn runs the service."""
    return "asyncio"
