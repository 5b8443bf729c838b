"""Data sets in the Keras `mnist.npz` layout: uint8 arrays x_train, y_train, x_test, y_test.

NumPy only. The bundled set (training/data/mnist.npz) and the full 70,000 digits Keras downloads
share the layout; so do the feedback sets people's corrections are exported as. A provenance
file beside a data file (`mnist.provenance.json` beside `mnist.npz`) names the set and fixes its
sha256, which is then checked on every read.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digit_release.manifest import sha256_file

KEYS = ("x_train", "y_train", "x_test", "y_test")


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


def provenance_path(path: Path) -> Path:
    """Where a data file's provenance lives: `<stem>.provenance.json` beside it."""
    path = Path(path)
    return path.with_name(f"{path.stem}.provenance.json")


def read_npz(path: Path, dataset_id: str | None = None, expected_sha256: str | None = None) -> Dataset:
    """Read any file in the Keras `mnist.npz` layout and check that it keeps to it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such data file")
    sha256 = sha256_file(path)
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


def read_dataset(path: Path) -> Dataset:
    """A data file, named and checked by its provenance file when one lies beside it."""
    record = provenance_path(path)
    if not record.is_file():
        return read_npz(path)
    try:
        provenance = json.loads(record.read_text(encoding="utf-8"))
        dataset_id, expected = str(provenance["dataset_id"]), str(provenance["npz_sha256"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{record}: not a readable provenance record ({exc})") from None
    return read_npz(path, dataset_id, expected_sha256=expected)
