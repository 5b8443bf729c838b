"""The workflows pass GitHub's workflow schema and zizmor's security audits.

Both tools come from PyPI and work offline: check-jsonschema ships the SchemaStore schema for
GitHub workflows (`--builtin-schema vendor.github-workflows`), zizmor is a binary wheel whose
`--offline` mode runs every audit that needs no GitHub API. A missing tool skips with an install
hint, except with CI=true, where it fails: CI must never pass by skipping the checks.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from digit_testing.tooling import require_tool

REPO = Path(__file__).resolve().parents[2]
WORKFLOW_DIR = REPO / ".github" / "workflows"
WORKFLOWS = sorted(WORKFLOW_DIR.glob("*.yml")) + sorted(WORKFLOW_DIR.glob("*.yaml"))
INSTALL = {
    "check-jsonschema": "pip install check-jsonschema==0.39.0",
    "zizmor": "pip install zizmor==1.32.0",
}


def tool(name: str) -> str:
    """The tool's path: on PATH or beside this interpreter (an unactivated .venv)."""
    return require_tool(name, f"{INSTALL[name]} (into .venv)")


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)


def test_there_are_workflows_to_check() -> None:
    assert WORKFLOWS


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_matches_githubs_schema(path: Path) -> None:
    result = run(tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_finds_nothing_of_medium_severity_or_above() -> None:
    result = run(tool("zizmor"), "--offline", "--min-severity", "medium", "--color", "never", str(WORKFLOW_DIR))
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_flags_an_unsafe_workflow(tmp_path: Path) -> None:
    """The check has teeth: a workflow with script injection and an unpinned action fails it."""
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "bad.yml").write_text(
        "on: pull_request_target\n"
        "permissions: write-all\n"
        "jobs:\n"
        "  bad:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - uses: actions/checkout@v4\n"
        "        with:\n"
        "          ref: ${{ github.event.pull_request.head.sha }}\n"
        '      - run: echo "${{ github.event.pull_request.title }}"\n'
    )
    result = run(tool("zizmor"), "--offline", "--min-severity", "medium", "--color", "never", str(workflows))
    assert result.returncode != 0
    assert "template-injection" in result.stdout


def test_the_schema_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  build:\n    runs-on: ubuntu-latest\n    stepz: []\n")
    result = run(tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(broken))
    assert result.returncode != 0
