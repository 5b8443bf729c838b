"""Load MNIST in the Keras `mnist.npz` layout: the bundled 10,000 digits or the full 70,000.

The reader itself is the release format's (digit_release.data), shared with the poller; this
module knows where the bundled set lives and how to fetch the full one (Keras, imported only then).
"""

from __future__ import annotations

import json
from pathlib import Path

from digit_release.data import DataError, Dataset, read_npz

__all__ = ["BUNDLED_PATH", "DataError", "Dataset", "load_bundled", "load_dataset", "read_npz"]

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
BUNDLED_PATH = DATA_DIR / "mnist.npz"
PROVENANCE_PATH = DATA_DIR / "mnist.provenance.json"
KERAS_MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
KERAS_MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"


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
