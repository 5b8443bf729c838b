"""Where releases come from: one interface, three sources (GitHub Releases, Azure ML registry, a folder).

A release is tagged `model-v<N>`; sources order releases by N, never by date. A source lists
releases and downloads one release's files into a folder; everything it fetches is checked by
the poller afterwards (checksums, signature, model load, accuracy), never trusted as is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

TAG = re.compile(r"model-v([1-9][0-9]*)")

# Files a release may carry; anything else it lists is ignored, never downloaded.
RELEASE_FILES = ("model.tflite", "model.keras", "model.json", "SHA256SUMS", "model.json.sig")
# A cap on any one file, so a hostile or broken release cannot fill the disk.
MAX_FILE_BYTES = 64 * 1024 * 1024


class SourceError(RuntimeError):
    """The source could not be read (network, HTTP status, missing release): try again later."""


class RateLimited(SourceError):
    """The source asked us to wait; `retry_after` is in seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def version_of(tag: str) -> int | None:
    """N of a `model-v<N>` tag, or None for any other tag."""
    match = TAG.fullmatch(tag)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class Release:
    version: int
    tag: str
    # file name -> where the source finds it (a URL, a path, a registry id): only the source reads it
    assets: dict[str, str] = field(default_factory=dict)


class ReleaseSource(Protocol):
    """What the poller needs from a place that publishes releases."""

    name: str

    def releases(self) -> list[Release]:
        """Every published (not draft, not pre-release) `model-v<N>` release, highest N first."""
        ...

    def download(self, release: Release, dest: Path) -> None:
        """Write the release's files (those in RELEASE_FILES it has) into the empty folder `dest`."""
        ...
