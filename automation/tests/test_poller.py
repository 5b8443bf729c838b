"""The poller against real git (a bare repository as the remote, a clone as REPO_PATH) and a folder of releases.

Every fault leaves the clone clean, the remote's model unchanged and a non-zero exit, and the next
run succeeds.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path

import pytest

from digit_poller.__main__ import main
from digit_poller.config import PollerConfig
from digit_poller.git import Clone
from digit_poller.poller import clone_of
from digit_release import signing
from digit_release.manifest import MANIFEST_NAME, TFLITE_NAME, read_manifest
from digit_testing.processes import running_api
from digit_testing.releases import IDENTITY, SHIPPED, claiming, git, metrics_from, write_release


def make_release(releases: Path, version: int, tflite: bytes | None = None, **manifest_changes) -> Path:
    """A release folder model-v<version>: the shipped model under a new version (or other bytes)."""
    return write_release(releases / f"model-v{version}", version, tflite, **manifest_changes)


def test_a_new_release_is_checked_committed_and_pushed(world) -> None:
    make_release(world.releases, 2)
    assert main(["--once"]) == 0
    assert world.remote_version() == "2"
    subject = world.remote_log()[0]
    assert subject == "model: v1 -> v2 (accuracy 98.95% -> 98.95%, +0.00 pt)"
    changed = git(world.remote, "show", "--name-only", "--format=", "main").split()
    assert changed == ["api/models/model.json"]  # only api/models: here the model bytes are the same
    assert world.clone_is_clean()
    # Nothing new: no commit, exit 0.
    assert main(["--once"]) == 0
    assert len(world.remote_log()) == 2


def test_highest_version_wins_and_dry_run_changes_nothing(world) -> None:
    make_release(world.releases, 3)
    make_release(world.releases, 2)  # published later, but lower: never chosen over v3
    assert main(["--once", "--dry-run"]) == 0
    assert world.remote_version() == "1" and world.clone_is_clean()
    assert main(["--once"]) == 0
    assert world.remote_version() == "3"


def tamper(folder: Path) -> None:
    data = bytearray((folder / TFLITE_NAME).read_bytes())
    data[500] ^= 1
    (folder / TFLITE_NAME).write_bytes(bytes(data))


def corrupt_model(releases: Path) -> Path:
    return make_release(releases, 2, tflite=b"not a model at all, though the checksums say it is")


def wrong_shapes(releases: Path) -> Path:
    manifest = read_manifest(SHIPPED)
    labels = {k: v for k, v in manifest.labels.items() if k != "9"}
    cut = [row[:9] for row in manifest.metrics.confusion_matrix[:9]]
    metrics = metrics_from(cut, list(labels.values()), manifest.metrics.eval_set.id)
    return make_release(
        releases, 2, labels=labels, output=manifest.output.model_copy(update={"shape": (9,)}), metrics=metrics
    )


def false_claim(releases: Path) -> Path:
    metrics = claiming(read_manifest(SHIPPED).metrics, correct=1998)  # 0.999, where 0.9895 is measured
    return make_release(releases, 2, metrics=metrics)


@pytest.mark.parametrize(
    ("make_bad", "message"),
    [
        (lambda r: tamper(make_release(r, 2)), "integrity: model.tflite: sha256"),
        (corrupt_model, "model: "),
        (wrong_shapes, "model output is float32[10], manifest says float32[9]"),
        (false_claim, "accuracy: the manifest claims 0.9990, measured 0.9895"),
    ],
    ids=["checksum-mismatch", "corrupt-model", "wrong-shapes", "false-accuracy-claim"],
)
def test_a_bad_release_is_rejected_and_changes_nothing(world, caplog, make_bad, message: str) -> None:
    make_bad(world.releases)
    assert main(["--once"]) == 2
    assert message in caplog.text
    assert world.remote_version() == "1" and world.clone_is_clean()
    shutil.rmtree(world.releases / "model-v2")
    make_release(world.releases, 3)
    assert main(["--once"]) == 0 and world.remote_version() == "3"


def test_accuracy_gates(world, caplog, monkeypatch: pytest.MonkeyPatch) -> None:
    make_release(world.releases, 2)
    monkeypatch.setenv("MIN_ACCURACY", "0.999")
    assert main(["--once"]) == 2
    assert "below MIN_ACCURACY 0.9990" in caplog.text
    assert world.remote_version() == "1" and world.clone_is_clean()
    monkeypatch.setenv("MIN_ACCURACY", "0.985")
    assert main(["--once"]) == 0 and world.remote_version() == "2"


def test_signatures_are_required_when_a_public_key_is_set(world, caplog, monkeypatch: pytest.MonkeyPatch) -> None:
    private_pem, public = signing.generate()
    monkeypatch.setenv("MODEL_PUBLIC_KEY", public)
    folder = make_release(world.releases, 2)
    assert main(["--once"]) == 2
    assert "has no model.json.sig" in caplog.text
    other_pem, _ = signing.generate()
    (folder / signing.SIGNATURE_NAME).write_text(signing.sign((folder / MANIFEST_NAME).read_bytes(), other_pem))
    assert main(["--once"]) == 2
    assert "not a valid signature" in caplog.text
    assert world.remote_version() == "1" and world.clone_is_clean()
    (folder / signing.SIGNATURE_NAME).write_text(signing.sign((folder / MANIFEST_NAME).read_bytes(), private_pem))
    assert main(["--once"]) == 0 and world.remote_version() == "2"


def test_a_push_rejected_because_the_remote_moved_is_retried(world, monkeypatch: pytest.MonkeyPatch) -> None:
    make_release(world.releases, 2)
    other = world.tmp / "other"
    git(world.tmp, "clone", "--quiet", str(world.remote), str(other))
    commit_models = Clone.commit_models
    moved = []

    def commit_then_someone_pushes(self, message: str, *rest) -> bool:
        if not moved:  # between our fetch and our push, a teammate pushes
            (other / "README.md").write_text("edited meanwhile\n")
            git(other, "commit", "--quiet", "-am", "teammate's change")
            git(other, "push", "--quiet", "origin", "main")
            moved.append(True)
        return commit_models(self, message, *rest)

    monkeypatch.setattr(Clone, "commit_models", commit_then_someone_pushes)
    assert main(["--once"]) == 0
    assert world.remote_log()[:2] == ["model: v1 -> v2 (accuracy 98.95% -> 98.95%, +0.00 pt)", "teammate's change"]
    assert world.remote_version() == "2" and world.clone_is_clean()


def test_a_second_run_while_one_holds_the_lock(world, caplog) -> None:
    make_release(world.releases, 2)
    state = world.clone / ".git" / "digit-poller"
    state.mkdir(parents=True)
    with open(state / "lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        assert main(["--once"]) == 1
    assert "another poll holds" in caplog.text
    assert world.remote_version() == "1"
    assert main(["--once"]) == 0 and world.remote_version() == "2"


def test_a_crash_between_writing_and_committing(world, monkeypatch: pytest.MonkeyPatch) -> None:
    make_release(world.releases, 2)

    def crash(self, message: str, *rest) -> bool:
        raise KeyboardInterrupt  # the process is stopped mid-run

    monkeypatch.setattr(Clone, "commit_models", crash)
    with pytest.raises(KeyboardInterrupt):
        main(["--once"])
    assert world.clone_is_clean() and world.remote_version() == "1"
    monkeypatch.undo()
    monkeypatch.setenv("MODEL_SOURCE", f"dir:{world.releases}")
    monkeypatch.setenv("REPO_PATH", str(world.clone))
    for key, value in IDENTITY.items():
        monkeypatch.setenv(key, value)
    assert main(["--once"]) == 0 and world.remote_version() == "2"


def test_a_killed_run_leaves_nothing_the_next_run_trips_on(world) -> None:
    """SIGKILL leaves what it leaves: a half-written api/models and its journal; the next run puts it right.

    (The crash-point harness below kills real runs at every step; this is the leftover, written by hand.)
    """
    make_release(world.releases, 2)
    clone = clone_of(PollerConfig())  # the clone the poller itself would use
    clone.begin("install")  # what the run did before it started writing
    (world.clone / "api" / "models" / TFLITE_NAME).write_bytes(b"half a model")
    (world.clone / "api" / "models" / ".model.json.tmp-1").write_text("{")
    assert main(["--once"]) == 0
    assert world.remote_version() == "2" and world.clone_is_clean()


def test_pin_rollback_and_unpin(world) -> None:
    make_release(world.releases, 2)
    make_release(world.releases, 3)
    assert main(["--once"]) == 0 and world.remote_version() == "3"
    assert main(["rollback"]) == 0 and world.remote_version() == "2"
    assert main(["--once"]) == 0 and world.remote_version() == "2"  # pinned: the cron run stays
    assert main(["--pin", "3"]) == 0 and world.remote_version() == "3"
    assert main(["--pin", "7"]) == 1  # no such release
    assert main(["--unpin"]) == 0 and world.remote_version() == "3"
    assert world.clone_is_clean()


def test_bad_configuration_is_named(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setenv("MODEL_SOURCE", "ftp://models")
    monkeypatch.setenv("REPO_PATH", "/nowhere")
    assert main(["--once"]) == 1
    assert "MODEL_SOURCE" in caplog.text and "expected github:OWNER/REPO" in caplog.text


def test_a_running_api_picks_up_the_pushed_model(world, tmp_path: Path) -> None:
    """The deploy side in one machine: an API serving the clone's api/models reloads what was committed."""
    with running_api(world.clone / "api" / "models", tmp_path, {"RELOAD_INTERVAL": "0.2"}) as api:
        assert api.version() == "1"
        make_release(world.releases, 2)
        assert main(["--once"]) == 0
        api.wait_for_version("2", timeout=10)


