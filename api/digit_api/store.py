"""The model in service: loaded in the lifespan, replaced atomically when MODEL_DIR changes.

Readiness is the flag "a verified model is loaded" (KServe's rule). A request takes a reference to
the current model once and uses it to the end, so a swap never affects a request in flight, and a
candidate that fails verification never replaces a model that works.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from pathlib import Path

from digit_api.metrics import ServiceMetrics
from digit_release.manifest import MANIFEST_NAME, TFLITE_NAME
from digit_release.model import LiteRTModel, ModelLoadError

logger = logging.getLogger(__name__)


class NotReady(RuntimeError):
    """No verified model is loaded."""


# The manifest's digest, and while no model serves, the model file's inode, size and mtime.
Fingerprint = tuple[str | None] | tuple[str | None, tuple[int, int, int] | None]


class ModelStore:
    def __init__(self, model_dir: Path, metrics: ServiceMetrics, num_threads: int = 1) -> None:
        self.model_dir = Path(model_dir)
        self._metrics = metrics
        self._num_threads = num_threads
        self._model: LiteRTModel | None = None
        self._seen: Fingerprint | None = None
        self.error: str | None = "no model loaded yet"

    @property
    def ready(self) -> bool:
        return self._model is not None

    @property
    def version(self) -> str | None:
        return self._model.version if self._model else None

    def current(self) -> LiteRTModel:
        model = self._model
        if model is None:
            raise NotReady(self.error or "no model loaded")
        return model

    def _fingerprint(self) -> Fingerprint:
        """What tells that the files on disk changed.

        Writers put the model file first and the manifest last, so once a model serves, a new
        manifest is the signal: a model file alone is a publish still under way, not a failed
        candidate. Until a model serves, any change is worth a try (someone mending the folder).
        """
        try:
            manifest = hashlib.sha256((self.model_dir / MANIFEST_NAME).read_bytes()).hexdigest()
        except OSError:
            manifest = None
        if self._model is not None:
            return (manifest,)
        try:
            st = os.stat(self.model_dir / TFLITE_NAME)
            model = (st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            model = None
        return manifest, model

    def refresh(self) -> bool:
        """Load the model on disk if it changed since the last attempt; return True if a new one went live."""
        fingerprint = self._fingerprint()
        if fingerprint == self._seen:
            return False
        # Remembered whether or not the load succeeds, so a broken candidate is tried once, not every tick.
        self._seen = fingerprint
        try:
            candidate = LiteRTModel.load(self.model_dir, num_threads=self._num_threads)
        except ModelLoadError as exc:
            self._metrics.reloads.labels("failure").inc()
            if self._model is None:
                self.error = f"model in {self.model_dir} refused: {exc}"
                logger.error("not ready: model in %s refused: %s", self.model_dir, exc)
            else:
                logger.error(
                    "new model in %s refused, still serving version %s: %s", self.model_dir, self._model.version, exc
                )
            return False
        if self._model is not None and candidate.manifest == self._model.manifest:
            return False
        previous = self.version
        self._model = candidate  # a single reference assignment: requests see the old or the new model
        self._seen = self._fingerprint()
        self.error = None
        self._metrics.reloads.labels("success").inc()
        self._metrics.set_model(candidate.manifest.name, candidate.version)
        logger.info(
            "serving model %s version %s (was %s), accuracy %.4f on %s",
            candidate.manifest.name,
            candidate.version,
            previous or "none",
            candidate.manifest.metrics.accuracy,
            candidate.manifest.metrics.eval_set.id,
        )
        return True

    async def watch(self, interval: float) -> None:
        """Poll MODEL_DIR for a new model until cancelled (polling works on every filesystem and volume)."""
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(self.refresh)
            except Exception:  # a watcher that dies would silently stop all future updates
                logger.exception("model reload check failed")
