"""Held-out metrics of a model folder: accuracy, per-class accuracy and the confusion matrix.

The one measure that training writes into a manifest, the publisher gates on and the poller
checks a candidate's claim against: the model is loaded as the API loads it (digit_release.model)
and run on every held-out digit (`x_test`, `y_test`) of its classes in a data file given by path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from digit_release.data import read_dataset
from digit_release.manifest import EvalSet, EvaluationMetrics
from digit_release.model import LiteRTModel


def compute_metrics(
    probabilities: np.ndarray, labels: np.ndarray, names: list[str], eval_set_id: str
) -> EvaluationMetrics:
    """Metrics of predictions `probabilities` (N, C) against class indices `labels` (N,)."""
    predicted = probabilities.argmax(axis=1)
    n = len(names)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    correct = int(confusion.trace())
    return EvaluationMetrics(
        accuracy=correct / len(labels),
        correct=correct,
        per_class_accuracy={name: float(acc) for name, acc in zip(names, per_class, strict=True)},
        confusion_matrix=confusion.tolist(),
        eval_set=EvalSet(id=eval_set_id, size=len(labels)),
    )


def evaluate_model_dir(model_dir: Path, data_path: Path) -> EvaluationMetrics:
    """Load a model folder as the API does and measure it on the held-out digits of `data_path`."""
    model = LiteRTModel.load(model_dir)
    labels = model.labels
    dataset = read_dataset(data_path).select(tuple(int(label) for label in labels))
    probabilities = model.predict(dataset.x_test.reshape(len(dataset.x_test), -1))
    return compute_metrics(probabilities, dataset.y_test, labels, f"{dataset.id}:test")