def test_interval_mode_polls_until_sigterm_and_stops_cleanly(world, tmp_path: Path) -> None:
    import os
    import signal
    import sys
    import time

    make_release(world.releases, 2)
    log = tmp_path / "daemon.log"
    with open(log, "wb") as out:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "digit_poller", "--interval", "0.5"], env=dict(os.environ), stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 30
        while world.remote_version() != "2":
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)
        make_release(world.releases, 3)  # a later poll of the same daemon picks this up
        while world.remote_version() != "3":
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=15) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert "stopped" in log.read_text()
    assert world.clone_is_clean()


# --- what a review tried, kept as tests --------------------------------------------------------


def push_release_from_another_clone(world, version: int) -> None:
    other = world.tmp / f"other-{version}"
    git(world.tmp, "clone", "--quiet", str(world.remote), str(other))
    release = make_release(world.tmp / f"elsewhere-{version}", version)
    for name in (TFLITE_NAME, MANIFEST_NAME):
        shutil.copy(release / name, other / "api" / "models" / name)
    git(other, "commit", "--quiet", "-am", f"another poller: v{version}")
    git(other, "push", "--quiet", "origin", "main")


def test_a_retry_never_puts_an_older_model_over_a_newer_one(world, monkeypatch: pytest.MonkeyPatch) -> None:
    make_release(world.releases, 2)
    commit_models = Clone.commit_models
    raced = []

    def another_poller_pushes_v3_first(self, message: str, *rest) -> bool:
        if not raced:
            push_release_from_another_clone(world, 3)
            raced.append(True)
        return commit_models(self, message, *rest)

    monkeypatch.setattr(Clone, "commit_models", another_poller_pushes_v3_first)
    assert main(["--once"]) == 0
    assert world.remote_version() == "3" and world.remote_log()[0] == "another poller: v3"
    assert world.clone_is_clean()


