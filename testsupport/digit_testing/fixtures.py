"""The pytest fixtures several suites share, loaded in every suite as a pytest plugin.

testsupport/pyproject.toml registers this module under pytest's `pytest11` entry point, so any
pytest run in the development environment has these fixtures without a conftest importing them.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from digit_testing import images, standins
from digit_testing.docker import REPO, Engine, ca_bundle, engine
from digit_testing.pgserver import PostgresServer, start_server
from digit_testing.releases import SHIPPED, held_out


@pytest.fixture(scope="session")
def held_out_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 2,000 held-out digits (uint8 images, labels): the project's accuracy fixture."""
    return held_out()


@pytest.fixture(scope="session")
def shipped_model_dir() -> Path:
    """`api/models/`: the model in service, as committed."""
    return SHIPPED


@pytest.fixture
def model_copy(tmp_path: Path, shipped_model_dir: Path) -> Path:
    """A scratch copy of the shipped model folder, free to tamper with."""
    target = tmp_path / "models"
    shutil.copytree(shipped_model_dir, target)
    return target


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server (Debian's package) for the session; each test makes its own database."""
    server = start_server()
    yield server
    server.destroy()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty feedback database of each kind the API writes: a SQLite file, a real PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'feedback.sqlite3'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url: str = server.create_database(f"test_{uuid.uuid4().hex[:12]}")
    return url


# ---- Docker: the engine, the stand-in bases and the project's images, once per session ------------


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A Docker engine for the session: the running one, or dockerd started here and stopped after.

    Afterwards every container, network, volume and image the session made is removed, and the
    session fails if any is left.
    """
    with engine(tmp_path_factory.mktemp("dockerd")) as running:
        yield running
        left = running.cleanup()
        left += running.leftovers()
        assert not left, f"the session left these on the Docker engine: {left}"


@pytest.fixture(scope="session")
def standin_bases(docker_engine: Engine) -> standins.Bases:
    """The official base images' stand-ins, built from Debian's archive (digit_testing.standins)."""
    return standins.build(docker_engine, REPO / "build" / "standins")


@pytest.fixture(scope="session")
def project_images(
    docker_engine: Engine, standin_bases: standins.Bases, tmp_path_factory: pytest.TempPathFactory
) -> images.ProjectImages:
    """digit-api and digit-frontend built from the repository's Dockerfiles on the stand-ins."""
    secret = images.build_secret(ca_bundle(), tmp_path_factory.mktemp("pip-ca"))
    return images.build(docker_engine, standin_bases, secret)
