"""What may import what (docs/architecture.md): api, training and the poller depend on the release
package and never on each other; serving and polling never load TensorFlow or Keras.

Read from the source with `ast`, so an import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "digit_release": ROOT / "release" / "digit_release",
    "digit_api": ROOT / "api" / "digit_api",
    "digit_training": ROOT / "training" / "digit_training",
    "digit_poller": ROOT / "automation" / "digit_poller",
    "digit_testing": ROOT / "testsupport" / "digit_testing",
}
# Each package, and the project packages it may import besides itself.
ALLOWED = {
    "digit_release": set(),
    "digit_api": {"digit_release"},
    "digit_training": {"digit_release"},
    "digit_poller": {"digit_release"},
    # The golden preprocessing vectors are the API's recipe's own output (make golden).
    "digit_testing": {"digit_release", "digit_api"},
}
# The API image and the poller carry no TensorFlow: a slip here would be an ImportError in production.
HEAVY = {"tensorflow", "keras"}
LEAN = ("digit_release", "digit_api", "digit_poller")


def imported(package: str) -> dict[str, set[str]]:
    """Top-level module -> the files of `package` that import it."""
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGES[package].rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_a_package_imports_only_what_the_architecture_allows(package: str) -> None:
    project = set(PACKAGES) - {package}
    wrong = {name: files for name, files in imported(package).items() if name in project - ALLOWED[package]}
    assert not wrong, f"{package} imports {wrong}; it may import only {sorted(ALLOWED[package]) or 'no other package'}"


@pytest.mark.parametrize("package", LEAN)
def test_serving_and_polling_never_import_tensorflow(package: str) -> None:
    wrong = {name: files for name, files in imported(package).items() if name in HEAVY}
    assert not wrong, f"{package} imports {wrong}: its install and image carry no TensorFlow"


def test_the_check_sees_imports() -> None:
    """The walk finds what a package does import (else the tests above could not fail)."""
    assert "digit_release" in imported("digit_api")
    assert "tensorflow" in imported("digit_training") or "keras" in imported("digit_training")