def test_a_push_refused_by_a_hook_is_not_retried(world, caplog) -> None:
    hook = world.remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'models are frozen today' >&2\nexit 1\n")
    hook.chmod(0o755)
    make_release(world.releases, 2)
    assert main(["--once"]) == 1
    assert "attempt 1 of 3" in caplog.text and "the remote moved" not in caplog.text
    assert world.remote_version() == "1" and git(world.clone, "status", "--porcelain") == ""
    hook.unlink()
    assert main(["--once"]) == 0 and world.remote_version() == "2"


def test_a_stale_git_lock_from_a_killed_run_is_cleared(world) -> None:
    make_release(world.releases, 2)
    (world.clone / ".git" / "index.lock").write_text("")
    assert main(["--once"]) == 0 and world.remote_version() == "2" and world.clone_is_clean()


def test_someone_elses_work_in_the_clone_is_refused_and_left_alone(world, caplog) -> None:
    make_release(world.releases, 2)
    (world.clone / "README.md").write_text("my local edit\n")
    assert main(["--once"]) == 1
    assert "holds changes the poller did not make (README.md)" in caplog.text
    assert (world.clone / "README.md").read_text() == "my local edit\n"
    assert world.remote_version() == "1"


def test_a_dry_run_leaves_even_the_clone_alone(world) -> None:
    make_release(world.releases, 2)
    git(world.clone, "checkout", "--quiet", "-b", "topic")
    (world.clone / "api" / "models" / "NOTES.md").write_text("mine\n")
    assert main(["--once", "--dry-run"]) == 0
    assert git(world.clone, "rev-parse", "--abbrev-ref", "HEAD").strip() == "topic"
    assert (world.clone / "api" / "models" / "NOTES.md").read_text() == "mine\n"


