"""Where the code came from: recorded in every manifest, and given to remote jobs. No TensorFlow here."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# Where the code that shapes a model lives; api/models/ is output, not code.
CODE_PATHS = ("training", "release")


def code_revision() -> str:
    """The commit the code came from, `-dirty` if it has changes (`CODE_REVISION` wins: a remote job has no .git)."""
    if os.environ.get("CODE_REVISION"):
        return os.environ["CODE_REVISION"]
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head
