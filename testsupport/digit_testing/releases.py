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
    EvalSet,
    EvaluationMetrics,
    file_entry,
    read_manifest,
    write_manifest,
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


def metrics_from(confusion: list[list[int]], names: list[str], eval_set_id: str) -> EvaluationMetrics:
    """Metrics that add up, from a confusion matrix (what a release's manifest must hold)."""
    matrix = np.asarray(confusion, dtype=np.int64)
    rows = np.maximum(matrix.sum(axis=1), 1)
    correct, total = int(matrix.trace()), int(matrix.sum())
    return EvaluationMetrics(
        accuracy=correct / total,
        correct=correct,
        per_class_accuracy={name: float(matrix[i, i] / rows[i]) for i, name in enumerate(names)},
        confusion_matrix=matrix.tolist(),
        eval_set=EvalSet(id=eval_set_id, size=total),
    )


def claiming(metrics: EvaluationMetrics, correct: int) -> EvaluationMetrics:
    """The same measure with `correct` right answers claimed: errors moved onto the diagonal (a lie that adds up)."""
    matrix = [list(row) for row in metrics.confusion_matrix]
    trace = sum(matrix[i][i] for i in range(len(matrix)))
    for i, row in enumerate(matrix):
        for j in range(len(row)):
            while i != j and row[j] and trace < correct:
                row[j] -= 1
                row[i] += 1
                trace += 1
    return metrics_from(matrix, list(metrics.per_class_accuracy), metrics.eval_set.id)


def release_assets(folder: Path) -> dict[str, bytes]:
    """A written release's files as a release's assets: model.tflite, model.json, SHA256SUMS."""
    return {name: (folder / name).read_bytes() for name in (TFLITE_NAME, MANIFEST_NAME, SUMS_NAME)}


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
    write_manifest(folder, manifest)
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