def test_a_broken_model_in_service_is_replaced_by_a_good_release(world) -> None:
    other = world.tmp / "other"
    git(world.tmp, "clone", "--quiet", str(world.remote), str(other))
    write_release(other / "api" / "models", 1, tflite=b"garbage that the manifest vouches for")
    (other / "api" / "models" / "SHA256SUMS").unlink()
    git(other, "commit", "--quiet", "-am", "a broken model")
    git(other, "push", "--quiet", "origin", "main")
    make_release(world.releases, 2)
    assert main(["--once"]) == 0 and world.remote_version() == "2"


def test_a_refused_rollback_does_not_pin_and_a_corrupt_state_stops_the_poller(world, caplog) -> None:
    tamper(make_release(world.releases, 2))
    make_release(world.releases, 3)
    assert main(["--once"]) == 0 and world.remote_version() == "3"
    assert main(["rollback"]) == 2  # v2 is tampered with: refused
    make_release(world.releases, 4)
    assert main(["--once"]) == 0 and world.remote_version() == "4"  # not stuck on a pin to v2
    state = world.clone / ".git" / "digit-poller" / "state.json"
    state.write_text("{bad")
    make_release(world.releases, 5)
    assert main(["--once"]) == 1
    assert "state.json is unreadable" in caplog.text and world.remote_version() == "4"


def test_releases_with_links_or_missing_listed_files_are_refused(world, caplog) -> None:
    folder = make_release(world.releases, 2)
    (folder / TFLITE_NAME).unlink()
    (folder / TFLITE_NAME).symlink_to(SHIPPED / TFLITE_NAME)
    assert main(["--once"]) == 2  # what the release is, not a network fault: a rejection
    assert "a symbolic link" in caplog.text
    shutil.rmtree(folder)
    manifest = read_manifest(SHIPPED)
    files = {**manifest.files, "model.keras": manifest.files[TFLITE_NAME]}
    write_release(world.releases / "model-v2", 2)
    listed = read_manifest(world.releases / "model-v2").files
    folder = write_release(world.releases / "model-v2", 2, files={**listed, "model.keras": files["model.keras"]})
    assert main(["--once"]) == 2
    assert "model.keras: missing" in caplog.text
    assert world.remote_version() == "1" and not list((world.clone / ".git" / "digit-poller").glob("download*"))
