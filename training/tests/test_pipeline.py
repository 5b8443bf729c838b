"""A smoke run of the real pipeline (small subset, one epoch) and what its release folder holds."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from digit_release.manifest import KERAS_NAME, MANIFEST_NAME, SUMS_NAME, TFLITE_NAME, verify_model_dir
from digit_release.model import LiteRTModel
from digit_testing.releases import held_out
from digit_training.__main__ import EXIT_BAD_INPUT, EXIT_OK, main

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


def test_a_run_with_a_feedback_set_names_it_and_measures_it(tmp_path: Path) -> None:
    """The set trains alongside the data set; its held-out share is measured apart from the gate's digits."""
    from digit_training import feedback
    from digit_training.publish import release_notes

    from .test_feedback import NOV, fill

    url = f"sqlite:///{tmp_path / 'feedback.sqlite3'}"
    fill(url, 40)
    provenance = feedback.export(url, tmp_path / "set", NOV)
    release = smoke_run(tmp_path, "with-feedback", ("--feedback", str(tmp_path / "set" / feedback.NPZ_NAME)))
    manifest = verify_model_dir(release, required=(TFLITE_NAME, KERAS_NAME))
    [used] = manifest.training.feedback
    assert (used.id, used.sha256) == (provenance["id"], provenance["sha256"])
    assert (used.train_size, used.holdout_size) == (provenance["counts"]["train"], provenance["counts"]["holdout"])
    assert manifest.training.dataset.train_size == int(SMOKE_SAMPLES)  # the data set's own digits
    assert manifest.metrics.eval_set.size == 2000  # the gate: the bundled held-out digits, unchanged
    measured = manifest.metrics.feedback
    assert measured.sets == [provenance["id"]] and measured.size == provenance["counts"]["holdout"]
    assert measured.accuracy == measured.correct / measured.size
    notes = release_notes(manifest)
    assert f"| accuracy on held-out feedback | {measured.accuracy:.2%} ({measured.correct}/{measured.size}) |" in notes
    assert f"`{provenance['id']}` (sha256 `{provenance['sha256'][:12]}`" in notes
    assert "| accuracy | " in notes


def test_a_run_without_feedback_writes_the_manifest_as_before(release: Path) -> None:
    """No feedback or fine-tune keys at all: older readers of schema_version 1 take the manifest as they did."""
    raw = json.loads((release / MANIFEST_NAME).read_text())
    assert "feedback" not in raw["metrics"] and "feedback" not in raw["training"]
    assert "feedback" not in raw["training"]["params"]
    assert "fine_tuned_from" not in raw["training"] and "fine_tune" not in raw["training"]["params"]
