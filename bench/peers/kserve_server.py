"""The shipped model.tflite behind KServe's Python model server, written as KServe documents a custom model.

A `kserve.Model` subclass loads the model in `load()` and answers in `predict()`; KServe's
`ModelServer` routes both of its protocols to it: V1 (`{"instances": [[784 pixels]]}` at
/v1/models/NAME:predict, answered `{"predictions": [[10 probabilities]]}`) and V2 (the Open
Inference Protocol at /v2/models/NAME/infer, where `predict` gets an `InferRequest` and returns an
`InferResponse`). Everything else (one uvicorn worker, gRPC, access and latency logs) is KServe's
default. It runs in its own environment (bench/peers.py makes it), so it imports nothing of this
project's: only KServe, LiteRT and NumPy.

    python kserve_server.py --model_dir api/models --http_port 8080 --grpc_port 8081
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer, model_server
from kserve.utils.utils import generate_uuid


class DigitModel(Model):
    def __init__(self, name: str, model_dir: Path) -> None:
        super().__init__(name)
        self.model_dir = model_dir
        self.ready = False

    def load(self) -> bool:
        manifest = json.loads((self.model_dir / "model.json").read_text(encoding="utf-8"))
        self.output_name = manifest["output"]["name"]
        self.interpreter = Interpreter(model_path=str(self.model_dir / "model.tflite"))
        self.interpreter.allocate_tensors()
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        self.output_index = self.interpreter.get_output_details()[0]["index"]
        self.batch = 1
        self.ready = True
        return self.ready

    def run(self, pixels: np.ndarray) -> np.ndarray:
        """Probabilities (N, 10) for raw 0-255 pixels; the model rescales them itself."""
        x = np.asarray(pixels, dtype=np.float32).reshape(-1, 28, 28, 1)
        if len(x) != self.batch:
            self.interpreter.resize_tensor_input(self.input_index, list(x.shape))
            self.interpreter.allocate_tensors()
            self.batch = len(x)
        self.interpreter.set_tensor(self.input_index, x)
        self.interpreter.invoke()
        return np.array(self.interpreter.get_tensor(self.output_index), copy=True)

    def predict(
        self,
        payload: dict | InferRequest,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict | InferResponse:
        if isinstance(payload, InferRequest):
            probabilities = self.run(payload.inputs[0].as_numpy())
            output = InferOutput(
                name=self.output_name, shape=list(probabilities.shape), datatype="FP32", data=probabilities
            )
            return InferResponse(response_id=generate_uuid(), model_name=self.name, infer_outputs=[output])
        return {"predictions": self.run(payload["instances"]).tolist()}


# KServe's documented pattern: the server's own options (ports, workers, --model_name) plus ours.
parser = argparse.ArgumentParser(parents=[model_server.parser])
parser.add_argument("--model_dir", type=Path, required=True, help="a folder holding model.tflite and model.json")

if __name__ == "__main__":
    args, _ = parser.parse_known_args()
    model = DigitModel(args.model_name, args.model_dir)
    model.load()
    ModelServer().start([model])
