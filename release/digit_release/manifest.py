"""The model release format (docs/release-format.md): names, tags, the `model.json` manifest and its checksums.

One definition shared by everything that writes or reads a model folder: training writes it,
the API verifies it before serving, the poller verifies it before committing. Standard library
and pydantic only, so that the API image stays free of TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

MANIFEST_NAME = "model.json"
SUMS_NAME = "SHA256SUMS"
TFLITE_NAME = "model.tflite"
KERAS_NAME = "model.keras"
SIGNATURE_NAME = "model.json.sig"
# Every file a release may carry; anything else a source lists is ignored, never downloaded.
RELEASE_FILES = (TFLITE_NAME, KERAS_NAME, MANIFEST_NAME, SUMS_NAME, SIGNATURE_NAME)
# The pixel contract (docs/pixel-contract.md): 28x28 grayscale, row-major, 0 = background, 255 = ink.
PIXELS = 28 * 28
# The model's name in manifests and in the Azure ML registry, and the Open Inference Protocol's.
MODEL_NAME = "mnist-cnn"
# Where the repository keeps the model in service (model.tflite and model.json), relative to its root.
SERVED_PATH = "api/models"

# The release tag is `model-v<N>`; the manifest carries N as a string so that the API can
# report it verbatim as `model_version`, and order is always by int(N), never by date.
VERSION_PATTERN = r"^[1-9][0-9]*$"
TAG_PATTERN = re.compile(r"model-v([1-9][0-9]*)")
# Labels are the digits a model tells apart: the API answers them as integers, and the held-out
# evaluation selects the data set's digits by them.
DIGIT_LABELS = frozenset("0123456789")
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class ManifestError(ValueError):
    """A model folder whose manifest is missing, unreadable or does not match its files."""


class _Strict(BaseModel):
    # Unknown keys are rejected so that a typo in a hand-edited manifest is caught, not ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileEntry(_Strict):
    sha256: Sha256
    size: int = Field(ge=0)


class InputSpec(_Strict):
    name: str = "pixels"
    shape: tuple[int, int, int] = (28, 28, 1)
    dtype: Literal["float32"] = "float32"
    range: tuple[float, float] = (0.0, 255.0)
    polarity: Literal["mnist"] = "mnist"
    description: str = (
        "784 pixels, row-major 28x28 grayscale, 0 = background, 255 = full ink; "
        "the model rescales internally, so feed raw 0-255 values"
    )


class OutputSpec(_Strict):
    name: str = "probabilities"
    shape: tuple[int] = Field(description="(number of classes,)")
    dtype: Literal["float32"] = "float32"


class EvalSet(_Strict):
    id: str
    size: int = Field(gt=0)


class FeedbackMetrics(_Strict):
    """Accuracy on the held-out share of the feedback sets the model was trained with."""

    accuracy: float | None = Field(ge=0.0, le=1.0, description="null when no feedback digit was held out")
    correct: int = Field(ge=0)
    size: int = Field(ge=0)
    sets: list[str] = Field(description="ids of the feedback sets whose held-out digits were measured")


def _absent(value: object) -> bool:
    return value is None or value == []


class EvaluationMetrics(_Strict):
    accuracy: float = Field(ge=0.0, le=1.0)
    correct: int = Field(ge=0)
    per_class_accuracy: dict[str, Annotated[float, Field(ge=0.0, le=1.0)]]
    confusion_matrix: list[list[Annotated[int, Field(ge=0)]]] = Field(
        description="rows: true class, columns: predicted"
    )
    eval_set: EvalSet
    # Added after schema_version 1 shipped, optional and left out when empty: a manifest without
    # feedback is written exactly as before, so older readers (extra="forbid") still take it.
    feedback: FeedbackMetrics | None = Field(None, exclude_if=_absent)

    @model_validator(mode="after")
    def _adds_up(self) -> EvaluationMetrics:
        # The counts a measure is made of: the confusion matrix holds every evaluated digit once,
        # its diagonal the right answers, and the accuracy is their ratio.
        total = sum(sum(row) for row in self.confusion_matrix)
        diagonal = sum(row[i] for i, row in enumerate(self.confusion_matrix) if i < len(row))
        if total != self.eval_set.size:
            raise ValueError(f"metrics.confusion_matrix counts {total} digits, eval_set.size says {self.eval_set.size}")
        if diagonal != self.correct:
            raise ValueError(f"metrics.correct is {self.correct}, the confusion matrix's diagonal {diagonal}")
        if abs(self.accuracy - self.correct / self.eval_set.size) > 1e-9:
            raise ValueError(f"metrics.accuracy {self.accuracy} is not correct / eval_set.size")
        return self


class DatasetRef(_Strict):
    id: str
    sha256: Sha256
    train_size: int = Field(gt=0)


class FeedbackSetRef(_Strict):
    """An exported, reviewed set of people's corrections that the model was trained with."""

    id: str
    sha256: Sha256
    train_size: int = Field(ge=0, description="digits of the set trained on")
    holdout_size: int = Field(ge=0, description="digits of the set held out (chosen by id hash) and measured")


