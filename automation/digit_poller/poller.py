"""One poll: lock, sync the clone, pick the release, check it, write api/models, commit, push.

Whatever happens after the sync, the clone ends clean: committed and pushed, or api/models put
back as it was.
"""

from __future__ import annotations

import fcntl
import json
import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from digit_api.inference import ModelLoadError
from digit_api.manifest import (
    MANIFEST_NAME,
    ManifestError,
    ModelManifest,
    install_model,
    parse_manifest,
    read_manifest,
    write_atomic,
)
from digit_poller.config import PollerConfig
from digit_poller.git import MODEL_PATH, Clone, GitError
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


class StateError(RuntimeError):
    """The poller's state file exists but cannot be read: guessing "no pin" could undo a rollback."""


def read_state(state_dir: Path) -> dict:
    path = state_dir / "state.json"
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as exc:
        raise StateError(f"{path} is unreadable ({exc}): fix or delete it (it holds the pin)") from None
    if not isinstance(state, dict):
        raise StateError(f"{path} is not a JSON object: fix or delete it (it holds the pin)")
    return state


def write_state(state_dir: Path, state: dict) -> None:
    write_atomic(state_dir / "state.json", (json.dumps(state, indent=2) + "\n").encode())


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
    except (GitError, SourceError, StateError, OSError, ManifestError) as exc:
        logger.error("poll failed, nothing changed: %s", exc)
        return Exit.ERROR


def in_service(config: PollerConfig, clone: Clone, dry_run: bool) -> ModelManifest | None:
    """The manifest of the model in service: the clone's (after sync), or the remote's for a dry run."""
    if dry_run:
        raw = clone.remote_file(f"{MODEL_PATH}/{MANIFEST_NAME}")
        return parse_manifest(raw) if raw is not None else None
    try:
        return read_manifest(config.model_dir)
    except ManifestError:
        return None  # a repository without a model yet


def measured_accuracy(model_dir: Path) -> float | None:
    """The in-service model's accuracy now; None if it cannot even be loaded (then it is no bar to clear)."""
    try:
        return evaluate_model_dir(model_dir).accuracy
    except ModelLoadError as exc:
        logger.warning("the model in service does not load (%s): any release that passes the checks replaces it", exc)
        return None


def _poll(config: PollerConfig, source: ReleaseSource, request: Request, clone: Clone) -> Exit:
    state = read_state(config.state_dir)
    if request.dry_run:
        clone.fetch()  # a dry run reads the remote and changes nothing, not even the clone
    else:
        clone.sync()
    current = in_service(config, clone, request.dry_run)
    current_version = int(current.version) if current else None
    target = choose(source.releases(), current_version, request, state.get("pinned"))
    pins = request.pin is not None or request.rollback or request.unpin
    pinned = None if request.unpin else (target.version if target else request.pin or current_version)
    if target is None:
        if pins and not request.dry_run:
            save_pin(config, state, pinned)
        logger.info("nothing new: v%s is in service (%s)", current_version, source.name)
        return Exit.OK
    logger.info("candidate %s from %s (in service: v%s)", target.tag, source.name, current_version)
    if request.dry_run:
        logger.info("dry run: would download, check and install %s; nothing changed", target.tag)
        return Exit.OK
    outcome = _bring_in(config, source, request, clone, target, has_model=current is not None)
    if outcome is Exit.OK and pins:
        save_pin(config, state, pinned)
    return outcome


def _bring_in(
    config: PollerConfig, source: ReleaseSource, request: Request, clone: Clone, target: Release, *, has_model: bool
) -> Exit:
    """Download, check, write, commit and push `target`; on any failure the clone is put back."""
    # Downloads go under the state folder, emptied at every start, so a killed run leaks nothing.
    folder = config.state_dir / "download"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        source.download(target, folder)
        follows_latest = request.pin is None and not request.rollback
        bar = measured_accuracy(config.model_dir) if has_model and follows_latest else None
        try:
            verdict = verify_candidate(
                folder,
                public_key=config.model_public_key,
                min_accuracy=config.min_accuracy,
                in_service_accuracy=bar,
                tolerance=config.accuracy_tolerance,
            )
        except Rejected as exc:
            logger.error("rejected %s: %s", target.tag, exc)
            return Exit.REJECTED
        if verdict.manifest.version != str(target.version):
            logger.error("rejected %s: its manifest says version %s", target.tag, verdict.manifest.version)
            return Exit.REJECTED

        def apply() -> bool:
            """Write and commit the release on top of what the clone holds now (again after a rejected push)."""
            now = in_service(config, clone, dry_run=False)
            if follows_latest and now is not None and int(now.version) >= target.version:
                logger.info("the remote already holds v%s, not older than %s: nothing to do", now.version, target.tag)
                return False
            install_model(folder, config.model_dir)
            old_accuracy = now.metrics.accuracy if now else None
            old_version = now.version if now else None
            message = commit_message(old_version, target.tag, old_accuracy, verdict.accuracy, source.name)
            return clone.commit_models(message)

        try:
            if not apply() or not clone.push(config.push_attempts, redo=apply):
                logger.info("nothing to commit for %s", target.tag)
                return Exit.OK
        except BaseException:
            clone.restore_models()
            clone.drop_unpushed()
            raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    logger.info("pushed %s to %s/%s", target.tag, config.git_remote, config.git_branch)
    return Exit.OK


def save_pin(config: PollerConfig, state: dict, pinned: int | None) -> None:
    """Recorded once the pinned model is in service, so a refused rollback does not stick."""
    write_state(config.state_dir, {**state, "pinned": pinned})
    logger.info("pinned to %s", f"v{pinned}" if pinned else "nothing (following the latest release)")
