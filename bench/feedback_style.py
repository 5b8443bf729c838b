"""How many corrections does it take to teach the model a style it misreads?

    .venv/bin/python bench/feedback_style.py                  # N = 5, 10, 20, 40; about 2 minutes
    .venv/bin/python bench/feedback_style.py --counts 10 --held-out 60
    .venv/bin/python bench/feedback_style.py --tune 3@1e-4,10@1e-4,3@3e-4,10@3e-4   # choose the schedule

The style: a one with a long flag, drawn as pen strokes through the page in Debian's Chromium
(each drawing the same shape with its own small rotation, scale, shift and tremor). The shipped
model reads it as a 7. The script

1. finds the shipped model's release folder (--base, build/model by default: `make train` rebuilds the
   shipped model bit for bit), or builds it with the pipeline when that folder is missing or is not
   the shipped model (its model.tflite's sha256 against api/models/model.json's);
2. starts the API (shipped model, a scratch SQLite feedback store) and opens the page;
3. draws max(N) such ones, waits for each answer and presses the key `1`: a verdict per drawing,
   sent by the page itself;
4. draws --held-out more, with other random draws, and sends nothing for them: the pixels the page
   made for each (its last /api/predict request) are the style's held-out set;
5. for each N exports the first N verdicts (python -m digit_training.feedback export's code, no
   hold-out share: the style's own held-out drawings measure instead), fine-tunes the shipped
   model on the committed training digits plus that set (`digit-train --fine-tune-from`, the
   committed training/params.yaml and its fine-tune schedule), and measures the new model with
   LiteRT on the style's held-out drawings and on the 2,000 bundled held-out digits (the release
   gate). A control fine-tunes without any correction (N = 0).

--tune chooses the fine-tune schedule without the gate's digits: other drawings (other random
draws), the first 7,000 training digits to fine-tune on and the last 1,000 as the validation split,
each candidate EPOCHS@LEARNING_RATE measured on the style's drawings and on that split. The base
saw those 1,000 digits in its own training, so the split measures what a fine-tune forgets of
what the base learnt, not accuracy on new digits. The bundled held-out accuracy is neither
printed nor recorded in this mode.

Prints a table and writes it with the raw numbers to --out (results.json, results.md). Slow, so not
part of `make test`; no wall-time figure is asserted anywhere.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from playwright.sync_api import expect, sync_playwright

from digit_release.manifest import (
    KERAS_NAME,
    TFLITE_NAME,
    ManifestError,
    ModelManifest,
    read_manifest,
    verify_model_dir,
)
from digit_release.model import LiteRTModel
from digit_testing.processes import running_api
from digit_training.__main__ import main as train
from digit_training.data import load_bundled
from digit_training.feedback import export, read_verdicts

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "api" / "models"
COMMITTED_PARAMS = REPO / "training" / "params.yaml"
# The drawings' random draws: the figure's corrections and held-out set, and --tune's own.
FIGURE_SEEDS, TUNE_SEEDS = (2026, 7_000_000), (2027, 7_000_001)
# --tune: fine-tune on the first 7,000 training digits, validate on the last 1,000.
TUNE_TRAIN = 7000
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


def draw_through_the_page(
    url: str, corrections: int, held_out: int, seeds: tuple[int, int]
) -> tuple[list[int], np.ndarray]:
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

        rng = np.random.default_rng(seeds[0])
        for _ in range(corrections):
            draw(variant(rng))
            answers.append(int(page.locator("#prediction").inner_text()))
            with page.expect_response("**/api/feedback") as response:
                page.keyboard.press(str(LABEL))
            if response.value.status not in (200, 201):
                raise SystemExit(f"the verdict was refused: {response.value.text()}")
        rng = np.random.default_rng(seeds[1])
        for _ in range(held_out):
            draw(variant(rng))
            pixels.append(json.loads(last_predict[-1].post_data)["pixels"])
        browser.close()
    return answers, np.asarray(pixels, dtype=np.float32)


def style_accuracy(model_dir: Path, pixels: np.ndarray) -> float:
    model = LiteRTModel.load(model_dir)
    predicted = [model.labels[i] for i in model.predict(pixels).argmax(axis=1)]
    return sum(p == str(LABEL) for p in predicted) / len(predicted)


def accuracy(model_dir: Path, images: np.ndarray, labels: np.ndarray) -> float:
    predicted = LiteRTModel.load(model_dir).predict(images.reshape(-1, 784)).argmax(axis=1)
    return float((predicted == labels).mean())


def ones_and_sevens(manifest: ModelManifest) -> tuple[int, int]:
    """Bundled held-out digits: ones read as 7, sevens read as 1."""
    matrix = manifest.metrics.confusion_matrix
    return matrix[1][7], matrix[7][1]


def is_shipped(folder: Path) -> bool:
    """A complete release folder (model.keras too) whose model.tflite is the one in service."""
    try:
        manifest = verify_model_dir(folder, required=(TFLITE_NAME, KERAS_NAME))
    except ManifestError:
        return False
    return manifest.files[TFLITE_NAME].sha256 == read_manifest(SHIPPED).files[TFLITE_NAME].sha256


def shipped_release(base: Path, out: Path) -> Path:
    """The shipped model's release folder: `base` if it is one, else built with the pipeline under `out`."""
    built = out / "shipped-release"
    for folder in (base, built):
        if is_shipped(folder):
            print(f"base: {folder} (model.tflite is api/models' own)")
            return folder
    print(f"{base} is not the shipped model's release; building it into {built} (committed params, about 90 s)")
    code = train(["--params", str(COMMITTED_PARAMS), "--out", str(built), "--no-report", "--quiet"])
    if code != 0 or not is_shipped(built):
        raise SystemExit(f"the pipeline did not rebuild the shipped model into {built} (exit {code}): no base")
    return built