class FineTunedFrom(_Strict):
    """The release a fine-tuned model started from (training continued from its model.keras)."""

    name: str = Field(min_length=1)
    version: str = Field(pattern=VERSION_PATTERN)
    keras_sha256: Sha256 = Field(description="sha256 of the base's model.keras, as its manifest lists it")


class TrainingRunner(_Strict):
    kind: Literal["local", "azureml"]
    job_id: str | None = None


class TrainingInfo(_Strict):
    params: dict[str, object]
    dataset: DatasetRef
    code_revision: str
    runner: TrainingRunner
    frameworks: dict[str, str]
    duration_seconds: float = Field(ge=0.0)
    feedback: list[FeedbackSetRef] = Field(default_factory=list, exclude_if=_absent)
    # Also optional and left out when absent: a model trained from scratch has no base.
    fine_tuned_from: FineTunedFrom | None = Field(None, exclude_if=_absent)


class ModelManifest(_Strict):
    schema_version: Literal[1] = 1
    name: str = Field(min_length=1)
    version: str = Field(pattern=VERSION_PATTERN)
    created_at: datetime
    labels: dict[str, str] = Field(description="class index (as a string) -> label")
    input: InputSpec = InputSpec()
    output: OutputSpec
    metrics: EvaluationMetrics
    training: TrainingInfo
    files: dict[str, FileEntry]

    @model_validator(mode="after")
    def _consistent(self) -> ModelManifest:
        n = self.output.shape[0]
        if sorted(self.labels, key=_index_order) != [str(i) for i in range(n)]:
            raise ValueError(f"labels must map every class index 0..{n - 1}, got {list(self.labels)}")
        strange = [label for label in self.labels.values() if label not in DIGIT_LABELS]
        if strange:
            raise ValueError(f"labels must be the digits 0-9 of the data set, got {strange}")
        if len(set(self.labels.values())) != n:
            raise ValueError(f"labels must not repeat a digit, got {self.label_list()}")
        if set(self.metrics.per_class_accuracy) != set(self.labels.values()):
            raise ValueError("metrics.per_class_accuracy must name every label exactly once")
        if len(self.metrics.confusion_matrix) != n or any(len(r) != n for r in self.metrics.confusion_matrix):
            raise ValueError(f"metrics.confusion_matrix must be {n}x{n}")
        if TFLITE_NAME not in self.files:
            raise ValueError(f"files must list {TFLITE_NAME}")
        for name in self.files:
            if "/" in name or name in ("", ".", "..") or name == MANIFEST_NAME:
                raise ValueError(f"files: {name!r} is not a plain file name of the release")
        return self

    @property
    def tag(self) -> str:
        return f"model-v{self.version}"

    def label_list(self) -> list[str]:
        return [self.labels[str(i)] for i in range(len(self.labels))]

    def interface(self) -> dict[str, object]:
        """What a client of the served model depends on: the labels and the input and output specs."""
        return {
            "labels": self.label_list(),
            "input": self.input.model_dump(exclude={"description"}),
            "output": self.output.model_dump(),
        }


def _index_order(key: str) -> tuple[int, str]:
    """Sort class-index keys numerically; a key that is no number sorts last (and fails the check)."""
    return (int(key), key) if key.isdigit() else (1 << 30, key)


def tag_version(tag: object) -> int | None:
    """N of a release tag `model-v<N>`, or None for any other tag or anything not a string (JSON's)."""
    if not isinstance(tag, str):
        return None
    match = TAG_PATTERN.fullmatch(tag)
    return int(match.group(1)) if match else None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_entry(path: Path) -> FileEntry:
    return FileEntry(sha256=sha256_file(path), size=path.stat().st_size)


def parse_manifest(raw: bytes | str) -> ModelManifest:
    try:
        return ModelManifest.model_validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise ManifestError(f"{MANIFEST_NAME} is not a valid manifest: {problems}") from None


def read_manifest(model_dir: Path) -> ModelManifest:
    path = Path(model_dir) / MANIFEST_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ManifestError(f"{path}: no manifest") from None
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    return parse_manifest(raw)


