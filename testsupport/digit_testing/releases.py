"""Release folders and a git world, for the poller's, the publisher's and the whole-stack tests and bench/poll.py.

A release here is the shipped model under another version number (or other bytes), exactly as
training/ publishes one; the world is a bare repository as the remote and the poller's clone of it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np

from digit_release.data import provenance_path, read_dataset
from digit_release.manifest import (
    MANIFEST_NAME,
    SERVED_PATH,
    SUMS_NAME,
    TFLITE_NAME,
    file_entry,
    format_sha256sums,
    manifest_json,
    read_manifest,
)

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / SERVED_PATH
# The bundled data set: its held-out digits are the fixture of every accuracy check.
BUNDLED = REPO / "training" / "data" / "mnist.npz"
IDENTITY = {
    "GIT_AUTHOR_NAME": "poller-test",
    "GIT_AUTHOR_EMAIL": "poller@example.invalid",
    "GIT_COMMITTER_NAME": "poller-test",
    "GIT_COMMITTER_EMAIL": "poller@example.invalid",
}


def held_out() -> tuple[np.ndarray, np.ndarray]:
    """The 2,000 held-out digits (uint8 images, labels) of the bundled set, checked against its provenance."""
    dataset = read_dataset(BUNDLED)
    return dataset.x_test, dataset.y_test


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, check=True).stdout


def write_release(folder: Path, version: int, tflite: bytes | None = None, **manifest_changes: object) -> Path:
    """Write a release into `folder`: model.tflite, model.json (version N), SHA256SUMS."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / TFLITE_NAME).write_bytes(tflite if tflite is not None else (SHIPPED / TFLITE_NAME).read_bytes())
    files = {TFLITE_NAME: file_entry(folder / TFLITE_NAME)}
    manifest = read_manifest(SHIPPED).model_copy(update={"version": str(version), "files": files, **manifest_changes})
    (folder / MANIFEST_NAME).write_text(manifest_json(manifest))
    (folder / SUMS_NAME).write_text(format_sha256sums({**files, MANIFEST_NAME: file_entry(folder / MANIFEST_NAME)}))
    return folder


def make_world(root: Path) -> tuple[Path, Path]:
    """A bare remote whose main holds the shipped api/models and the bundled data set (the poller
    measures candidates on the digits committed in its clone), and a clone of it: (remote, clone)."""
    seed = root / "seed"
    (seed / "api" / "models").mkdir(parents=True)
    for name in (TFLITE_NAME, MANIFEST_NAME):
        shutil.copy(SHIPPED / name, seed / "api" / "models" / name)
    (seed / "training" / "data").mkdir(parents=True)
    for path in (BUNDLED, provenance_path(BUNDLED)):
        shutil.copy(path, seed / "training" / "data" / path.name)
    (seed / "README.md").write_text("a project\n")
    git(root, "init", "--quiet", "-b", "main", str(seed))
    git(seed, "add", ".")
    git(seed, "commit", "--quiet", "-m", "start")
    remote, clone = root / "remote.git", root / "clone"
    git(root, "clone", "--quiet", "--bare", str(seed), str(remote))
    git(root, "clone", "--quiet", str(remote), str(clone))
    return remote, clone
