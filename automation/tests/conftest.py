"""Fixtures shared by the poller's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

# --- GitHub Releases stand-in ---
from digit_testing.github_server import GitHubServer


@pytest.fixture
def github_server() -> Iterator[GitHubServer]:
    """A started local GitHub Releases API (`server.api_url`, `server.repo`); stopped after the test."""
    with GitHubServer() as server:
        yield server