def manifest_json(manifest: ModelManifest) -> str:
    """Serialise the way every writer does, so that signatures and diffs are stable."""
    return json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def write_manifest(folder: Path, manifest: ModelManifest) -> bytes:
    """Write model.json and SHA256SUMS (the manifest's files and model.json itself) into `folder`.

    Returns model.json's bytes: what a release signature signs.
    """
    data = manifest_json(manifest).encode()
    (folder / MANIFEST_NAME).write_bytes(data)
    sums = {**manifest.files, MANIFEST_NAME: file_entry(folder / MANIFEST_NAME)}
    (folder / SUMS_NAME).write_text(format_sha256sums(sums), encoding="utf-8")
    return data


def write_atomic(path: Path, data: bytes) -> None:
    """Write through a temporary file in the same folder, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def format_sha256sums(entries: dict[str, FileEntry]) -> str:
    """`sha256sum` format, so that `sha256sum -c SHA256SUMS` works on a downloaded release."""
    return "".join(f"{entries[name].sha256}  {name}\n" for name in sorted(entries))


def parse_sha256sums(text: str) -> dict[str, str]:
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = re.fullmatch(r"([0-9a-f]{64}) [ *](\S+)", line)
        if not match:
            raise ManifestError(f"{SUMS_NAME} line {number} is not '<sha256>  <name>': {line!r}")
        sums[match.group(2)] = match.group(1)
    return sums


def verify_model_dir(model_dir: Path, required: tuple[str, ...] = (TFLITE_NAME,)) -> ModelManifest:
    """Check a model folder against its manifest and return the manifest.

    Every file in `required` must be present. Every file the manifest lists that is present
    must match its size and sha256 (the API folder holds only a subset of a release). If
    `SHA256SUMS` is present it must agree with the manifest. Raises ManifestError naming the
    first file that does not match.
    """
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    for name in required:
        if name not in manifest.files:
            raise ManifestError(f"{MANIFEST_NAME} does not list {name}")
        if not (model_dir / name).is_file():
            raise ManifestError(f"{model_dir / name}: missing")
    for name, expected in manifest.files.items():
        path = model_dir / name
        if not path.is_file():
            continue
        size = path.stat().st_size
        if size != expected.size:
            raise ManifestError(f"{name}: size {size} bytes, manifest says {expected.size}")
        actual = sha256_file(path)
        if actual != expected.sha256:
            raise ManifestError(f"{name}: sha256 {actual} does not match the manifest's {expected.sha256}")
    sums_path = model_dir / SUMS_NAME
    if sums_path.is_file():
        try:
            text = sums_path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise ManifestError(f"{SUMS_NAME} is not UTF-8 text") from None
        sums = parse_sha256sums(text)
        for name, entry in manifest.files.items():
            if sums.get(name) != entry.sha256:
                raise ManifestError(f"{SUMS_NAME} disagrees with {MANIFEST_NAME} about {name}")
        listed = sums.get(MANIFEST_NAME)
        if listed is not None and listed != sha256_file(model_dir / MANIFEST_NAME):
            raise ManifestError(f"{MANIFEST_NAME}: sha256 does not match {SUMS_NAME}")
    return manifest


def read_verified_file(model_dir: Path, name: str) -> tuple[ModelManifest, bytes]:
    """The folder's manifest and the bytes of `name`, those very bytes checked against the manifest.

    The folder is verified first (`verify_model_dir` with `name` required). The bytes returned are
    hashed once more as read, as the LiteRT loader does with model.tflite, so a file replaced
    between the check and the use cannot slip through. Raises ManifestError naming the problem.
    """
    model_dir = Path(model_dir)
    manifest = verify_model_dir(model_dir, required=(name,))
    return manifest, read_checked(model_dir, manifest, name)


def read_checked(model_dir: Path, manifest: ModelManifest, name: str) -> bytes:
    """The bytes of `name`, checked against the manifest's size and sha256 as they are read.

    Whoever uses a model file uses these very bytes, so a file replaced between a check and its
    use cannot slip through. Raises ManifestError naming the problem.
    """
    path = Path(model_dir) / name
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    expected = manifest.files[name]
    actual = hashlib.sha256(content).hexdigest()
    if len(content) != expected.size or actual != expected.sha256:
        raise ManifestError(f"{path}: sha256 {actual} does not match the manifest's {expected.sha256}")
    return content


def install_model(release_dir: Path, model_dir: Path, written: Callable[[str], None] | None = None) -> ModelManifest:
    """Put the served files of a verified release into a model folder (the API's `api/models/`).

    The model first, the manifest last, each replaced atomically: the API reloads on a new
    manifest, and until then a new model.tflite beside the old manifest fails its checksum and is
    not served. `written(name)` is called after each file. Returns the installed manifest,
    verified in place.
    """
    verify_model_dir(release_dir)
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    for name in (TFLITE_NAME, MANIFEST_NAME):
        write_atomic(model_dir / name, (Path(release_dir) / name).read_bytes())
        if written is not None:
            written(name)
    return verify_model_dir(model_dir)
