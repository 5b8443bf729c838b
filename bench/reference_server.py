"""The baseline for bench/serve.py: a digit server written the way naive reference projects did it.

It loads the Keras model with TensorFlow in the serving process and calls `model.predict` once per
request. That per-request `predict` (a whole Keras predict loop for one image) is the pattern being
measured, so it is kept on purpose; do not "fix" it.

Run by hand (bench/serve.py does this for you):

    TF_CPP_MIN_LOG_LEVEL=2 KERAS_MODEL=build/model/model.keras \
        .venv/bin/python -m uvicorn --app-dir bench reference_server:app --host 127.0.0.1 --port 8001
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import keras
import numpy as np
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

PIXELS = 28 * 28

_state: dict[str, Any] = {}


class PredictRequest(BaseModel):
    pixels: list[float]


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    path = os.environ.get("KERAS_MODEL")
    if not path:
        raise RuntimeError("set KERAS_MODEL to the path of model.keras")
    model = keras.saving.load_model(path, safe_mode=True)
    # The first predict builds the predict function; doing it here keeps readiness honest
    # (ready means a request is answered at steady-state cost).
    model.predict(np.zeros((1, 28, 28, 1), dtype=np.float32), verbose=0)
    _state["model"] = model
    yield
    _state.clear()


app = FastAPI(title="reference digit server", lifespan=lifespan)


@app.get("/readyz")
def readyz() -> dict[str, str]:
    if "model" not in _state:
        raise HTTPException(status_code=503, detail="model not loaded")
    return {"status": "ready"}


@app.post("/predict")
def predict(body: PredictRequest) -> dict[str, Any]:
    if len(body.pixels) != PIXELS:
        raise HTTPException(status_code=422, detail=f"expected {PIXELS} pixels, got {len(body.pixels)}")
    x = np.asarray(body.pixels, dtype=np.float32).reshape(1, 28, 28, 1)
    probabilities = _state["model"].predict(x, verbose=0)[0]
    prediction = int(np.argmax(probabilities))
    return {
        "prediction": prediction,
        "probability": float(probabilities[prediction]),
        "probabilities": [float(p) for p in probabilities],
    }
