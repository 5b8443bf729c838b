"""Fixtures shared by the poller's tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

# --- GitHub Releases stand-in ---
from digit_testing.github_server import GitHubServer
from digit_testing.releases import IDENTITY, git, make_world


@pytest.fixture
def github_server() -> Iterator[GitHubServer]:
    """A started local GitHub Releases API (`server.api_url`, `server.repo`); stopped after the test."""
    with GitHubServer() as server:
        yield server


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A remote holding the shipped model, the poller's clone of it, and an empty folder of releases."""
    for key, value in IDENTITY.items():
        monkeypatch.setenv(key, value)
    remote, clone = make_world(tmp_path)
    releases = tmp_path / "releases"
    releases.mkdir()
    monkeypatch.setenv("MODEL_SOURCE", f"dir:{releases}")
    monkeypatch.setenv("REPO_PATH", str(clone))
    monkeypatch.delenv("MODEL_PUBLIC_KEY", raising=False)
    monkeypatch.setenv("MIN_ACCURACY", "0.985")

    class World:
        def remote_version(self) -> str:
            return json.loads(git(remote, "show", "main:api/models/model.json"))["version"]

        def remote_log(self) -> list[str]:
            return git(remote, "log", "--format=%s", "main").splitlines()

        def clone_is_clean(self) -> bool:
            return git(clone, "status", "--porcelain") == "" and git(clone, "rev-parse", "HEAD") == git(
                remote, "rev-parse", "main"
            )

    w = World()
    w.remote, w.clone, w.releases, w.tmp = remote, clone, releases, tmp_path
    return w
