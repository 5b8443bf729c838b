"""A smoke run of the real pipeline (small subset, one epoch) and what its release folder holds."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from digit_release.manifest import KERAS_NAME, MANIFEST_NAME, SUMS_NAME, TFLITE_NAME, verify_model_dir
from digit_release.model import LiteRTModel
from digit_training.__main__ import EXIT_BAD_INPUT, EXIT_OK, main
from digit_training.data import held_out

SMOKE_PARAMS = "epochs: 1\nbatch_size: 64\nlearning_rate: 0.002\nseed: 7\n"
SMOKE_SAMPLES = "600"

pytestmark = pytest.mark.slow


def smoke_run(tmp: Path, name: str, extra: tuple[str, ...] = ()) -> Path:
    params = tmp / "params.yaml"
    params.write_text(SMOKE_PARAMS)
    out = tmp / name
    argv = ["--params", str(params), "--out", str(out), "--report-dir", str(tmp / f"{name}-report")]
    assert main([*argv, "--max-train-samples", SMOKE_SAMPLES, "--quiet", *extra]) == EXIT_OK
    return out


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return smoke_run(tmp_path_factory.mktemp("smoke"), "release", ("--version", "4"))


def test_release_folder_is_complete_and_verifies(release: Path) -> None:
    assert sorted(p.name for p in release.iterdir()) == sorted([KERAS_NAME, MANIFEST_NAME, SUMS_NAME, TFLITE_NAME])
    manifest = verify_model_dir(release, required=(TFLITE_NAME, KERAS_NAME))
    assert manifest.tag == "model-v4"
    assert manifest.training.params["epochs"] == 1
    assert manifest.training.dataset.train_size == int(SMOKE_SAMPLES)
    assert manifest.metrics.eval_set.size == 2000
    assert sum(map(sum, manifest.metrics.confusion_matrix)) == 2000
    checked = subprocess.run(["sha256sum", "-c", SUMS_NAME], cwd=release, capture_output=True, text=True, check=False)
    assert checked.returncode == 0 and checked.stdout.count(": OK") == 3, checked.stdout


def test_confusion_matrix_png_is_written(release: Path) -> None:
    png = release.parent / "release-report" / "confusion_matrix.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000


def test_litert_export_matches_the_saved_keras_model(release: Path) -> None:
    """On every held-out digit: the same class, and probabilities within 1e-4."""
    import keras

    images, _ = held_out()
    x = images[..., None].astype(np.float32)
    keras_model = keras.saving.load_model(release / KERAS_NAME, safe_mode=True)
    expected = keras_model.predict(x, batch_size=500, verbose=0)
    actual = LiteRTModel.load(release).predict(x)
    assert (expected.argmax(axis=1) == actual.argmax(axis=1)).all()
    np.testing.assert_allclose(actual, expected, atol=1e-4, rtol=0)


def test_manifest_metrics_are_the_litert_accuracy(release: Path) -> None:
    images, labels = held_out()
    model = LiteRTModel.load(release)
    correct = int((model.predict(images.reshape(-1, 784)).argmax(axis=1) == labels).sum())
    assert correct == model.manifest.metrics.correct


def test_same_seed_gives_the_same_model(release: Path, tmp_path: Path) -> None:
    again = smoke_run(tmp_path, "again")
    first = json.loads((release / MANIFEST_NAME).read_text())
    second = json.loads((again / MANIFEST_NAME).read_text())
    assert first["metrics"] == second["metrics"]
    images, _ = held_out()
    np.testing.assert_array_equal(
        LiteRTModel.load(release).predict(images[:200]), LiteRTModel.load(again).predict(images[:200])
    )


def test_subset_of_digits_gives_a_model_with_those_labels(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(SMOKE_PARAMS + "numbers: [0, 1, 7]\n")
    out = tmp_path / "three"
    assert (
        main(["--params", str(params), "--out", str(out), "--no-report", "--max-train-samples", "300", "--quiet"]) == 0
    )
    model = LiteRTModel.load(out)
    assert model.labels == ["0", "1", "7"]
    assert model.predict(np.zeros((1, 784))).shape == (1, 3)
    assert model.manifest.metrics.eval_set.size == int(np.isin(held_out()[1], (0, 1, 7)).sum())


def test_missing_data_file_exits_non_zero_and_writes_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "out"
    assert main(["--data", str(tmp_path / "missing.npz"), "--out", str(out), "--no-report"]) == EXIT_BAD_INPUT
    assert "missing.npz: no such data file" in caplog.text
    assert not out.exists()
