"""One poll: lock, sync the clone, pick the release, check it, write api/models, commit, push.

Whatever happens after the sync, the clone ends clean: committed and pushed, or api/models put
back as it was.
"""

from __future__ import annotations

import fcntl
import json
import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from digit_api.manifest import ManifestError, install_model, read_manifest
from digit_poller.config import PollerConfig
from digit_poller.git import Clone, GitError
from digit_poller.sources import Release, ReleaseSource, SourceError
from digit_poller.verify import Rejected, verify_candidate
from digit_training.evaluate import evaluate_model_dir

logger = logging.getLogger(__name__)


class Exit(IntEnum):
    OK = 0  # updated, or nothing new
    ERROR = 1  # could not poll (network, git, lock, ...): the next run tries again
    REJECTED = 2  # a candidate failed a check and was not installed


class Busy(RuntimeError):
    """Another run holds the lock."""


@dataclass(frozen=True)
class Request:
    """What this run is asked to do: follow the latest release, go to a version, or one back."""

    pin: int | None = None
    unpin: bool = False
    rollback: bool = False
    dry_run: bool = False


@contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / "lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(f"another poll holds {state_dir / 'lock'}") from None
        yield


def read_state(state_dir: Path) -> dict:
    try:
        return json.loads((state_dir / "state.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def write_state(state_dir: Path, state: dict) -> None:
    (state_dir / "state.json").write_text(json.dumps(state, indent=2) + "\n")


def choose(releases: list[Release], current: int | None, request: Request, pinned: int | None) -> Release | None:
    """The release to be in service, or None when the one in service is it (or there is none)."""
    if request.rollback:
        older = [r for r in releases if current is not None and r.version < current]
        if not older:
            raise SourceError(f"no release older than the one in service (v{current}) to roll back to")
        return older[0]
    wanted = request.pin if request.pin is not None else (None if request.unpin else pinned)
    if wanted is not None:
        for release in releases:
            if release.version == wanted:
                return None if release.version == current else release
        raise SourceError(f"no published release model-v{wanted}")
    if not releases or (current is not None and releases[0].version <= current):
        return None
    return releases[0]


def commit_message(old: str | None, new_tag: str, old_accuracy: float | None, new_accuracy: float, source: str) -> str:
    change = f"{new_accuracy - old_accuracy:+.2%}".replace("%", " pt") if old_accuracy is not None else "new"
    before = f"{old_accuracy:.2%}" if old_accuracy is not None else "none"
    return (
        f"model: v{old or '-'} -> {new_tag.removeprefix('model-')} "
        f"(accuracy {before} -> {new_accuracy:.2%}, {change})\n\n"
        f"Release {new_tag} from {source}, checked by digit_poller: checksums, signature when required,\n"
        f"LiteRT load and shapes, accuracy on the bundled held-out digits.\n"
    )


def poll(config: PollerConfig, source: ReleaseSource, request: Request = Request()) -> Exit:
    """One run; returns the exit code (and logs why)."""
    clone = Clone(config.repo_path, config.git_remote, config.git_branch)
    try:
        with locked(config.state_dir):
            return _poll(config, source, request, clone)
    except Busy as exc:
        logger.error("%s: not polling", exc)
        return Exit.ERROR
    except (GitError, SourceError, OSError, ManifestError) as exc:
        logger.error("poll failed, nothing changed: %s", exc)
        return Exit.ERROR


def _poll(config: PollerConfig, source: ReleaseSource, request: Request, clone: Clone) -> Exit:
    clone.sync()
    try:
        current = read_manifest(config.model_dir)
    except ManifestError:
        current = None  # a repository without a model yet
    current_version = int(current.version) if current else None
    state = read_state(config.state_dir)
    target = choose(source.releases(), current_version, request, state.get("pinned"))
    if request.pin is not None or request.rollback or request.unpin:
        pinned = None if request.unpin else (target.version if target else request.pin or current_version)
        if not request.dry_run:
            write_state(config.state_dir, {**state, "pinned": pinned})
        logger.info("pinned to %s", f"v{pinned}" if pinned else "nothing (following the latest release)")
    if target is None:
        logger.info("nothing new: v%s is in service (%s)", current_version, source.name)
        return Exit.OK
    logger.info("candidate %s from %s (in service: v%s)", target.tag, source.name, current_version)
    if request.dry_run:
        logger.info("dry run: would download, check and install %s; nothing changed", target.tag)
        return Exit.OK

    with tempfile.TemporaryDirectory(prefix="digit-poller-") as tmp:
        folder = Path(tmp)
        source.download(target, folder)
        follows_latest = request.pin is None and not request.rollback
        in_service = evaluate_model_dir(config.model_dir).accuracy if current and follows_latest else None
        try:
            verdict = verify_candidate(
                folder,
                public_key=config.model_public_key,
                min_accuracy=config.min_accuracy,
                in_service_accuracy=in_service,
                tolerance=config.accuracy_tolerance,
            )
        except Rejected as exc:
            logger.error("rejected %s: %s", target.tag, exc)
            return Exit.REJECTED
        if verdict.manifest.version != str(target.version):
            logger.error("rejected %s: its manifest says version %s", target.tag, verdict.manifest.version)
            return Exit.REJECTED
        old_accuracy = current.metrics.accuracy if current else None
        message = commit_message(current_version, target.tag, old_accuracy, verdict.accuracy, source.name)

        def apply() -> bool:
            install_model(folder, config.model_dir)
            return clone.commit_models(message)

        try:
            if not apply():
                logger.info("api/models already holds %s: nothing to commit", target.tag)
                return Exit.OK
            clone.push(config.push_attempts, redo=apply)
        except BaseException:
            clone.restore_models()
            clone.drop_unpushed()
            raise
    logger.info("pushed %s to %s/%s", target.tag, config.git_remote, config.git_branch)
    return Exit.OK
