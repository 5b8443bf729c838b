"""Train, evaluate, export and verify: one run produces one complete release folder or nothing."""

from __future__ import annotations

import logging
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from digit_release.manifest import (
    KERAS_NAME,
    MODEL_NAME,
    TFLITE_NAME,
    DatasetRef,
    FeedbackMetrics,
    FeedbackSetRef,
    ModelManifest,
    OutputSpec,
    TrainingInfo,
    TrainingRunner,
    file_entry,
    install_model,
    verify_model_dir,
    write_manifest,
)
from digit_release.model import LiteRTModel
from digit_training.data import Dataset, load_dataset
from digit_training.evaluate import compute_metrics, plot_confusion
from digit_training.export import ExportError, check_parity, to_tflite
from digit_training.feedback import load_feedback_set
from digit_training.finetune import Base, FineTuneError, load_base
from digit_training.params import TrainParams
from digit_training.provenance import code_revision
from digit_training.train import fine_tune_model, make_reproducible, train_model

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunConfig:
    params: TrainParams
    data: str
    out_dir: Path
    version: int
    report_dir: Path | None
    max_train_samples: int | None = None
    ship_dir: Path | None = None
    verbose: int | str = "auto"
    # Reviewed feedback sets (feedback.npz files) to train with, besides the data set.
    feedback: tuple[Path, ...] = ()
    # The release folder to fine-tune from (params.fine_tune.base resolved); None trains from scratch.
    fine_tune_base: Path | None = None


def runner() -> TrainingRunner:
    # Azure ML sets AZUREML_RUN_ID inside every job; anywhere else this is a local run.
    job_id = os.environ.get("AZUREML_RUN_ID")
    return TrainingRunner(kind="azureml", job_id=job_id) if job_id else TrainingRunner(kind="local")