def fine_tune_params(args: argparse.Namespace, base: Path, epochs: int | None, rate: float | None) -> Path:
    """The params to fine-tune with: --params plus a fine_tune section naming `base` and the schedule."""
    section = [f"base: {json.dumps(str(base))}"]
    section += [f"epochs: {epochs}"] if epochs is not None else []
    section += [f"learning_rate: {rate}"] if rate is not None else []
    path = args.out / f"params-{epochs or 'default'}@{rate or 'default'}.yaml"
    path.write_text(args.params.read_text() + "\nfine_tune: {" + ", ".join(section) + "}\n")
    return path


def fine_tune(params: Path, release: Path, feedback: Path | None, max_train_samples: int | None = None) -> None:
    argv = ["--params", str(params), "--out", str(release), "--version", "2", "--no-report", "--quiet"]
    argv += ["--feedback", str(feedback)] if feedback else []
    argv += ["--max-train-samples", str(max_train_samples)] if max_train_samples else []
    code = train(argv)
    if code != 0:
        raise SystemExit(f"fine-tuning into {release} failed ({code})")


def export_sets(database_url: str, out: Path, since: datetime, counts: list[int]) -> dict[int, dict]:
    """The first N verdicts of the run, for each N: feedback.npz in out/nN/, and its provenance."""
    verdicts = read_verdicts(database_url, since, None)
    sets = {}
    for n in counts:
        until = verdicts[n].created_at if n < len(verdicts) else None
        sets[n] = export(database_url, out / f"n{n}", since, until=until, holdout=0.0)
    return sets


