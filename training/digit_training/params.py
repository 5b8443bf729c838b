"""Training parameters: `training/params.yaml`, validated so that a bad value is named, not guessed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_PARAMS = Path(__file__).resolve().parent.parent / "params.yaml"
# A fine-tune's defaults (README, "How many corrections does it take?", says how they were chosen).
FINE_TUNE_EPOCHS = 10
FINE_TUNE_LEARNING_RATE = 3e-4


class ParamsError(ValueError):
    """A params file that cannot be used; the message names the file and the parameter."""


class Augmentation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    rotation_degrees: float = Field(10.0, ge=0, le=45)
    shift_fraction: float = Field(0.1, ge=0, le=0.3, description="of the image size, both axes")
    zoom_fraction: float = Field(0.1, ge=0, le=0.3)


class FineTune(BaseModel):
    """Continue training a released model instead of starting from random weights.

    The run loads the base's model.keras (checked against its manifest, in Keras' safe mode) and
    trains it on the same data as a run from scratch (the data set's training digits plus the
    feedback sets, the same augmentation, batch size and seed) for `epochs` more epochs, with Adam
    from `learning_rate` down to 0 on a cosine. The top-level `epochs` and `learning_rate` are the
    schedule from scratch and are not used then.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    base: str = Field(
        min_length=1,
        description="release folder holding model.keras and model.json (build/model after `make train`, or a "
        "downloaded release), relative to this file; api/models/ has no model.keras",
    )
    epochs: int = Field(FINE_TUNE_EPOCHS, ge=1, le=1000)
    learning_rate: float = Field(FINE_TUNE_LEARNING_RATE, gt=0, le=1)


class TrainParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1, le=4096)
    learning_rate: float = Field(gt=0, le=1)
    seed: int = Field(ge=0)
    numbers: tuple[int, ...] = Field(default=tuple(range(10)), description="the digits the model must know")
    augmentation: Augmentation = Augmentation()
    # Reviewed feedback sets (digit-feedback export) to train with: paths of
    # their feedback.npz, relative to this file's folder. Left out of the manifest when empty.
    feedback: tuple[str, ...] = Field(default=(), exclude_if=lambda sets: not sets)
    # Start from a released model (see FineTune). Left out of the manifest when training from scratch.
    fine_tune: FineTune | None = Field(default=None, exclude_if=lambda value: value is None)

    @field_validator("numbers")
    @classmethod
    def _known_digits(cls, numbers: tuple[int, ...]) -> tuple[int, ...]:
        unknown = [n for n in numbers if not 0 <= n <= 9]
        if unknown:
            raise ValueError(f"unknown digit(s) {unknown}: MNIST has only 0-9")
        if len(set(numbers)) != len(numbers):
            raise ValueError(f"digits listed twice in {list(numbers)}")
        if len(numbers) < 2:
            raise ValueError("a classifier needs at least two digits")
        return tuple(sorted(numbers))


def load_params(path: Path = DEFAULT_PARAMS) -> TrainParams:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of parameter names to values")
    try:
        return TrainParams.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ParamsError(f"{path}: {problems}") from None


def feedback_sets(params: TrainParams, params_path: Path, given: Sequence[Path] | None) -> tuple[Path, ...]:
    """The feedback sets to train with: those given (--feedback), else the params file's `feedback:`
    list, whose paths are relative to that file's folder."""
    if given:
        return tuple(given)
    return tuple(Path(params_path).parent / path for path in params.feedback)
