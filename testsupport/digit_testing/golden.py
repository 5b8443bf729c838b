"""The golden vectors of the pixel contract: inputs and the 784 pixels the MNIST recipe must give.

Both halves of the recipe are checked against tests/golden/preprocess_vectors.json: the API's
(api/digit_api/preprocess.py, the reference, which produces the expected pixels) and the
browser's (frontend/static/js/preprocess.js, node --test). After a deliberate change to the
recipe, regenerate the file with `make golden`:

    python -m digit_testing.golden
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from digit_api.preprocess import INK_THRESHOLD, to_mnist
from digit_release.data import read_dataset

REPO = Path(__file__).resolve().parents[2]
GOLDEN_PATH = REPO / "tests" / "golden" / "preprocess_vectors.json"
BUNDLED_DATA = "training/data/mnist.npz"

GOLDEN_DESCRIPTION = (
    "Golden vectors of the MNIST preprocessing recipe (api/digit_api/preprocess.py, to_mnist). "
    "'input' is height*width integers 0..255, row-major, MNIST polarity (0 = background, 255 = ink); "
    "'expected' is the 784 integers (28x28, row-major) that the recipe must produce, exactly. "
    f"Ink is > {INK_THRESHOLD}; the longer side of the ink box becomes 20 px, the shorter "
    "max(1, floor(20*short/long + 0.5)); area averaging with integer overlap weights, divided once by h*w; "
    "centre of mass (pixel centres at i + 0.5) placed at offset floor(14 - com + 0.5), clamped to the frame; "
    "pixels rounded half to even. Regenerate with `make golden` (digit_testing.golden)."
)


def coverage(height: int, width: int, inside: Any, samples: int = 4) -> np.ndarray:
    """Anti-aliased 0..255 image of a shape given by `inside(y, x)`, by supersampling each pixel."""
    offsets = (np.arange(samples) + 0.5) / samples
    ys = (np.arange(height)[:, None] + offsets[None, :]).reshape(-1)
    xs = (np.arange(width)[:, None] + offsets[None, :]).reshape(-1)
    hits = inside(ys[:, None], xs[None, :]).astype(np.float64)
    fraction = hits.reshape(height, samples, width, samples).mean(axis=(1, 3))
    return np.asarray(np.rint(fraction * 255), dtype=np.int64)


def upscale(digit: np.ndarray, factor: int = 10) -> np.ndarray:
    return np.kron(digit.astype(np.int64), np.ones((factor, factor), dtype=np.int64))


def build_cases() -> list[dict[str, Any]]:
    """The golden inputs (name, 2-D int array), built deterministically from code and held-out digits."""
    cases: list[tuple[str, np.ndarray]] = []

    stroke = np.zeros((48, 40), dtype=np.int64)
    stroke[6:42, 19:21] = 255
    stroke[6:42, 18] = stroke[6:42, 21] = 90  # the anti-aliased rim of a pen stroke
    stroke[5, 19:21] = stroke[42, 19:21] = 90
    cases.append(("vertical_stroke", stroke))

    bar = np.zeros((16, 64), dtype=np.int64)
    bar[5:12, 4:60] = 255  # 56 x 7: the short side is 20 * 7 / 56 = 2.5, which rounds up to 3
    cases.append(("horizontal_bar_tie", bar))

    square = np.zeros((32, 32), dtype=np.int64)
    square[3:15, 10:22] = 255
    cases.append(("filled_square", square))

    blob = coverage(280, 280, lambda y, x: (y - 40.5) ** 2 + (x - 231.3) ** 2 <= 9.0**2)
    cases.append(("off_centre_blob_280", blob))

    letter_l = np.zeros((30, 24), dtype=np.int64)
    letter_l[2:26, 3:7] = 255
    letter_l[22:26, 3:21] = 255
    cases.append(("l_shape", letter_l))

    def near_segment(y: np.ndarray, x: np.ndarray) -> np.ndarray:
        (y0, x0), (y1, x1) = (41.0, 6.0), (6.0, 41.0)
        dy, dx = y1 - y0, x1 - x0
        t = np.clip(((y - y0) * dy + (x - x0) * dx) / (dy * dy + dx * dx), 0, 1)
        return (y - y0 - t * dy) ** 2 + (x - x0 - t * dx) ** 2 <= 1.25**2

    cases.append(("diagonal_antialiased_line", coverage(48, 48, near_segment)))

    single = np.zeros((4, 5), dtype=np.int64)
    single[1, 3] = 200
    cases.append(("single_pixel", single))

    tee = np.zeros((20, 20), dtype=np.int64)
    tee[1:5, 1:19] = 255  # a heavy top pulls the centre of mass up: the placement is clamped
    tee[5:19, 9:11] = 255
    cases.append(("top_heavy_clamped", tee))

    ties = np.zeros((20, 40), dtype=np.int64)
    ties[:10, 0::2], ties[:10, 1::2] = 235, 18  # pairs average to 126.5: half to even gives 126
    ties[10:, 0::2], ties[10:, 1::2] = 237, 18  # 127.5 gives 128
    cases.append(("half_way_ties", ties))

    data = read_dataset(REPO / BUNDLED_DATA)
    images, labels = data.x_test, data.y_test
    first_one = int(np.flatnonzero(labels == 1)[0])
    for index in (0, first_one):
        cases.append((f"mnist_held_out_{index}_label_{int(labels[index])}_x10", upscale(images[index])))

    return [
        {"name": name, "width": int(image.shape[1]), "height": int(image.shape[0]), "input": image}
        for name, image in cases
    ]


def build_document() -> dict[str, Any]:
    cases = []
    for case in build_cases():
        image = case["input"]
        cases.append(
            {
                "name": case["name"],
                "width": case["width"],
                "height": case["height"],
                "input": [int(v) for v in image.reshape(-1)],
                "expected": [int(v) for v in to_mnist(image).reshape(-1)],
            }
        )
    return {"description": GOLDEN_DESCRIPTION, "cases": cases}


def write(path: Path = GOLDEN_PATH) -> None:
    """Write the golden file, one case per line so that a change shows up as a readable diff."""
    document = build_document()
    lines = ["{", f' "description": {json.dumps(document["description"])},', ' "cases": [']
    rows = [json.dumps(case, separators=(",", ":")) for case in document["cases"]]
    lines.append(",\n".join(f"  {row}" for row in rows))
    lines += [" ]", "}"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> int:
    write()
    print(f"wrote {GOLDEN_PATH.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
