"""Export a trained Keras model to the release format and prove the LiteRT copy agrees with it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

# The LiteRT model must be the Keras model: same class on every held-out digit, and
# probabilities within this bound (float32 kernels differ only in summation order).
PARITY_TOLERANCE = 1e-4


class ExportError(RuntimeError):
    """The exported model does not behave like the trained one."""


@dataclass(frozen=True)
class Parity:
    digits: int
    class_disagreements: int
    max_abs_diff: float

    @property
    def ok(self) -> bool:
        return self.class_disagreements == 0 and self.max_abs_diff <= PARITY_TOLERANCE

    def __str__(self) -> str:
        return (
            f"{self.digits - self.class_disagreements}/{self.digits} same class, "
            f"max |p_keras - p_litert| = {self.max_abs_diff:.2e} (bound {PARITY_TOLERANCE:g})"
        )


def to_tflite(model: keras.Model, path: Path) -> None:
    """Write a float32 LiteRT flatbuffer taking raw 0-255 pixels, with a dynamic batch dimension."""
    # Keras' own exporter: no quantisation, so the served model gives the evaluated probabilities.
    model.export(str(path), format="litert", verbose=False)


def check_parity(keras_probabilities: np.ndarray, litert_probabilities: np.ndarray) -> Parity:
    return Parity(
        digits=len(keras_probabilities),
        class_disagreements=int((keras_probabilities.argmax(axis=1) != litert_probabilities.argmax(axis=1)).sum()),
        max_abs_diff=float(np.abs(keras_probabilities - litert_probabilities).max()),
    )
