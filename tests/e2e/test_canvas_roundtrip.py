"""The drawing page's preprocessing keeps the model's accuracy: held-out digits drawn on a canvas.

Each 28x28 held-out digit is enlarged 10x onto a 280x280 canvas with bilinear interpolation, so
its edges are anti-aliased like a canvas stroke rather than blocky, then run through the page's
own JavaScript (frontend/static/js/preprocess.js, canvasToPixels) in one node process and fed
to the shipped model. The accuracy must stay within 1.5 points of the model on the original
digits. Run with `pytest -s` to see both figures.
"""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from digit_api.preprocess import image_to_pixels
from digit_release.model import LiteRTModel
from digit_testing.releases import held_out
from digit_testing.tooling import require_tool as require

REPO = Path(__file__).resolve().parents[2]
MODEL_DIR = REPO / "api" / "models"
HELPER = REPO / "frontend" / "tests" / "roundtrip.mjs"
CANVAS_SIDE = 280
PIXELS = 28 * 28
MAX_ACCURACY_DROP = 0.015
# The API, given a PNG export of a sample of the same canvases, must find the very same pixels;
# a sample keeps the test fast, and a systematic disagreement would show up on any digit.
CROSS_CHECK_EVERY = 10
NODE_TIMEOUT_SECONDS = 300


def _node() -> str:
    return require("node", "apt-get install nodejs")


def _canvases(digits: np.ndarray) -> np.ndarray:
    """(N, 280, 280) uint8 ink coverage, bilinear so edges are anti-aliased like canvas strokes."""
    size = (CANVAS_SIDE, CANVAS_SIDE)
    return np.stack([np.asarray(Image.fromarray(d).resize(size, Image.BILINEAR)) for d in digits])


def _canvas_png(coverage: np.ndarray) -> bytes:
    """The PNG a browser's canvas.toBlob() gives for black strokes of this coverage."""
    rgba = np.zeros((*coverage.shape, 4), dtype=np.uint8)
    rgba[..., 3] = coverage
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


def _run_page_preprocessing(node: str, canvases: np.ndarray, workdir: Path) -> np.ndarray:
    """(N, 784) pixels from preprocess.js; fails the test if any canvas comes back empty."""
    source = workdir / "canvases.bin"
    target = workdir / "pixels.bin"
    source.write_bytes(np.ascontiguousarray(canvases, dtype=np.uint8).tobytes())
    try:
        result = subprocess.run(
            [node, str(HELPER), str(source), str(target), str(CANVAS_SIDE), str(CANVAS_SIDE)],
            capture_output=True,
            text=True,
            timeout=NODE_TIMEOUT_SECONDS,
            check=False,
        )
    finally:
        # About 160 MB, and pytest keeps the last few tmp_path folders around.
        source.unlink(missing_ok=True)
    assert result.returncode == 0, f"{HELPER.name} exited with {result.returncode}:\n{result.stderr}"
    records = np.fromfile(target, dtype=np.uint8).reshape(len(canvases), 1 + PIXELS)
    empty = np.flatnonzero(records[:, 0] == 0)
    assert empty.size == 0, f"preprocess.js found no ink in held-out digits {empty[:10].tolist()}"
    return records[:, 1:]


def _accuracy(model: LiteRTModel, pixels: np.ndarray, labels: np.ndarray) -> float:
    probabilities = model.predict(pixels.reshape(-1, PIXELS).astype(np.float32))
    return float(np.mean(probabilities.argmax(axis=1) == labels))


def test_canvas_round_trip_keeps_accuracy(tmp_path: Path, record_property) -> None:
    node = _node()
    digits, labels = held_out()
    canvases = _canvases(digits)

    pixels = _run_page_preprocessing(node, canvases, tmp_path)

    sample = range(0, len(canvases), CROSS_CHECK_EVERY)
    for i in sample:
        expected = image_to_pixels(_canvas_png(canvases[i])).astype(np.uint8)
        assert np.array_equal(pixels[i], expected), f"held-out digit {i}: preprocess.js and the API disagree"

    model = LiteRTModel.load(MODEL_DIR)
    direct = _accuracy(model, digits, labels)
    round_trip = _accuracy(model, pixels, labels)
    print(
        f"\nheld-out digits: {len(labels)}; direct accuracy {direct:.4f}; "
        f"canvas round-trip accuracy {round_trip:.4f} ({round_trip - direct:+.4f})"
    )
    record_property("direct_accuracy", direct)
    record_property("round_trip_accuracy", round_trip)
    assert round_trip >= direct - MAX_ACCURACY_DROP, (
        f"canvas round-trip accuracy {round_trip:.4f} is more than {MAX_ACCURACY_DROP} below "
        f"the direct accuracy {direct:.4f}"
    )
