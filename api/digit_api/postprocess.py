"""From probabilities to the answer a client reads."""

from __future__ import annotations

import numpy as np

from digit_api.metrics import Metrics
from digit_release.model import LiteRTModel


def digits(model: LiteRTModel, probabilities: np.ndarray, metrics: Metrics) -> list[dict]:
    """One `Digit` (as a dict: the response model validates it once, on the way out) per row."""
    labels = model.labels
    best = probabilities.argmax(axis=1).tolist()
    answers = [
        {"prediction": int(labels[i]), "probability": float(row[i]), "probabilities": row.tolist()}
        for i, row in zip(best, probabilities, strict=True)
    ]
    metrics.observe_predictions([labels[i] for i in best], [a["probability"] for a in answers])
    return answers
