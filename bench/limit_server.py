"""The limit: how fast a server can answer /predict on this machine, with nothing but the work itself.

A raw ASGI app (no framework, no validation, no metrics, no logging) that parses the body with
orjson, runs the same LiteRT model on the same interpreter settings as the API, and answers with
orjson. Run by uvicorn with uvloop and httptools, one worker, as the API is. What the API spends
beyond this is the price of its contract: validation, error bodies, metrics, request ids.

    MODEL_DIR=api/models uvicorn --app-dir bench limit_server:app --loop uvloop --http httptools

Routes: POST /predict ({"pixels": [...]} or a bare array), POST /v2/models/{name}/infer (JSON
FP32 tensors), POST /predict/batch ({"instances": [...]}) and GET /readyz. Anything malformed is
a 400 with no explanation: the limit server checks nothing it does not have to.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from digit_release.model import LiteRTModel

MODEL = LiteRTModel.load(Path(os.environ.get("MODEL_DIR", "api/models")))
LABELS = [int(label) for label in MODEL.labels]
VERSION = MODEL.version
JSON_HEADERS = [(b"content-type", b"application/json")]


async def read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def answer(probabilities: np.ndarray) -> dict[str, Any]:
    best = int(probabilities.argmax())
    return {
        "prediction": LABELS[best],
        "probability": float(probabilities[best]),
        "probabilities": probabilities.tolist(),
        "model_version": VERSION,
    }


def handle(path: str, body: bytes) -> dict[str, Any]:
    document = orjson.loads(body)
    if path == "/predict":
        pixels = document["pixels"] if isinstance(document, dict) else document
        return answer(MODEL.predict(np.asarray(pixels, dtype=np.float32).reshape(1, 784))[0])
    if path == "/predict/batch":
        rows = MODEL.predict(np.asarray(document["instances"], dtype=np.float32).reshape(-1, 784))
        return {"predictions": [answer(row) for row in rows], "model_version": VERSION}
    tensor = document["inputs"][0]
    rows = MODEL.predict(np.asarray(tensor["data"], dtype=np.float32).reshape(-1, 784))
    return {
        "model_name": "mnist-cnn",
        "model_version": VERSION,
        "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": list(rows.shape), "data": rows.ravel().tolist()}
        ],
    }


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    status, payload = 200, b'{"status":"ready"}'
    if scope["method"] == "POST":
        body = await read_body(receive)
        try:
            payload = orjson.dumps(handle(path, body))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, IndexError):
            status, payload = 400, b"{}"
    await send({"type": "http.response.start", "status": status, "headers": JSON_HEADERS})
    await send({"type": "http.response.body", "body": payload})