def figure(args: argparse.Namespace, base: Path, counts: list[int], database_url: str, since: datetime) -> int:
    answers, held_out = drawn(args, counts, FIGURE_SEEDS)
    shipped = read_manifest(SHIPPED)
    before = {
        "style_accuracy": style_accuracy(SHIPPED, held_out),
        "bundled_accuracy": shipped.metrics.accuracy,
        "bundled_correct": shipped.metrics.correct,
        "ones_read_as_7": ones_and_sevens(shipped)[0],
        "sevens_read_as_1": ones_and_sevens(shipped)[1],
    }
    print(f"drawn through the page: {len(answers)} corrections, {len(held_out)} held out")
    print(f"before (shipped model): style {before['style_accuracy']:.1%}, bundled {before['bundled_accuracy']:.2%}")

    params = fine_tune_params(args, base, args.epochs, args.learning_rate)
    sets = export_sets(database_url, args.out, since, counts)
    rows = []
    for n in [0, *counts]:
        release = args.out / f"release-n{n}"
        fine_tune(params, release, args.out / f"n{n}" / "feedback.npz" if n else None)
        manifest = read_manifest(release)
        ones_as_7, sevens_as_1 = ones_and_sevens(manifest)
        row = {
            "corrections": sets[n]["counts"]["total"] if n else 0,
            "misread_when_drawn": sum(a != LABEL for a in answers[:n]),
            "feedback_set": sets[n]["id"] if n else None,
            "style_accuracy": style_accuracy(release, held_out),
            "bundled_accuracy": manifest.metrics.accuracy,
            "bundled_correct": manifest.metrics.correct,
            "ones_read_as_7": ones_as_7,
            "sevens_read_as_1": sevens_as_1,
            "fine_tune": manifest.training.params["fine_tune"],
        }
        rows.append(row)
        print(
            f"N={row['corrections']}: style {row['style_accuracy']:.1%}, bundled {row['bundled_accuracy']:.2%} "
            f"({row['bundled_correct']}/{manifest.metrics.eval_set.size}), 1->7 {ones_as_7}, 7->1 {sevens_as_1}"
        )

    schedule = rows[0]["fine_tune"]
    table = [
        f"Fine-tuned from the shipped model: {schedule['epochs']} epochs, learning rate {schedule['learning_rate']:g} "
        "down to 0, the 8,000 training digits replayed with the corrections.",
        "",
        "| corrections N (misread when drawn) | the style, held-out drawings | bundled held-out digits | "
        "ones read as 7 / sevens read as 1 |",
        "|---|---|---|---|",
        f"| 0: the shipped model | {before['style_accuracy']:.0%} | {before['bundled_accuracy']:.2%} "
        f"({before['bundled_correct']}) | {before['ones_read_as_7']} / {before['sevens_read_as_1']} |",
        *(table_row(r) for r in rows),
    ]
    (args.out / "results.md").write_text("\n".join(table) + "\n")
    (args.out / "results.json").write_text(
        json.dumps(
            {
                "style": "one with a long flag",
                "base": str(base),
                "held_out": len(held_out),
                "before": before,
                "after": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print("\n".join(table))
    return 0


def table_row(row: dict) -> str:
    n = row["corrections"]
    first = f"{n} ({row['misread_when_drawn']})" if n else "0, fine-tuned (control)"
    return (
        f"| {first} | {row['style_accuracy']:.0%} | {row['bundled_accuracy']:.2%} ({row['bundled_correct']}) | "
        f"{row['ones_read_as_7']} / {row['sevens_read_as_1']} |"
    )


def tune(args: argparse.Namespace, base: Path, counts: list[int], database_url: str, since: datetime) -> int:
    """Each candidate schedule on other drawings and on a validation split of the training digits only."""
    candidates = []
    for item in args.tune.split(","):
        epochs, rate = item.split("@")
        candidates.append((int(epochs), float(rate)))
    answers, held_out = drawn(args, counts, TUNE_SEEDS)
    training = load_bundled()
    x_val, y_val = training.x_train[TUNE_TRAIN:], training.y_train[TUNE_TRAIN:]
    base_val = accuracy(base, x_val, y_val)
    base_style = style_accuracy(base, held_out)
    print(f"drawn: {len(answers)} corrections ({sum(a != LABEL for a in answers)} misread), {len(held_out)} held out")
    print(f"base: style {base_style:.1%} on {len(held_out)} tuning drawings, validation split {base_val:.2%}")
    sets = export_sets(database_url, args.out, since, counts)
    # The gate's held-out digits stay out of this: the pipeline's log and summary lines are not shown.
    logging.getLogger("digit_training").setLevel(logging.WARNING)
    rows = []
    for epochs, rate in candidates:
        params = fine_tune_params(args, base, epochs, rate)
        for n in [0, *counts]:
            release = args.out / f"tune-{epochs}@{rate:g}-n{n}"
            with contextlib.redirect_stdout(io.StringIO()):
                fine_tune(params, release, args.out / f"n{n}" / "feedback.npz" if n else None, TUNE_TRAIN)
            row = {
                "epochs": epochs,
                "learning_rate": rate,
                "corrections": sets[n]["counts"]["total"] if n else 0,
                "style_accuracy": style_accuracy(release, held_out),
                "validation_accuracy": accuracy(release, x_val, y_val),
            }
            rows.append(row)
            print(
                f"{epochs} epochs @ {rate:g}, N={row['corrections']}: style {row['style_accuracy']:.1%}, "
                f"validation {row['validation_accuracy']:.2%} (base {base_val:.2%})"
            )
    (args.out / "tune.json").write_text(
        json.dumps({"base_style_accuracy": base_style, "base_validation_accuracy": base_val, "rows": rows}, indent=2)
        + "\n"
    )
    return 0


def drawn(args: argparse.Namespace, counts: list[int], seeds: tuple[int, int]) -> tuple[list[int], np.ndarray]:
    with running_api(REPO / "api" / "models", args.out, {"DATABASE_URL": args.database_url}) as api:
        return draw_through_the_page(api.url, max(counts), args.held_out, seeds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="5,10,20,40", help="numbers of corrections N to train with")
    parser.add_argument("--held-out", type=int, default=100, help="held-out drawings of the style")
    parser.add_argument(
        "--params", type=Path, default=COMMITTED_PARAMS, help="params to fine-tune with (default: %(default)s)"
    )
    parser.add_argument(
        "--base",
        type=Path,
        default=REPO / "build" / "model",
        help="the shipped model's release folder (default: %(default)s; built when missing or not the shipped model)",
    )
    parser.add_argument("--epochs", type=int, help="fine-tune epochs (default: digit-train's)")
    parser.add_argument("--learning-rate", type=float, help="fine-tune learning rate (default: digit-train's)")
    parser.add_argument(
        "--tune",
        metavar="E@LR,...",
        help="compare fine-tune schedules on other drawings and a validation split of the training digits",
    )
    parser.add_argument("--out", type=Path, default=REPO / "build" / "bench-feedback")
    args = parser.parse_args(argv)
    counts = sorted({int(n) for n in args.counts.split(",")})
    args.out.mkdir(parents=True, exist_ok=True)
    base = shipped_release(args.base.resolve(), args.out.resolve())
    args.database_url = f"sqlite:///{args.out / 'feedback.sqlite3'}"
    Path(args.out / "feedback.sqlite3").unlink(missing_ok=True)
    since = datetime.now(UTC)
    if args.tune:
        return tune(args, base, counts, args.database_url, since)
    return figure(args, base, counts, args.database_url, since)


if __name__ == "__main__":
    raise SystemExit(main())
