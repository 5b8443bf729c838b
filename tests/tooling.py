"""The one rule for system tools the tests drive for real (nginx, Chromium, crontab, hadolint, ...).

Outside CI a missing tool skips, saying how to install it; with CI=true it fails, so a CI run can
never pass by skipping the real parts. On the tests' path through `pythonpath` in pyproject.toml.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType
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


def automation_test_module(name: str) -> ModuleType:
    """A helper module of automation/tests (the GitHub stand-in, release builders), loaded by path.

    automation/tests is no package on the other suites' path, and its conftest fixtures are not
    visible from them; one loader keeps every suite on the same module object.
    """
    module_name = f"_automation_tests_{name}"
    if module_name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "automation" / "tests" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclasses look their module up while the class is built
        spec.loader.exec_module(module)
    return sys.modules[module_name]
