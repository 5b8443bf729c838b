"""Where releases come from: one interface, three sources (GitHub Releases, Azure ML registry, a folder).

A release is tagged `model-v<N>`; sources order releases by N, never by date. A source lists
releases and downloads one release's files into a folder; everything it fetches is checked by
the poller afterwards (checksums, signature, model load, accuracy), never trusted as is.

Two kinds of failure, because the poller treats them differently:
- `SourceError`: the source could not be read right now (network, status, deadline, a transfer
  that does not match the listing). Nothing is remembered; the next run tries again.
- `BadRelease` (a SourceError too): the release itself is unacceptable whatever the network does
  (a file over the size cap, a symbolic link). The poller rejects it and remembers that.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from digit_release.manifest import RELEASE_FILES

__all__ = ["RELEASE_FILES", "BadRelease", "RateLimited", "Release", "ReleaseSource", "SourceError"]

# A cap on any one file, so a hostile or broken release cannot fill the disk.
MAX_FILE_BYTES = 64 * 1024 * 1024

T = TypeVar("T")


class SourceError(RuntimeError):
    """The source could not be read (network, HTTP status, missing release): try again later."""


class BadRelease(SourceError):
    """The release's files are unacceptable as published (too large, a link): a rejection, not a fault."""


class RateLimited(SourceError):
    """The source asked us to wait; `retry_after` is in seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def fingerprint(parts: object) -> str:
    """A short stable digest of what identifies a published release's files (to remember verdicts by)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Release:
    version: int
    tag: str
    # file name -> where the source finds it (a URL, a path, a registry id): only the source reads it
    assets: dict[str, str] = field(default_factory=dict)
    # file name -> size in bytes as the source lists it, where it does: a download must match it
    sizes: dict[str, int] = field(default_factory=dict)
    # changes when the published files change (a re-uploaded asset): a remembered rejection then lapses
    fingerprint: str = ""


class ReleaseSource(Protocol):
    """What the poller needs from a place that publishes releases."""

    name: str

    def releases(self) -> list[Release]:
        """Every published (not draft, not pre-release) `model-v<N>` release, highest N first."""
        ...

    def download(self, release: Release, dest: Path) -> None:
        """Write the release's files (those in RELEASE_FILES it has) into the empty folder `dest`."""
        ...


def with_deadline(call: Callable[[], T], seconds: float, what: str) -> T:
    """Run `call` in a worker thread and give up after `seconds` of wall time (SourceError).

    For clients whose sockets the poller cannot reach (an SDK's): the call is abandoned, not
    stopped, so it must write only into places the poller throws away (the download folder).
    """
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the caller's thread below
            outcome["error"] = exc

    worker = threading.Thread(target=run, name=f"deadline:{what}", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise SourceError(f"{what}: no answer within {seconds:g} s")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
