"""Held-out metrics: accuracy, per-class accuracy and the confusion matrix (also as a PNG).

    python -m digit_training.evaluate [MODEL_DIR]    # recompute a model folder's accuracy with LiteRT

No TensorFlow here: this is the check the API's model and the poller's candidates go through.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from digit_api.inference import LiteRTModel, ModelLoadError
from digit_api.manifest import EvalSet, Metrics
from digit_training.data import load_bundled


def compute_metrics(probabilities: np.ndarray, labels: np.ndarray, names: list[str], eval_set_id: str) -> Metrics:
    """Metrics of predictions `probabilities` (N, C) against class indices `labels` (N,)."""
    predicted = probabilities.argmax(axis=1)
    n = len(names)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    correct = int(confusion.trace())
    return Metrics(
        accuracy=correct / len(labels),
        correct=correct,
        per_class_accuracy={name: float(acc) for name, acc in zip(names, per_class, strict=True)},
        confusion_matrix=confusion.tolist(),
        eval_set=EvalSet(id=eval_set_id, size=len(labels)),
    )


def plot_confusion(metrics: Metrics, names: list[str], title: str, path: Path) -> None:
    """Write the confusion matrix as a PNG (counts in the cells, true class down, prediction across)."""
    import matplotlib  # noqa: PLC0415  (plotting is the only user, keep import cost off the rest)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    confusion = np.asarray(metrics.confusion_matrix)
    fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=100)
    ax.imshow(np.log1p(confusion), cmap="Blues")
    threshold = np.log1p(confusion).max() / 2
    for (row, col), count in np.ndenumerate(confusion):
        if count:
            colour = "white" if np.log1p(count) > threshold else "black"
            ax.text(col, row, str(count), ha="center", va="center", fontsize=8, color=colour)
    ax.set(
        xticks=range(len(names)),
        yticks=range(len(names)),
        xticklabels=names,
        yticklabels=names,
        xlabel="predicted",
        ylabel="true",
        title=f"{title}\naccuracy {metrics.accuracy:.2%} on {metrics.eval_set.size} held-out digits",
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def evaluate_model_dir(model_dir: Path) -> Metrics:
    """Load a model folder as the API does and measure it on the bundled held-out digits."""
    model = LiteRTModel.load(model_dir)
    labels = model.labels
    dataset = load_bundled().select(tuple(int(label) for label in labels))
    probabilities = model.predict(dataset.x_test.reshape(len(dataset.x_test), -1))
    return compute_metrics(probabilities, dataset.y_test, labels, f"{dataset.id}:test")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m digit_training.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", nargs="?", type=Path, default=Path("api/models"), help="default: %(default)s")
    args = parser.parse_args(argv)
    try:
        metrics = evaluate_model_dir(args.model_dir)
    except ModelLoadError as exc:
        print(f"cannot load {args.model_dir}: {exc}", file=sys.stderr)
        return 1
    counts = f"({metrics.correct}/{metrics.eval_set.size})"
    print(f"{args.model_dir}: accuracy {metrics.accuracy:.2%} {counts} on {metrics.eval_set.id}")
    print("per class: " + "  ".join(f"{k}: {v:.1%}" for k, v in metrics.per_class_accuracy.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
