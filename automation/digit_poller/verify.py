"""Every check a candidate release passes before anything is written to the repository."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from digit_release import signing
from digit_release.data import DataError
from digit_release.evaluate import evaluate_model_dir
from digit_release.manifest import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    EvaluationMetrics,
    ManifestError,
    ModelManifest,
    read_manifest,
    verify_model_dir,
)
from digit_release.model import LiteRTModel, ModelLoadError

logger = logging.getLogger(__name__)

# The manifest's accuracy and the one measured here are computed the same way on the same digits.
CLAIM_TOLERANCE = 1e-9


class Rejected(ValueError):
    """The candidate fails a check; the message says which and why.

    `depends_on` names what besides the release's own files the verdict rests on (settings, the
    model in service): the poller remembers a rejection until the release or one of those changes.
    """

    def __init__(self, message: str, depends_on: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.depends_on = depends_on


@dataclass(frozen=True)
class Verdict:
    manifest: ModelManifest
    accuracy: float
    evaluated: int  # held-out digits of the candidate's classes it was measured on


def measure(folder: Path, data_path: Path) -> EvaluationMetrics:
    """Load `folder` with the API's own loader (checksum, tensor shapes) and evaluate it on every
    held-out digit of its classes in `data_path`; Rejected names whatever stops that."""
    try:
        return evaluate_model_dir(folder, data_path)
    except ModelLoadError as exc:
        raise Rejected(f"model: {exc}") from None
    except DataError:
        raise  # the held-out digits cannot be read: the poller's setup, not the release, is at fault
    except (ValueError, IndexError, KeyError, TypeError) as exc:
        # The manifest passed its schema, yet the model and it disagree in a way the loader did
        # not foresee: that is the release's fault, and the message says what numpy or LiteRT said.
        logger.debug("evaluating %s failed", folder, exc_info=True)
        raise Rejected(
            f"model: cannot be evaluated as its manifest describes it ({type(exc).__name__}: {exc})"
        ) from None


def check_interface(manifest: ModelManifest, in_service: ModelManifest, allow_change: bool) -> None:
    """Refuse a candidate whose labels or input/output spec differ from the model in service."""
    new, old = manifest.interface(), in_service.interface()
    changed = [f"{key} {old[key]} -> {new[key]}" for key in new if new[key] != old.get(key)]
    if not changed:
        return
    if not allow_change:
        raise Rejected(
            f"interface: differs from the model in service ({'; '.join(changed)}); clients depend on it, "
            f"so set ALLOW_INTERFACE_CHANGE=true to accept it",
            ("allow_interface_change", "in_service"),
        )
    logger.warning("interface change accepted (ALLOW_INTERFACE_CHANGE): %s", "; ".join(changed))


def verify_candidate(
    folder: Path,
    *,
    public_key: str | None,
    min_accuracy: float,
    in_service_accuracy: float | None,
    tolerance: float,
    data_path: Path,
    in_service: ModelManifest | None = None,
    allow_interface_change: bool = False,
) -> Verdict:
    """Check `folder` (a downloaded release) and return its manifest and measured accuracy, or raise Rejected.

    model.keras, when present, is checked against its sha256 like every file, and never loaded:
    the poller runs no Keras (so no unsafe deserialisation can happen here at all).
    """
    folder = Path(folder)
    try:
        # A release carries every file its manifest lists: a listed file that is missing is refused.
        manifest = verify_model_dir(folder, required=tuple(read_manifest(folder).files))
    except ManifestError as exc:
        raise Rejected(f"integrity: {exc}") from None
    if public_key is not None:
        signature = folder / SIGNATURE_NAME
        if not signature.is_file():
            raise Rejected(
                f"signature: the release has no {SIGNATURE_NAME} and MODEL_PUBLIC_KEY is set", ("public_key",)
            )
        try:
            key = signing.load_public_key(public_key)
            text = signature.read_bytes().decode("ascii")
            signing.verify((folder / MANIFEST_NAME).read_bytes(), text, key)
        except UnicodeDecodeError:
            raise Rejected(f"signature: {SIGNATURE_NAME} is not base64 text", ("public_key",)) from None
        except signing.SignatureError as exc:
            raise Rejected(f"signature: {exc}", ("public_key",)) from None
    # The release must agree with itself (model and manifest) before it is compared with anything.
    try:
        LiteRTModel.load(folder)
    except ModelLoadError as exc:
        raise Rejected(f"model: {exc}") from None
    if in_service is not None:
        check_interface(manifest, in_service, allow_interface_change)
    metrics = measure(folder, data_path)
    accuracy, evaluated = metrics.accuracy, metrics.eval_set.size
    claimed = manifest.metrics
    if claimed.eval_set.size != evaluated:
        raise Rejected(
            f"accuracy: the manifest claims a measure on {claimed.eval_set.size} held-out digits; "
            f"its classes have {evaluated}"
        )
    if abs(accuracy - claimed.accuracy) > CLAIM_TOLERANCE:
        raise Rejected(f"accuracy: the manifest claims {claimed.accuracy:.4f}, measured {accuracy:.4f}")
    classes = ", ".join(manifest.label_list())
    if accuracy < min_accuracy:
        raise Rejected(
            f"accuracy: {accuracy:.4f} on the {evaluated} held-out digits of {classes} "
            f"is below MIN_ACCURACY {min_accuracy:.4f}",
            ("min_accuracy",),
        )
    if in_service_accuracy is not None and accuracy < in_service_accuracy - tolerance:
        raise Rejected(
            f"accuracy: {accuracy:.4f} is worse than the model in service ({in_service_accuracy:.4f}) "
            f"by more than {tolerance:.4f}",
            ("tolerance", "in_service"),
        )
    logger.info(
        "release %s passed every check: accuracy %.4f on the %d held-out digits of %s",
        manifest.tag,
        accuracy,
        evaluated,
        classes,
    )
    return Verdict(manifest=manifest, accuracy=accuracy, evaluated=evaluated)
