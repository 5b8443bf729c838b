"""How many corrections does it take to teach the model a style it misreads?

    .venv/bin/python bench/feedback_style.py                  # N = 5, 10, 20, 40; about 10 minutes
    .venv/bin/python bench/feedback_style.py --counts 10 --held-out 60

The style: a one with a long flag, drawn as pen strokes through the page in Debian's Chromium
(each drawing the same shape with its own small rotation, scale, shift and tremor). The shipped
model reads it as a 7. The script

1. starts the API (shipped model, a scratch SQLite feedback store) and opens the page;
2. draws max(N) such ones, waits for each answer and presses the key `1`: a verdict per drawing,
   sent by the page itself;
3. draws --held-out more, with other random draws, and sends nothing for them: the pixels the page
   made for each (its last /api/predict request) are the style's held-out set;
4. for each N exports the first N verdicts (python -m digit_training.feedback export's code, no
   hold-out share: the style's own held-out drawings measure instead), trains with the committed
   training/params.yaml plus that set, and measures the new model with LiteRT on the style's
   held-out drawings and on the 2,000 bundled held-out digits (the release gate).

Prints a table and writes it with the raw numbers to --out (results.json, results.md). Slow, so not
part of `make test`; no wall-time figure is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
from playwright.sync_api import expect, sync_playwright

from digit_release.manifest import read_manifest
from digit_release.model import LiteRTModel
from digit_training.__main__ import main as train
from digit_training.feedback import export, read_verdicts

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
LABEL = 1
# A one with a long flag: the up-stroke starts far to the left, then the stem goes straight down.
STYLE = [[(70.0, 95.0), (150.0, 45.0), (150.0, 240.0)]]


def variant(rng: np.random.Generator) -> list[list[tuple[float, float]]]:
    """The style with this drawing's own rotation (+-8 deg), scale (0.85-1.1), shift (+-15 px) and tremor."""
    angle, scale = math.radians(rng.uniform(-8, 8)), rng.uniform(0.85, 1.1)
    dx, dy = rng.uniform(-15, 15, 2)
    strokes = []
    for stroke in STYLE:
        points = []
        for x, y in stroke:
            x0, y0 = x - 140, y - 140
            points.append(
                (
                    scale * (x0 * math.cos(angle) - y0 * math.sin(angle)) + 140 + dx + rng.normal(0, 3),
                    scale * (x0 * math.sin(angle) + y0 * math.cos(angle)) + 140 + dy + rng.normal(0, 3),
                )
            )
        strokes.append(points)
    return strokes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_api(out: Path, database_url: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "PORT": str(port), "DATABASE_URL": database_url, "MODEL_DIR": str(REPO / "api" / "models")}
    log = open(out / "api.log", "wb")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen([sys.executable, "-m", "digit_api"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.terminate()
    raise SystemExit(f"the API did not start; see {out / 'api.log'}")


def draw_through_the_page(url: str, corrections: int, held_out: int) -> tuple[list[int], np.ndarray]:
    """Draw the corrections (answered with the key 1) and the held-out drawings (no verdict).

    Returns the model's answers to the corrected drawings and the held-out drawings' 784 pixels.
    """
    answers: list[int] = []
    pixels: list[list[int]] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 900, "height": 720})
        page.goto(url + "/")
        expect(page.locator("#model-version")).not_to_have_text("…")
        box = page.locator("#canvas").bounding_box()
        scale = box["width"] / 280
        last_predict: list = []
        page.on("request", lambda r: last_predict.append(r) if r.url.endswith("/api/predict") else None)

        def draw(strokes) -> None:
            page.keyboard.press("Escape")
            for stroke in strokes:
                page.mouse.move(box["x"] + stroke[0][0] * scale, box["y"] + stroke[0][1] * scale)
                page.mouse.down()
                for x, y in stroke[1:]:
                    page.mouse.move(box["x"] + x * scale, box["y"] + y * scale, steps=4)
                page.mouse.up()
            expect(page.locator("#confirm")).to_be_enabled(timeout=5000)
            page.wait_for_timeout(200)  # the answer to the lifted pen is the one on screen

        rng = np.random.default_rng(2026)
        for _ in range(corrections):
            draw(variant(rng))
            answers.append(int(page.locator("#prediction").inner_text()))
            with page.expect_response("**/api/feedback") as response:
                page.keyboard.press(str(LABEL))
            if response.value.status not in (200, 201):
                raise SystemExit(f"the verdict was refused: {response.value.text()}")
        rng = np.random.default_rng(7_000_000)
        for _ in range(held_out):
            draw(variant(rng))
            pixels.append(json.loads(last_predict[-1].post_data)["pixels"])
        browser.close()
    return answers, np.asarray(pixels, dtype=np.float32)


