"""Large V2 bodies are parsed off the event loop, one at a time: /healthz is answered meanwhile.

No clock in the assertions (timings are bench/event_loop.py's): the parses are held at a gate,
and /healthz must be answered while all eight are still held. Were a parse on the event loop,
the loop would sit at the gate and /healthz would not be answered until the gate gave way.
"""

from __future__ import annotations

import asyncio
import json
import threading

import httpx
import numpy as np
import pytest

from digit_api.config import Settings
from digit_api.main import create_app
from digit_api.v2_codec import LargeBodyParser
from digit_release.model import LiteRTModel

INFER = "/v2/models/mnist-cnn/infer"


def large_batch(images: np.ndarray) -> np.ndarray:
    """128 held-out digits, as floats."""
    return np.resize(images, (128, 28, 28)).reshape(128, 28, 28, 1).astype(np.float64) * 0.99


def large_body(batch: np.ndarray) -> bytes:
    """The batch as nested [128, 28, 28, 1] lists: about 0.75 MB."""
    tensor = {"name": "pixels", "shape": [128, 28, 28, 1], "datatype": "FP32", "data": batch.tolist()}
    return json.dumps({"inputs": [tensor]}).encode()


@pytest.mark.anyio
async def test_healthz_is_answered_while_eight_large_bodies_are_being_parsed(
    monkeypatch, shipped_model_dir, held_out_digits
) -> None:
    images, _ = held_out_digits
    batch = large_batch(images)
    gate = threading.Event()
    lock = threading.Lock()
    held = {"now": 0, "most": 0, "threads": set()}
    parse = LargeBodyParser.parse_request

    def held_parse(self, *args):
        with lock:
            held["now"] += 1
            held["most"] = max(held["most"], held["now"])
            held["threads"].add(threading.current_thread().name)
        try:
            assert gate.wait(timeout=60), "the test never opened the gate"
            return parse(self, *args)
        finally:
            with lock:
                held["now"] -= 1

    monkeypatch.setattr(LargeBodyParser, "parse_request", held_parse)
    app = create_app(Settings(model_dir=shipped_model_dir, reload_interval=0))
    app.state.store.refresh()  # what the lifespan does (httpx's ASGI transport runs no lifespan)
    body = large_body(batch)
    assert len(body) > 512 * 1024
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://digit", timeout=120) as client:
        posts = [asyncio.create_task(client.post(INFER, content=body)) for _ in range(8)]
        for _ in range(6000):  # until the first body reaches its parse (a bound, not a timing)
            if held["now"]:
                break
            await asyncio.sleep(0.01)
        assert held["now"], "no large body reached the off-loop parse"
        health = await client.get("/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        assert not any(post.done() for post in posts), "every body is still held at its parse"
        gate.set()
        responses = await asyncio.gather(*posts)
    assert [response.status_code for response in responses] == [200] * 8
    expected = LiteRTModel.load(shipped_model_dir).predict(batch.reshape(128, 784).astype(np.float32))
    for response in responses:
        [output] = response.json()["outputs"]
        assert np.array_equal(np.asarray(output["data"]).reshape(128, 10), expected)
    assert held["most"] == 1, "large bodies are parsed one at a time"
    assert threading.main_thread().name not in held["threads"]
