"""Fixtures of the release format's tests: the shipped model folder and the held-out digits."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from digit_testing.releases import SHIPPED, held_out


@pytest.fixture(scope="session")
def held_out_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 2,000 held-out digits (uint8 images, labels): the project's accuracy fixture."""
    return held_out()


@pytest.fixture(scope="session")
def shipped_model_dir() -> Path:
    """`api/models/`: the model in service, as committed."""
    return SHIPPED


@pytest.fixture
def model_copy(tmp_path: Path, shipped_model_dir: Path) -> Path:
    """A scratch copy of the shipped model folder, free to tamper with."""
    target = tmp_path / "models"
    shutil.copytree(shipped_model_dir, target)
    return target
