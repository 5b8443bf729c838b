"""The OpenAPI document holds from outside: `schemathesis run --checks all` against a running API.

Every check schemathesis has, over every operation: no 5xx, every status and content type and
body as documented, what the schema allows is accepted and what it forbids refused. The few rules
of a valid request that JSON Schema cannot state (an image is an image; data holds N x 784
numbers) are taught to it in schemathesis_hooks.py. A fixed seed and a bounded number of examples
keep the run reproducible and about 20 seconds long; SCHEMATHESIS_SEED=... explores others.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from digit_testing.tooling import require_tool

HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
MAX_EXAMPLES = 15


def test_schemathesis_checks_all_finds_no_issue(running_api: str, tmp_path: Path) -> None:
    cli = require_tool("schemathesis", "pip install -r requirements-dev.txt")
    seed = os.environ.get("SCHEMATHESIS_SEED", "1")
    command = [
        cli, "run", f"{running_api}/openapi.json",
        "--checks", "all",
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", seed,
        "--generation-database", "none",
        "--no-color",
        "--report", "junit", "--report-dir", str(tmp_path),
    ]  # fmt: skip
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)}
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900, check=False)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    # Not only the exit code: "No issues found" means no failure, no error and no warning either.
    assert result.returncode == 0 and "No issues found" in summary, result.stdout[-12000:] + result.stderr[-3000:]
