"""Fit the model reproducibly: one seed fixes weights, shuffling and augmentation."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from digit_training.model import build_augmenter, build_model
from digit_training.params import TrainParams


def make_reproducible(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make TensorFlow's kernels deterministic."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def train_model(params: TrainParams, x: np.ndarray, y: np.ndarray, verbose: int | str = "auto") -> keras.Model:
    """Train a fresh model on uint8 images `x` (N, 28, 28) with class indices `y`."""
    make_reproducible(params.seed)
    model = build_model(num_classes=len(params.numbers))
    return fit(model, params, x, y, epochs=params.epochs, learning_rate=params.learning_rate, verbose=verbose)


def fine_tune_model(
    params: TrainParams, base: keras.Model, x: np.ndarray, y: np.ndarray, verbose: int | str = "auto"
) -> keras.Model:
    """Continue training `base` (loaded after `make_reproducible(params.seed)`) with params.fine_tune's schedule.

    The same data, augmentation, batch size and shuffling as a run from scratch; a fresh Adam whose
    learning rate falls from fine_tune.learning_rate to 0 over fine_tune.epochs.
    """
    if params.fine_tune is None:
        raise ValueError("fine_tune_model needs params.fine_tune")
    schedule = params.fine_tune
    return fit(base, params, x, y, epochs=schedule.epochs, learning_rate=schedule.learning_rate, verbose=verbose)


def fit(
    model: keras.Model,
    params: TrainParams,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    learning_rate: float,
    verbose: int | str = "auto",
) -> keras.Model:
    """Compile `model` with Adam on a cosine decay from `learning_rate` and fit it for `epochs`."""
    steps = epochs * -(-len(x) // params.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    data = (
        tf.data.Dataset.from_tensor_slices((x[..., None].astype("float32"), y.astype("int32")))
        .shuffle(len(x), seed=params.seed, reshuffle_each_iteration=True)
        .batch(params.batch_size)
    )
    if params.augmentation.enabled:
        augment = build_augmenter(params.augmentation, params.seed)
        data = data.map(lambda images, labels: (augment(images, training=True), labels))
    # shuffle=False: the dataset above already shuffles, with the seed.
    model.fit(data.prefetch(tf.data.AUTOTUNE), epochs=epochs, shuffle=False, verbose=verbose)
    return model