def run(config: RunConfig) -> ModelManifest:
    """Run the whole pipeline; return the manifest of the verified release in `config.out_dir`."""
    params = config.params
    labels = [str(n) for n in params.numbers]
    base = fine_tune_base(config)  # checked before the data is read: a wrong base fails at once
    dataset = load_dataset(config.data).select(params.numbers)
    x_train, y_train, feedback_data = training_data(config, dataset)
    logger.info(
        "training on %d digits of %s (%s), evaluating on %d held-out digits",
        len(x_train),
        dataset.id,
        ",".join(labels),
        len(dataset.x_test),
    )
    if base is not None and params.fine_tune is not None:
        logger.info(
            "fine-tuning %s for %d epochs, learning rate %g down to 0",
            base.tag,
            params.fine_tune.epochs,
            params.fine_tune.learning_rate,
        )

    revision = code_revision()  # before training: the code that ran, not what was edited meanwhile
    started = time.monotonic()
    if base is None:
        model = train_model(params, x_train, y_train, verbose=config.verbose)
    else:
        model = fine_tune_model(params, base.model, x_train, y_train, verbose=config.verbose)
    duration = time.monotonic() - started
    x_test = dataset.x_test[..., None].astype(np.float32)
    keras_probabilities = model.predict(x_test, batch_size=500, verbose=0)
    metrics = compute_metrics(keras_probabilities, dataset.y_test, labels, f"{dataset.id}:test")
    logger.info("held-out accuracy %.2f%% (%d/%d)", 100 * metrics.accuracy, metrics.correct, len(x_test))
    if feedback_data:
        metrics = metrics.model_copy(update={"feedback": feedback_metrics(model, feedback_data)})

    config.out_dir.parent.mkdir(parents=True, exist_ok=True)
    # Everything is written into a scratch folder beside the target and moved into place only
    # after it has passed every check, so a failed run never leaves a half-written release.
    staging = Path(tempfile.mkdtemp(prefix=f".{config.out_dir.name}-", dir=config.out_dir.parent))
    try:
        to_tflite(model, staging / TFLITE_NAME)
        model.save(staging / KERAS_NAME)
        files = {name: file_entry(staging / name) for name in (KERAS_NAME, TFLITE_NAME)}
        manifest = ModelManifest(
            name=MODEL_NAME,
            version=str(config.version),
            created_at=datetime.now(UTC),
            labels={str(i): label for i, label in enumerate(labels)},
            output=OutputSpec(shape=(len(labels),)),
            metrics=metrics,
            training=TrainingInfo(
                params=params.model_dump(mode="json"),
                dataset=DatasetRef(
                    id=dataset.id,
                    sha256=dataset.sha256,
                    # The data set's own digits; the feedback sets' are counted below.
                    train_size=len(x_train) - sum(len(d.x_train) for d in feedback_data),
                ),
                code_revision=revision,
                runner=runner(),
                frameworks={
                    "tensorflow": tf.__version__,
                    "keras": keras.__version__,
                    "numpy": np.__version__,
                    "python": platform.python_version(),
                },
                duration_seconds=round(duration, 1),
                feedback=[
                    FeedbackSetRef(id=d.id, sha256=d.sha256, train_size=len(d.x_train), holdout_size=len(d.x_test))
                    for d in feedback_data
                ],
                fine_tuned_from=base.ref if base else None,
            ),
            files=files,
        )
        write_manifest(staging, manifest)

        # Load the release exactly as the API will, and compare it with the Keras model.
        verify_model_dir(staging, required=(TFLITE_NAME, KERAS_NAME))
        parity = check_parity(keras_probabilities, LiteRTModel.load(staging).predict(x_test))
        logger.info("LiteRT parity: %s", parity)
        if not parity.ok:
            raise ExportError(f"the LiteRT export disagrees with the Keras model: {parity}")

        if config.out_dir.exists():
            shutil.rmtree(config.out_dir)
        staging.chmod(0o755)  # mkdtemp makes it private; a release is for everyone to read
        staging.rename(config.out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("wrote release %s (%s) to %s", manifest.tag, manifest.name, config.out_dir)

    if config.report_dir:
        path = config.report_dir / "confusion_matrix.png"
        plot_confusion(metrics, labels, f"{manifest.name} {manifest.tag}", path)
        logger.info("wrote %s", path)
    if config.ship_dir:
        ship(config.out_dir, config.ship_dir)
    return manifest


def fine_tune_base(config: RunConfig) -> Base | None:
    """The verified, loaded base of a fine-tune; None for a run from scratch."""
    if (config.fine_tune_base is None) != (config.params.fine_tune is None):
        raise ValueError("RunConfig.fine_tune_base and params.fine_tune go together")
    if config.fine_tune_base is None:
        return None
    if config.out_dir.resolve() == config.fine_tune_base.resolve():
        raise FineTuneError(
            f"--out {config.out_dir} is the fine-tune's base: the run would replace the release it starts from; "
            "write the new release elsewhere (e.g. --out build/model-ft)"
        )
    # Seeded before loading: the loaded model's dropout layers take their seeds then.
    make_reproducible(config.params.seed)
    return load_base(config.fine_tune_base, [str(n) for n in config.params.numbers])


def training_data(config: RunConfig, dataset: Dataset) -> tuple[np.ndarray, np.ndarray, list[Dataset]]:
    """The data set's training digits (or the first --max-train-samples) and the feedback sets' own."""
    x_train, y_train = dataset.x_train, dataset.y_train
    if config.max_train_samples:
        x_train, y_train = x_train[: config.max_train_samples], y_train[: config.max_train_samples]
    feedback_data = load_feedback(config.feedback, config.params.numbers)
    if feedback_data:
        x_train = np.concatenate([x_train, *(d.x_train for d in feedback_data)])
        y_train = np.concatenate([y_train, *(d.y_train for d in feedback_data)])
    return x_train, y_train, feedback_data


def load_feedback(paths: tuple[Path, ...], numbers: tuple[int, ...]) -> list[Dataset]:
    """The reviewed feedback sets, each kept to the digits the model learns."""
    selected = []
    for path in paths:
        data = load_feedback_set(path).dataset.select(numbers)
        logger.info(
            "feedback set %s (%s): %d digits to train on, %d held out",
            data.id,
            path,
            len(data.x_train),
            len(data.x_test),
        )
        selected.append(data)
    return selected


def feedback_metrics(model: keras.Model, feedback_data: list[Dataset]) -> FeedbackMetrics:
    """Accuracy on the held-out digits of every feedback set together (chosen by id hash at export)."""
    x = np.concatenate([d.x_test for d in feedback_data])
    y = np.concatenate([d.y_test for d in feedback_data])
    correct = 0
    if len(x):
        predicted = model.predict(x[..., None].astype(np.float32), batch_size=500, verbose=0).argmax(axis=1)
        correct = int((predicted == y).sum())
    result = FeedbackMetrics(
        accuracy=correct / len(x) if len(x) else None,
        correct=correct,
        size=len(x),
        sets=[d.id for d in feedback_data],
    )
    logger.info("held-out feedback accuracy: %d/%d", correct, len(x))
    return result


def ship(release_dir: Path, model_dir: Path) -> None:
    """Put the served files of a verified release into the API's model folder."""
    install_model(release_dir, model_dir)
    logger.info("shipped %s to %s", release_dir, model_dir)
