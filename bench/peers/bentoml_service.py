"""The shipped model.tflite as a BentoML service, written as BentoML documents a service.

A `@bentoml.service` class loads the model in `__init__`; one `@bentoml.api` method takes the 784
pixels as a NumPy array (BentoML validates its shape and dtype from the annotation) and answers
like this project's /predict: the label, its probability and the ten probabilities. BentoML
derives the route from the method's name, POST /predict, and the body from its parameters,
`{"pixels": [784 numbers]}`, the same body this project's /predict takes. One worker; the rest is
BentoML's default. It runs in its own environment (bench/peers.py makes it), so it imports
nothing of this project's: only BentoML, LiteRT and NumPy. MODEL_DIR names the model folder.

    MODEL_DIR=api/models bentoml serve bentoml_service:DigitClassifier --port 3000
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import bentoml
import numpy as np
from ai_edge_litert.interpreter import Interpreter
from bentoml.validators import DType, Shape


# BentoML runs a sync API method on one thread at a time by default (`threads: 1`), so the one
# interpreter is never used by two requests at once.
@bentoml.service(workers=1)
class DigitClassifier:
    def __init__(self) -> None:
        model_dir = Path(os.environ.get("MODEL_DIR", "api/models"))
        manifest = json.loads((model_dir / "model.json").read_text(encoding="utf-8"))
        self.labels = [int(manifest["labels"][str(index)]) for index in range(len(manifest["labels"]))]
        self.interpreter = Interpreter(model_path=str(model_dir / "model.tflite"))
        self.interpreter.allocate_tensors()
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        self.output_index = self.interpreter.get_output_details()[0]["index"]

    @bentoml.api
    def predict(self, pixels: Annotated[np.ndarray, Shape((784,)), DType("float32")]) -> dict[str, Any]:
        """The digit in 784 raw 0-255 pixels; the model rescales them itself."""
        self.interpreter.set_tensor(self.input_index, pixels.astype(np.float32).reshape(1, 28, 28, 1))
        self.interpreter.invoke()
        probabilities = self.interpreter.get_tensor(self.output_index)[0]
        best = int(probabilities.argmax())
        return {
            "prediction": self.labels[best],
            "probability": float(probabilities[best]),
            "probabilities": probabilities.tolist(),
        }
