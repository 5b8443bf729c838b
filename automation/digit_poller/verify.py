"""Every check a candidate release passes before anything is written to the repository."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from digit_api.inference import LiteRTModel, ModelLoadError
from digit_api.manifest import MANIFEST_NAME, ManifestError, ModelManifest, read_manifest, verify_model_dir
from digit_poller import signing
from digit_training.evaluate import evaluate_model_dir

logger = logging.getLogger(__name__)

# The manifest's accuracy and the one measured here are computed the same way on the same digits.
CLAIM_TOLERANCE = 1e-9


class Rejected(ValueError):
    """The candidate fails a check; the message says which and why."""


@dataclass(frozen=True)
class Verdict:
    manifest: ModelManifest
    accuracy: float


def verify_candidate(
    folder: Path,
    *,
    public_key: str | None,
    min_accuracy: float,
    in_service_accuracy: float | None,
    tolerance: float,
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
        signature = folder / signing.SIGNATURE_NAME
        if not signature.is_file():
            raise Rejected(f"signature: the release has no {signing.SIGNATURE_NAME} and MODEL_PUBLIC_KEY is set")
        try:
            key = signing.load_public_key(public_key)
            signing.verify((folder / MANIFEST_NAME).read_bytes(), signature.read_text(), key)
        except signing.SignatureError as exc:
            raise Rejected(f"signature: {exc}") from None
    try:
        LiteRTModel.load(folder)  # the API's own loader: checksum again, and the tensor shapes
        metrics = evaluate_model_dir(folder)
    except ModelLoadError as exc:
        raise Rejected(f"model: {exc}") from None
    accuracy = metrics.accuracy
    if abs(accuracy - manifest.metrics.accuracy) > CLAIM_TOLERANCE:
        raise Rejected(f"accuracy: the manifest claims {manifest.metrics.accuracy:.4f}, measured {accuracy:.4f}")
    if accuracy < min_accuracy:
        raise Rejected(f"accuracy: {accuracy:.4f} on the held-out digits is below MIN_ACCURACY {min_accuracy:.4f}")
    if in_service_accuracy is not None and accuracy < in_service_accuracy - tolerance:
        raise Rejected(
            f"accuracy: {accuracy:.4f} is worse than the model in service ({in_service_accuracy:.4f}) "
            f"by more than {tolerance:.4f}"
        )
    logger.info("release %s passed every check: accuracy %.4f", manifest.tag, accuracy)
    return Verdict(manifest=manifest, accuracy=accuracy)
