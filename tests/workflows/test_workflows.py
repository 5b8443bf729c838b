"""GitHub Actions workflows keep the project's rules: actions pinned by commit, least privilege, bounded runs.

No workflow runs here (no GitHub): the files are checked for what a reviewer checks. What the deploy
job does with the digests it is handed runs for real in tests/containers/test_pods.py.
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


def test_the_deploy_pins_the_images_it_built_by_digest() -> None:
    """deploy.sh gets IMAGE@DIGEST from the images job's outputs, one per matrix leg, never a tag that can move."""
    workflow = yaml.safe_load((WORKFLOWS[0].parent / "deploy.yml").read_text())
    images, deploy = workflow["jobs"]["images"], workflow["jobs"]["deploy"]
    legs = images["strategy"]["matrix"]["include"]
    # Each leg writes its digest under its own name, and the job maps every one of them.
    assert {leg["output"] for leg in legs} == set(images["outputs"])
    for output, value in images["outputs"].items():
        assert value == f"${{{{ steps.digest.outputs.{output} }}}}", (output, value)
    digest_step = next(step for step in images["steps"] if step.get("id") == "digest")
    assert digest_step["env"]["DIGEST"] == "${{ steps.build.outputs.digest }}"
    assert any(step.get("id") == "build" and "build-push-action" in step["uses"] for step in images["steps"])
    env = {key: value for step in deploy["steps"] for key, value in (step.get("env") or {}).items()}
    for leg in legs:
        variable = "API_IMAGE" if leg["image"] == "digit-api" else "FRONTEND_IMAGE"
        assert env[variable].endswith(f"/{leg['image']}@${{{{ needs.images.outputs.{leg['output']} }}}}"), env[variable]
    run = "\n".join(step.get("run", "") for step in deploy["steps"])
    assert '--api-image "${API_IMAGE' in run and '--frontend-image "${FRONTEND_IMAGE' in run
