"""Load MNIST in the Keras `mnist.npz` layout: the bundled 10,000 digits or the full 70,000.

NumPy only (Keras is imported just for the `keras` download), so the API's and the poller's
tests can read the held-out set without TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
BUNDLED_PATH = DATA_DIR / "mnist.npz"
PROVENANCE_PATH = DATA_DIR / "mnist.provenance.json"
KEYS = ("x_train", "y_train", "x_test", "y_test")
KERAS_MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
KERAS_MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"


class DataError(ValueError):
    """A data set that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Dataset:
    id: str
    sha256: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def select(self, numbers: tuple[int, ...]) -> Dataset:
        """Keep only the digits in `numbers` and renumber them as class indices 0..len-1."""
        lookup = np.full(10, -1, dtype=np.int64)
        lookup[list(numbers)] = np.arange(len(numbers))
        train, test = np.isin(self.y_train, numbers), np.isin(self.y_test, numbers)
        return Dataset(
            id=self.id if len(numbers) == 10 else f"{self.id}[{','.join(map(str, numbers))}]",
            sha256=self.sha256,
            x_train=self.x_train[train],
            y_train=lookup[self.y_train[train]].astype(np.uint8),
            x_test=self.x_test[test],
            y_test=lookup[self.y_test[test]].astype(np.uint8),
        )


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_npz(path: Path, dataset_id: str | None = None, expected_sha256: str | None = None) -> Dataset:
    """Read any file in the Keras `mnist.npz` layout and check that it keeps to it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such data file")
    sha256 = file_sha256(path)
    if expected_sha256 and sha256 != expected_sha256:
        raise DataError(f"{path}: sha256 {sha256} differs from the recorded {expected_sha256}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in KEYS if key in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    missing = [key for key in KEYS if key not in arrays]
    if missing:
        raise DataError(f"{path}: missing arrays {missing}; expected the Keras mnist.npz layout {list(KEYS)}")
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or y.dtype != np.uint8:
            raise DataError(f"{path}: {split} arrays must be uint8, got {x.dtype} and {y.dtype}")
        if x.ndim != 3 or x.shape[1:] != (28, 28) or y.shape != (len(x),):
            raise DataError(f"{path}: x_{split} must be (N, 28, 28) with N labels, got {x.shape} and {y.shape}")
        if len(y) and y.max() > 9:
            raise DataError(f"{path}: y_{split} has labels outside 0-9")
    return Dataset(id=dataset_id or path.name, sha256=sha256, **arrays)


def load_bundled() -> Dataset:
    """The committed 10,000 real digits, checked against their recorded provenance."""
    provenance = json.loads(PROVENANCE_PATH.read_text(encoding="utf-8"))
    return read_npz(BUNDLED_PATH, provenance["dataset_id"], expected_sha256=provenance["npz_sha256"])


def load_keras() -> Dataset:
    """The full 70,000-digit MNIST, downloaded once by Keras and cached in ~/.keras/datasets."""
    from keras.utils import get_file  # noqa: PLC0415  (only this source needs Keras and the network)

    # The same file, name and hash as keras.datasets.mnist.load_data(), so the two share a cache.
    path = get_file("mnist.npz", origin=KERAS_MNIST_URL, file_hash=KERAS_MNIST_SHA256)
    return read_npz(Path(path), "keras-mnist-70000")


def load_dataset(source: str) -> Dataset:
    """`bundled`, `keras`, or the path of a file in the Keras mnist.npz layout."""
    if source == "bundled":
        return load_bundled()
    if source == "keras":
        return load_keras()
    return read_npz(Path(source))


def held_out() -> tuple[np.ndarray, np.ndarray]:
    """The 2,000 held-out digits: the fixture of every accuracy check in the project."""
    dataset = load_bundled()
    return dataset.x_test, dataset.y_test
