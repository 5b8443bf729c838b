"""Training parameters: `training/params.yaml`, validated so that a bad value is named, not guessed."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_PARAMS = Path(__file__).resolve().parent.parent / "params.yaml"


class ParamsError(ValueError):
    """A params file that cannot be used; the message names the file and the parameter."""


class Augmentation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    rotation_degrees: float = Field(10.0, ge=0, le=45)
    shift_fraction: float = Field(0.1, ge=0, le=0.3, description="of the image size, both axes")
    zoom_fraction: float = Field(0.1, ge=0, le=0.3)


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
