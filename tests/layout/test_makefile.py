"""The Makefile does what its targets say: `make run` starts the service, nothing else does.

A recipe line placed under the wrong target is not a syntax error to make: the service's start
once ended up as the recipe of the kserve client's venv, so `make test` started the API in the
foreground and never got to the tests. `make -n` (print, run nothing) shows each target's commands.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVE = re.compile(r"^\S*digit-api\s*$", re.MULTILINE)  # the service started in the foreground


def dry_run(*targets: str) -> str:
    """What make would run for `targets`, everything considered out of date (-B)."""
    # Run under `make test`, make's own variables would pass its flags on (and "Entering directory" lines).
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", *targets],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def targets() -> list[str]:
    """The targets `make help` lists."""
    text = (ROOT / "Makefile").read_text()
    return re.findall(r"^([a-z][a-z0-9-]*):.*## ", text, re.MULTILINE)


def test_make_run_starts_the_service_last() -> None:
    commands = dry_run("run").strip().splitlines()
    assert SERVE.fullmatch(commands[-1].strip()), commands[-3:]


@pytest.mark.parametrize("target", [t for t in targets() if t not in ("run", "help")])
def test_no_other_target_starts_the_service(target: str) -> None:
    assert not SERVE.search(dry_run(target)), f"make {target} would start the service in the foreground"


def test_the_check_sees_the_targets() -> None:
    assert {"run", "test", "lint", "unit", "e2e", "bench"} <= set(targets())
