"""Held-out metrics: accuracy, per-class accuracy and the confusion matrix (also as a PNG).

    digit-evaluate [MODEL_DIR]    # recompute a model folder's accuracy with LiteRT

No TensorFlow here: this is the check the API's model and the poller's candidates go through.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from digit_release import evaluate
from digit_release.evaluate import compute_metrics
from digit_release.manifest import SERVED_PATH, EvaluationMetrics
from digit_release.model import ModelLoadError
from digit_training.data import BUNDLED_PATH

__all__ = ["compute_metrics", "evaluate_model_dir", "main", "plot_confusion"]


def plot_confusion(metrics: EvaluationMetrics, names: list[str], title: str, path: Path) -> None:
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


def evaluate_model_dir(model_dir: Path, data_path: Path = BUNDLED_PATH) -> EvaluationMetrics:
    """The release format's held-out measure, on the bundled digits unless told otherwise."""
    return evaluate.evaluate_model_dir(model_dir, data_path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="digit-evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", nargs="?", type=Path, default=Path(SERVED_PATH), help="default: %(default)s")
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
