"""One poll: lock, sync the clone, pick the release, check it, write api/models, commit, push.

What a run's outcome means (the exit code):

- 0: the model in service is where the poller should be (updated now, or nothing new).
- 1: a transient fault (network, deadline, rate limit, a transfer that does not match the
  listing, git): nothing is remembered and the next run tries again. After a rate limit the
  poller does not ask again before the time the source gave, cron runs included.
- 2: this run rejected a candidate: a fault of the release itself (checksums, signature, model,
  accuracy, interface, files over the cap). The verdict is remembered in the state folder with
  the release's fingerprint and the settings it was judged by, so that release is not
  downloaded again until it is re-published or the settings or the model in service change,
  and lower releases are considered, in the same run, up to MAX_CANDIDATES.

The model in service is always read from what is committed on the remote branch, never from the
work tree or the index. Whatever happens after the sync, the clone ends clean: committed and
pushed, or put back; a run killed outright is put right by the next one (see git.py).
"""

from __future__ import annotations

import fcntl
import functools
import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any, TypeVar

from digit_poller import crashpoints
from digit_poller.config import PollerConfig
from digit_poller.git import Clone, ForeignWork, GitError, Identity
from digit_poller.sources import (
    BadRelease,
    RateLimited,
    Release,
    ReleaseSource,
    SourceError,
    fingerprint,
    with_deadline,
)
from digit_poller.verify import Rejected, Verdict, measure, verify_candidate
from digit_release.data import DataError
from digit_release.manifest import (
    MANIFEST_NAME,
    SERVED_PATH,
    TFLITE_NAME,
    ManifestError,
    ModelManifest,
    install_model,
    parse_manifest,
    write_atomic,
)

logger = logging.getLogger(__name__)


# The longest wait a source may ask for (GitHub's limits reset within the hour); longer is a broken header.
MAX_WAIT_SECONDS = 3600.0
NETWORK_GRACE_SECONDS = 10.0
T = TypeVar("T")


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


def read_state(state_dir: Path) -> dict[str, Any]:
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


def write_state(state_dir: Path, state: dict[str, Any]) -> None:
    write_atomic(state_dir / "state.json", (json.dumps(state, indent=2, sort_keys=True) + "\n").encode())


def clone_of(config: PollerConfig) -> Clone:
    identity = Identity(config.poller_git_name, config.poller_git_email)
    return Clone(config.repo_path, config.git_remote, config.git_branch, config.state_dir, identity)


def poll(config: PollerConfig, source: ReleaseSource, request: Request = Request()) -> Exit:
    """One run; returns the exit code (and logs why)."""
    try:
        with locked(config.state_dir):
            return _poll(config, source, request, clone_of(config))
    except Busy as exc:
        logger.error("%s: not polling", exc)
        return Exit.ERROR
    except ForeignWork as exc:
        logger.error("refusing to poll, nothing touched: %s", exc)
        return Exit.ERROR
    except (GitError, SourceError, StateError, OSError, ManifestError, DataError) as exc:
        logger.error("poll failed: %s", exc)
        return Exit.ERROR


# --- what is in service, and what to try ------------------------------------------------------


def in_service(clone: Clone) -> ModelManifest | None:
    """The manifest committed on the remote branch (after a fetch), or None when it holds no model."""
    raw = clone.remote_file(f"{SERVED_PATH}/{MANIFEST_NAME}")
    if raw is None:
        return None
    try:
        return parse_manifest(raw)
    except ManifestError as exc:
        logger.warning("the manifest in service is not valid (%s): any release that passes the checks replaces it", exc)
        return None


def measured_accuracy(clone: Clone, state_dir: Path, data_path: Path) -> float | None:
    """The in-service model's accuracy now, measured on the files committed on the remote branch.

    None if it cannot even be loaded: then it is no bar to clear.
    """
    folder = state_dir / "in-service"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        for name in (TFLITE_NAME, MANIFEST_NAME):
            data = clone.remote_file(f"{SERVED_PATH}/{name}")
            if data is None:
                return None
            (folder / name).write_bytes(data)
        try:
            return measure(folder, data_path).accuracy
        except Rejected as exc:
            logger.warning(
                "the model in service does not load (%s): any release that passes the checks replaces it", exc
            )
            return None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def candidates(releases: list[Release], current: int | None, request: Request, pinned: int | None) -> list[Release]:
    """The releases to try, best first; empty when the one in service is where the poller should be."""
    if request.rollback:
        older = [r for r in releases if current is not None and r.version < current]
        if not older:
            raise SourceError(f"no release older than the one in service (v{current}) to roll back to")
        return [older[0]]
    wanted = request.pin if request.pin is not None else (None if request.unpin else pinned)
    if wanted is not None:
        for release in releases:
            if release.version == wanted:
                return [] if release.version == current else [release]
        raise SourceError(f"no published release model-v{wanted}")
    return [r for r in releases if current is None or r.version > current]


