"""Load a verified model folder and run it with LiteRT.

Loading and predicting are kept apart from HTTP (KServe's split): `LiteRTModel.load` verifies
the bytes it loads against the manifest and checks the tensor shapes, so an instance that
exists is one that is safe to serve; `predict` takes raw 0-255 pixels and returns
probabilities.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from digit_release.manifest import TFLITE_NAME, ManifestError, ModelManifest, read_checked, read_manifest


class ModelLoadError(RuntimeError):
    """The folder does not hold a model this service can serve; the message says why."""


class _Interpreter:
    """One interpreter and the batch size its tensors are allocated for."""

    def __init__(self, interpreter: Interpreter) -> None:
        self.interpreter = interpreter
        self.input = interpreter.get_input_details()[0]["index"]
        self.output = interpreter.get_output_details()[0]["index"]
        self.batch = int(interpreter.get_input_details()[0]["shape"][0])

    def run(self, x: np.ndarray) -> np.ndarray:
        if len(x) != self.batch:
            self.interpreter.resize_tensor_input(self.input, list(x.shape))
            self.interpreter.allocate_tensors()
            self.batch = len(x)
        self.interpreter.set_tensor(self.input, x)
        self.interpreter.invoke()
        return np.array(self.interpreter.get_tensor(self.output), copy=True)


class LiteRTModel:
    """One verified model, callable from any thread.

    An interpreter holds one set of tensors, so each thread gets its own (made from the same
    verified bytes on first use): no lock, so the event loop never waits behind a batch that a
    pool thread is running.
    """

    # Large inputs are run in chunks so that one batch never allocates unbounded tensors.
    max_chunk = 256

    def __init__(
        self, manifest: ModelManifest, content: bytes, interpreter: Interpreter, num_threads: int | None
    ) -> None:
        self.manifest = manifest
        self.labels = manifest.label_list()
        self._content = content
        self._num_threads = num_threads
        self._local = threading.local()
        self._local.interpreter = _Interpreter(interpreter)

    @property
    def version(self) -> str:
        return self.manifest.version

    @classmethod
    def load(cls, model_dir: Path, num_threads: int | None = None) -> LiteRTModel:
        """Verify `model_dir` against its manifest and load it; raise ModelLoadError if unfit."""
        model_dir = Path(model_dir)
        try:
            manifest = read_manifest(model_dir)
            # The interpreter gets the very bytes that were hashed.
            content = read_checked(model_dir, manifest, TFLITE_NAME)
        except ManifestError as exc:
            raise ModelLoadError(str(exc)) from None
        try:
            interpreter = Interpreter(model_content=content, num_threads=num_threads)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"{model_dir / TFLITE_NAME}: LiteRT cannot load it: {exc}") from None
        cls._check_signature(interpreter, manifest)
        return cls(manifest, content, interpreter, num_threads)

    @staticmethod
    def _check_signature(interpreter: Interpreter, manifest: ModelManifest) -> None:
        inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelLoadError(f"expected one input and one output, got {len(inputs)} and {len(outputs)}")
        in_shape = tuple(int(d) for d in inputs[0]["shape"][1:])
        out_shape = tuple(int(d) for d in outputs[0]["shape"][1:])
        if in_shape != tuple(manifest.input.shape) or inputs[0]["dtype"] != np.float32:
            raise ModelLoadError(
                f"model input is {inputs[0]['dtype'].__name__}{list(in_shape)}, "
                f"manifest says float32{list(manifest.input.shape)}"
            )
        if out_shape != tuple(manifest.output.shape) or outputs[0]["dtype"] != np.float32:
            raise ModelLoadError(
                f"model output is {outputs[0]['dtype'].__name__}{list(out_shape)}, "
                f"manifest says float32{list(manifest.output.shape)}"
            )

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        """Probabilities (N, classes) for raw 0-255 pixels shaped (N, 784) or (N, 28, 28, 1)."""
        x = np.asarray(pixels, dtype=np.float32).reshape(-1, *self.manifest.input.shape)
        if len(x) == 0:
            return np.zeros((0, *self.manifest.output.shape), dtype=np.float32)
        if len(x) <= self.max_chunk:
            return self._invoke(x)
        return np.concatenate([self._invoke(x[i : i + self.max_chunk]) for i in range(0, len(x), self.max_chunk)])

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        local: _Interpreter | None = getattr(self._local, "interpreter", None)
        if local is None:
            interpreter = Interpreter(model_content=self._content, num_threads=self._num_threads)
            interpreter.allocate_tensors()
            local = self._local.interpreter = _Interpreter(interpreter)
        return local.run(x)
