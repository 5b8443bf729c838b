"""The one rule for system tools the tests drive for real (nginx, Chromium, crontab, hadolint, ...).

Outside CI a missing tool skips, saying how to install it; with CI=true it fails, so a CI run can
never pass by skipping the real parts.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import NoReturn

import pytest


def unavailable(message: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def require_tool(tool: str, install: str, found: str | None = None) -> str:
    """The path of `tool`: `found`, on PATH, beside this interpreter (an unactivated .venv), or absolute."""
    path = (
        found
        or shutil.which(tool)
        or shutil.which(tool, path=str(Path(sys.executable).parent))
        or (tool if os.path.isabs(tool) and os.path.exists(tool) else None)
    )
    if path:
        return path
    unavailable(f"{Path(tool).name} is missing: {install}")