def policy_of(config: PollerConfig, current: ModelManifest | None, depends_on: list[str] | tuple[str, ...]) -> str:
    """What a verdict rests on besides the release itself: when any of it changes, the verdict lapses."""
    serving = (current.version, current.files[TFLITE_NAME].sha256) if current else None
    everything = {
        "min_accuracy": config.min_accuracy,
        "tolerance": config.accuracy_tolerance,
        "public_key": config.model_public_key,
        "allow_interface_change": config.allow_interface_change,
        "in_service": serving,
    }
    return fingerprint({name: everything.get(name) for name in sorted(depends_on)})


def commit_message(old: str | None, new_tag: str, old_accuracy: float | None, new_accuracy: float, source: str) -> str:
    change = f"{new_accuracy - old_accuracy:+.2%}".replace("%", " pt") if old_accuracy is not None else "new"
    before = f"{old_accuracy:.2%}" if old_accuracy is not None else "none"
    return (
        f"model: v{old or '-'} -> {new_tag.removeprefix('model-')} "
        f"(accuracy {before} -> {new_accuracy:.2%}, {change})\n\n"
        f"Release {new_tag} from {source}, checked by digit_poller: checksums, signature when required,\n"
        f"interface, LiteRT load and shapes, accuracy on the bundled held-out digits.\n"
    )


# --- the run ----------------------------------------------------------------------------------


def _poll(config: PollerConfig, source: ReleaseSource, request: Request, clone: Clone) -> Exit:
    state = read_state(config.state_dir)
    # What a killed run downloaded or exported is thrown away at every start, whatever comes next.
    for leftover in ("download", "in-service"):
        shutil.rmtree(config.state_dir / leftover, ignore_errors=True)
    waits = state.get("not_before")
    until = waits.get(source.name) if isinstance(waits, dict) else None
    if isinstance(until, (int, float)) and math.isfinite(until) and time.time() < until:
        if until - time.time() <= MAX_WAIT_SECONDS:
            # Said once, when the source asked: a cron run every few minutes adds nothing to that line.
            logger.debug("%s asked to wait: not polling before %s", source.name, _clock(until))
            return Exit.OK
        logger.warning("ignoring a stored wait for %s until %s: longer than any source asks", source.name, until)
    try:
        return _poll_source(config, source, request, clone, state)
    except RateLimited as exc:
        wait = min(max(exc.retry_after, 0.0), MAX_WAIT_SECONDS) if math.isfinite(exc.retry_after) else 60.0
        until = time.time() + wait
        latest = read_state(config.state_dir)
        kept = latest.get("not_before")
        kept = kept if isinstance(kept, dict) else {}
        write_state(config.state_dir, {**latest, "not_before": {**kept, source.name: until}})
        raise RateLimited(f"{exc}; not polling {source.name} again before {_clock(until)}", wait) from None


def _clock(epoch: float) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))
    except (OverflowError, OSError, ValueError):
        return f"{epoch} (not a time)"


def _network(call: Callable[[], T], seconds: float, what: str) -> T:
    """A source's call against a wall clock a little past its own deadlines: the last resort for
    what no socket deadline can cut short (a name server that never answers holds getaddrinfo)."""
    return with_deadline(call, seconds + NETWORK_GRACE_SECONDS, what)


def _poll_source(
    config: PollerConfig, source: ReleaseSource, request: Request, clone: Clone, state: dict[str, Any]
) -> Exit:
    if request.dry_run:
        clone.fetch()  # a dry run reads the remote and changes nothing, not even the clone
        if clone.journal_path.exists():
            logger.info("dry run: an earlier run was interrupted; the next real run puts the clone back first")
    else:
        clone.sync()
    current = in_service(clone)
    current_version = int(current.version) if current else None
    releases = _network(source.releases, config.list_deadline, f"{source.name}: listing releases")
    to_try = candidates(releases, current_version, request, state.get("pinned"))
    pins = request.pin is not None or request.rollback or request.unpin
    follows_latest = not pins and state.get("pinned") is None
    remembered = rejections(state)
    if follows_latest:
        to_try = [r for r in to_try if not _still_rejected(config, current, r, remembered.get(r.tag))]
    if not to_try:
        if pins and not request.dry_run:
            pinned = None if request.unpin else (request.pin or current_version)
            save_pin(config, pinned)
        logger.info("nothing new: v%s is in service (%s)", current_version, source.name)
        return Exit.OK
    if request.dry_run:
        tags = ", ".join(r.tag for r in to_try[: config.max_candidates])
        logger.info("dry run: would download, check and install the first that passes of %s; nothing changed", tags)
        return Exit.OK

    # The bar every candidate must clear, measured once, and only when a candidate is in hand.
    bar = functools.cache(lambda: measured_accuracy(clone, config.state_dir, config.data_path))
    rejected = False
    for target in to_try[: config.max_candidates]:
        logger.info("candidate %s from %s (in service: v%s)", target.tag, source.name, current_version)
        try:
            verdict = _check(config, source, target, current, bar if follows_latest else None)
        except Rejected as exc:
            logger.error("rejected %s: %s", target.tag, exc)
            _remember(config, target, policy_of(config, current, exc.depends_on), exc, releases)
            rejected = True
            if follows_latest:
                continue
            return Exit.REJECTED
        _install(config, source, clone, target, verdict, follows_latest=follows_latest)
        if pins:
            save_pin(config, None if request.unpin else target.version)
        break
    return Exit.REJECTED if rejected else Exit.OK


