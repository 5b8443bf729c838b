"""GitHub Actions workflows keep the project's rules: actions pinned by commit, least privilege, bounded runs.

No workflow runs here (no GitHub, no Docker): the files are checked for what a reviewer checks.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

WORKFLOWS = sorted((Path(__file__).resolve().parents[2] / ".github" / "workflows").glob("*.yml"))
PINNED = re.compile(r"^\s*(?:-\s*)?uses:\s*[\w.-]+/[\w./-]+@[0-9a-f]{40}\s+#\s*v\d[\w.]*\s*$")


def test_there_are_workflows() -> None:
    assert WORKFLOWS


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_by_commit_with_a_version_comment(path: Path) -> None:
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if re.match(r"^\s*(?:-\s*)?uses:", line):
            assert PINNED.match(line), f"{path.name}:{number}: {line.strip()}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_permissions_are_granted_per_job_and_runs_are_bounded(path: Path) -> None:
    workflow = yaml.safe_load(path.read_text())
    assert workflow.get("permissions") == {}, "the workflow grants nothing by default"
    for name, job in workflow["jobs"].items():
        assert "permissions" in job, f"job {name} says which permissions it needs"
        assert isinstance(job.get("timeout-minutes"), int), f"job {name} has a timeout"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_expressions_reach_scripts_only_through_env(path: Path) -> None:
    """`${{ }}` inside `run:` is script injection waiting to happen; env: is the safe door."""
    workflow = yaml.safe_load(path.read_text())
    for name, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            assert "${{" not in step.get("run", ""), f"job {name}, step {step.get('name')}: pass it through env:"
