"""digit_testing.tooling: the rule for system tools the tests drive (skip outside CI, fail in CI)."""

from __future__ import annotations

import pytest

from digit_testing.tooling import require_tool as require


def test_a_missing_tool_skips_outside_ci_and_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-such-tool is missing: apt-get install no-such-tool"):
        require("no-such-tool", "apt-get install no-such-tool")


def test_a_missing_tool_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no-such-tool is missing"):
        require("no-such-tool", "apt-get install no-such-tool")


def test_a_present_tool_gives_its_path() -> None:
    assert require("sh", "apt-get install dash").endswith("/sh")
