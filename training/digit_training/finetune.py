"""The base of a fine-tune: a release folder's model.keras, verified, then loaded in Keras' safe mode.

A fine-tune continues training the model in service instead of starting from random weights, so
the new model keeps what the old one knew (continual learning, with the training digits replayed
beside people's corrections). Its base must be a release folder: `make train` rebuilds the shipped
model bit for bit into build/model, and every published release carries model.keras. The API's
folder (api/models/) holds only model.tflite and model.json, which cannot be trained further.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import keras

from digit_release.manifest import (
    KERAS_NAME,
    MANIFEST_NAME,
    SERVED_PATH,
    TFLITE_NAME,
    FineTunedFrom,
    InputSpec,
    ManifestError,
    read_verified_file,
)
from digit_training.model import INPUT_SHAPE

logger = logging.getLogger(__name__)

WHERE_BASES_ARE = (
    "a fine-tune starts from a release folder holding model.keras and model.json: build/model after "
    f"`make train` (which rebuilds the shipped model bit for bit), or a downloaded model-vN release; "
    f"{SERVED_PATH}/ holds only {TFLITE_NAME} and {MANIFEST_NAME}"
)


class FineTuneError(ValueError):
    """A base that cannot be fine-tuned from; the message names the folder and the problem."""


@dataclass(frozen=True)
class Base:
    model: keras.Model
    ref: FineTunedFrom  # what the new manifest records
    tag: str


def load_base(folder: Path, labels: list[str]) -> Base:
    """Verify the release folder `folder`, check its interface against `labels`, load its model.keras.

    The bytes Keras loads are the bytes hashed against the manifest (read once, written to a
    private file). Keras loads them in safe mode, so a model.keras that would run arbitrary code
    (a Lambda layer's pickled function) is refused, not executed. Raises FineTuneError.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FineTuneError(f"fine_tune.base {folder}: no such folder; {WHERE_BASES_ARE}")
    if not (folder / KERAS_NAME).is_file():
        raise FineTuneError(f"fine_tune.base {folder}: no {KERAS_NAME}; {WHERE_BASES_ARE}")
    try:
        manifest, content = read_verified_file(folder, KERAS_NAME)
    except ManifestError as exc:
        raise FineTuneError(f"fine_tune.base {folder}: refused: {exc}") from None

    if manifest.label_list() != labels:
        raise FineTuneError(
            f"fine_tune.base {folder}: its labels {manifest.label_list()} are not the digits being trained "
            f"{labels} (params: numbers); a fine-tune keeps the model's interface"
        )
    if manifest.input.model_dump(exclude={"description"}) != InputSpec().model_dump(exclude={"description"}):
        raise FineTuneError(
            f"fine_tune.base {folder}: its input {manifest.input.model_dump(exclude={'description'})} is not "
            f"this pipeline's {InputSpec().model_dump(exclude={'description'})}"
        )

    with tempfile.TemporaryDirectory(prefix="digit-base-") as scratch:
        path = Path(scratch) / KERAS_NAME
        path.write_bytes(content)
        try:
            # compile=False: the run compiles it with its own optimizer and schedule.
            model = keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as exc:  # Keras raises many kinds (ValueError, TypeError, KeyError, zip errors)
            raise FineTuneError(
                f"fine_tune.base {folder / KERAS_NAME}: Keras refuses to load it in safe mode: {exc}"
            ) from None
    if not isinstance(model, keras.Model):
        raise FineTuneError(f"fine_tune.base {folder / KERAS_NAME}: not a Keras model")
    input_shape, output_shape = tuple(model.input_shape), tuple(model.output_shape)
    if input_shape != (None, *INPUT_SHAPE) or output_shape != (None, len(labels)):
        raise FineTuneError(
            f"fine_tune.base {folder / KERAS_NAME}: the Keras model takes {input_shape} and gives {output_shape}, "
            f"the manifest says {(None, *INPUT_SHAPE)} and {(None, len(labels))}"
        )
    ref = FineTunedFrom(name=manifest.name, version=manifest.version, keras_sha256=manifest.files[KERAS_NAME].sha256)
    logger.info("fine-tuning %s %s from %s (model.keras sha256 %s)", ref.name, manifest.tag, folder, ref.keras_sha256)
    return Base(model=model, ref=ref, tag=manifest.tag)