def style_accuracy(model_dir: Path, pixels: np.ndarray) -> float:
    model = LiteRTModel.load(model_dir)
    predicted = [model.labels[i] for i in model.predict(pixels).argmax(axis=1)]
    return sum(p == str(LABEL) for p in predicted) / len(predicted)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="5,10,20,40", help="numbers of corrections N to train with")
    parser.add_argument("--held-out", type=int, default=100, help="held-out drawings of the style")
    parser.add_argument("--params", type=Path, default=REPO / "training" / "params.yaml")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "bench-feedback")
    args = parser.parse_args(argv)
    counts = sorted({int(n) for n in args.counts.split(",")})
    args.out.mkdir(parents=True, exist_ok=True)
    database_url = f"sqlite:///{args.out / 'feedback.sqlite3'}"
    Path(args.out / "feedback.sqlite3").unlink(missing_ok=True)
    since = datetime.now(UTC)
    api, url = start_api(args.out, database_url)
    try:
        answers, held_out = draw_through_the_page(url, max(counts), args.held_out)
    finally:
        api.terminate()
        api.wait(timeout=10)
    shipped = REPO / "api" / "models"
    before = {
        "style_accuracy": style_accuracy(shipped, held_out),
        "bundled_accuracy": read_manifest(shipped).metrics.accuracy,
    }
    misread = sum(a != LABEL for a in answers)
    print(f"drawn through the page: {len(answers)} corrections ({misread} misread), {len(held_out)} held out")
    print(f"before (shipped model): style {before['style_accuracy']:.1%}, bundled {before['bundled_accuracy']:.2%}")

    verdicts = read_verdicts(database_url, since, None)
    rows = []
    for n in counts:
        until = verdicts[n].created_at if n < len(verdicts) else None
        provenance = export(database_url, args.out / f"n{n}", since, until=until, holdout=0.0)
        release = args.out / f"release-n{n}"
        with tempfile.TemporaryDirectory() as report:
            code = train(
                [
                    "--params",
                    str(args.params),
                    "--out",
                    str(release),
                    "--feedback",
                    str(args.out / f"n{n}" / "feedback.npz"),
                    "--report-dir",
                    report,
                    "--quiet",
                ]
            )
        if code != 0:
            raise SystemExit(f"training with {n} corrections failed ({code})")
        manifest = read_manifest(release)
        row = {
            "corrections": provenance["counts"]["total"],
            "misread_when_drawn": sum(a != LABEL for a in answers[:n]),
            "feedback_set": provenance["id"],
            "style_accuracy": style_accuracy(release, held_out),
            "bundled_accuracy": manifest.metrics.accuracy,
        }
        rows.append(row)
        print(
            f"N={row['corrections']}: style {row['style_accuracy']:.1%}, bundled {row['bundled_accuracy']:.2%} "
            f"({manifest.metrics.correct}/{manifest.metrics.eval_set.size})"
        )

    table = [
        "| corrections N | style accuracy (held-out drawings) | bundled held-out accuracy |",
        "|---|---|---|",
        f"| 0 (shipped model) | {before['style_accuracy']:.1%} | {before['bundled_accuracy']:.2%} |",
        *(f"| {r['corrections']} | {r['style_accuracy']:.1%} | {r['bundled_accuracy']:.2%} |" for r in rows),
    ]
    (args.out / "results.md").write_text("\n".join(table) + "\n")
    (args.out / "results.json").write_text(
        json.dumps(
            {"style": "one with a long flag", "held_out": len(held_out), "before": before, "after": rows}, indent=2
        )
        + "\n"
    )
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