def rejections(state: dict[str, Any]) -> dict[str, Any]:
    """The verdicts on rejected releases the state file remembers, by tag (none if it holds no object)."""
    rejected = state.get("rejected")
    return rejected if isinstance(rejected, dict) else {}


def _still_rejected(config: PollerConfig, current: ModelManifest | None, release: Release, verdict: object) -> bool:
    if not isinstance(verdict, dict) or not isinstance(verdict.get("depends_on"), list):
        return False
    if verdict.get("fingerprint") != release.fingerprint:
        return False  # re-published: judged again
    if verdict.get("policy") != policy_of(config, current, verdict["depends_on"]):
        return False  # the settings or the model in service it was judged against changed
    logger.info("skipping %s: rejected %s (%s)", release.tag, verdict.get("at", "earlier"), verdict.get("reason", "?"))
    return True


def _remember(config: PollerConfig, release: Release, policy: str, exc: Rejected, releases: list[Release]) -> None:
    state = read_state(config.state_dir)
    listed = {r.tag for r in releases}
    kept = {tag: v for tag, v in rejections(state).items() if tag in listed}  # forget deleted releases
    kept[release.tag] = {
        "fingerprint": release.fingerprint,
        "depends_on": sorted(exc.depends_on),
        "policy": policy,
        "reason": str(exc),
        "at": _clock(time.time()),
    }
    write_state(config.state_dir, {**state, "rejected": kept})


def _check(
    config: PollerConfig,
    source: ReleaseSource,
    target: Release,
    current: ModelManifest | None,
    bar: Callable[[], float | None] | None,
) -> Verdict:
    """Download `target` into the state folder and check it; raise Rejected for a fault of the release.

    `bar`: the in-service model's accuracy now, which the candidate must not fall below (None: no bar).
    """
    # Downloads go under the state folder, emptied at every start, so a killed run leaks nothing.
    folder = config.state_dir / "download"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        try:
            _network(lambda: source.download(target, folder), config.download_deadline, f"{source.name}: {target.tag}")
        except BadRelease as exc:
            raise Rejected(f"files: {exc}") from None
        verdict = verify_candidate(
            folder,
            public_key=config.model_public_key,
            min_accuracy=config.min_accuracy,
            in_service_accuracy=bar() if current and bar is not None else None,
            tolerance=config.accuracy_tolerance,
            data_path=config.data_path,
            in_service=current,
            allow_interface_change=config.allow_interface_change,
        )
        if verdict.manifest.version != str(target.version):
            raise Rejected(f"version: the manifest says {verdict.manifest.version}, the release is {target.tag}")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return verdict


def _install(
    config: PollerConfig,
    source: ReleaseSource,
    clone: Clone,
    target: Release,
    verdict: Verdict,
    *,
    follows_latest: bool,
) -> None:
    """Write, commit and push the checked release; on any failure the clone is put back."""
    folder = config.state_dir / "download"

    def apply() -> bool:
        """Write and commit the release on top of the remote's branch (again after a rejected push)."""
        now = in_service(clone)
        if follows_latest and now is not None and int(now.version) >= target.version:
            logger.info("the remote already holds v%s, not older than %s: nothing to do", now.version, target.tag)
            return False
        install_model(folder, config.model_dir, written=lambda name: crashpoints.reached(f"wrote {name}"))
        old_accuracy = now.metrics.accuracy if now else None
        message = commit_message(now.version if now else None, target.tag, old_accuracy, verdict.accuracy, source.name)
        return clone.commit_models(message, target.tag)

    try:
        clone.begin("install")
        if apply() and clone.push(config.push_attempts, redo=apply):
            clone.settle()
            logger.info("pushed %s to %s/%s", target.tag, config.git_remote, config.git_branch)
        else:
            logger.info("nothing to commit for %s", target.tag)
            clone.restore()
    except BaseException:
        try:
            clone.restore()
        except Exception as exc:  # the journal stays, and the next run puts the clone back
            logger.warning("could not put the clone back now (%s): the next run will", exc)
        raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def save_pin(config: PollerConfig, pinned: int | None) -> None:
    """Recorded once the pinned model is in service, so a refused rollback does not stick."""
    write_state(config.state_dir, {**read_state(config.state_dir), "pinned": pinned})
    logger.info("pinned to %s", f"v{pinned}" if pinned else "nothing (following the latest release)")
