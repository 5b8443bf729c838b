"""Train the digit model and write a verified release folder.

    digit-train                       # params.yaml, bundled data -> build/model
    digit-train --data keras          # the full 70,000-digit MNIST (downloads once)
    digit-train --ship api/models     # and put it in service (make ship)
    digit-train --feedback build/feedback/2026-11/feedback.npz   # with reviewed corrections
    digit-train --fine-tune-from build/model --feedback ...       # continue training a release instead

A fine-tune's base is a release folder with model.keras (build/model after `make train`, which
rebuilds the shipped model bit for bit, or a downloaded release); api/models/ has no model.keras.

Exit codes: 0 a release was written; 1 the run failed (export parity, I/O); 2 bad parameters,
data or fine-tune base, named in the message.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from digit_training.data import DataError
from digit_training.params import (
    DEFAULT_PARAMS,
    FINE_TUNE_EPOCHS,
    FINE_TUNE_LEARNING_RATE,
    FineTune,
    ParamsError,
    TrainParams,
    feedback_sets,
    load_params,
)

logger = logging.getLogger("digit_training")

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="digit-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="YAML parameters (default: %(default)s)")
    parser.add_argument(
        "--data",
        default="bundled",
        help="'bundled' (10,000 digits in the repo), 'keras' (full MNIST, downloads) or a path to a "
        "file in the Keras mnist.npz layout (default: %(default)s)",
    )
    parser.add_argument("--out", type=Path, default=Path("build/model"), help="release folder (default: %(default)s)")
    parser.add_argument("--version", type=positive_int, default=1, help="N of the release tag model-vN (default: 1)")
    parser.add_argument(
        "--report-dir",
        type=Path,
        # build/ by default: `make report-images` copies what the README should show into report-images/
        default=Path(os.environ.get("REPORT_DIR", "build/report-images")),
        help="where the confusion matrix PNG goes (default: $REPORT_DIR or %(default)s)",
    )
    parser.add_argument("--no-report", action="store_true", help="do not write the confusion matrix PNG")
    parser.add_argument("--max-train-samples", type=positive_int, help="train on the first N digits only (smoke runs)")
    parser.add_argument("--ship", type=Path, metavar="MODEL_DIR", help="then copy model.tflite + model.json there")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--feedback",
        type=Path,
        action="append",
        metavar="NPZ",
        help="a reviewed feedback set (digit-feedback export) to train with; repeatable. "
        "Given, it replaces params.yaml's `feedback:` list",
    )
    parser.add_argument(
        "--fine-tune-from",
        type=Path,
        metavar="RELEASE_DIR",
        help="continue training this release (a folder with model.keras and model.json, e.g. build/model "
        "after `make train`) instead of starting from scratch; replaces params.yaml's `fine_tune.base` and "
        f"keeps its epochs and learning rate (default: {FINE_TUNE_EPOCHS} epochs from {FINE_TUNE_LEARNING_RATE:g})",
    )
    return parser.parse_args(argv)


def fine_tune_base(params: TrainParams, params_path: Path, cli: Path | None) -> tuple[TrainParams, Path | None]:
    """The params to run and record, and the base folder: --fine-tune-from, else params' fine_tune.base."""
    if cli is not None:
        schedule = params.fine_tune or FineTune(base=str(cli))
        return params.model_copy(update={"fine_tune": schedule.model_copy(update={"base": str(cli)})}), cli
    if params.fine_tune is not None:
        return params, params_path.parent / params.fine_tune.base
    return params, None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        # Checked before TensorFlow loads, so a typo is reported in a fraction of a second.
        params = load_params(args.params)
    except ParamsError as exc:
        logger.error("%s", exc)
        return EXIT_BAD_INPUT
    params, base = fine_tune_base(params, args.params, args.fine_tune_from)
    # TensorFlow's C++ start-up chatter buries the progress bar; its warnings still show.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from digit_training.export import ExportError  # noqa: PLC0415  (TensorFlow loads here, after --help)
    from digit_training.finetune import FineTuneError  # noqa: PLC0415
    from digit_training.pipeline import RunConfig, run  # noqa: PLC0415

    config = RunConfig(
        params=params,
        data=args.data,
        out_dir=args.out,
        version=args.version,
        report_dir=None if args.no_report else args.report_dir,
        max_train_samples=args.max_train_samples,
        ship_dir=args.ship,
        verbose=0 if args.quiet else "auto",
        feedback=feedback_sets(params, args.params, args.feedback),
        fine_tune_base=base,
    )
    try:
        manifest = run(config)
    except (DataError, FineTuneError) as exc:
        logger.error("%s", exc)
        return EXIT_BAD_INPUT
    except (ExportError, OSError) as exc:
        logger.error("training run failed: %s", exc)
        return EXIT_FAILED
    print(
        f"{manifest.tag}: accuracy {manifest.metrics.accuracy:.2%} on {manifest.metrics.eval_set.size} held-out digits"
    )
    base_ref = manifest.training.fine_tuned_from
    if base_ref:
        print(f"{manifest.tag}: fine-tuned from {base_ref.name} model-v{base_ref.version}")
    feedback = manifest.metrics.feedback
    if feedback and feedback.accuracy is not None:
        print(f"{manifest.tag}: accuracy {feedback.accuracy:.2%} on {feedback.size} held-out feedback digits")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
