"""The poller on an operator's bad day: hostile servers, lost identities, others' work in the clone,
releases that change the model's interface, rate limits, and outcomes that must be told apart.

Each test names the defect of issue 10 it covers; the crash-point harness is test_crash_points.py.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from digit_poller.__main__ import main
from digit_poller.config import PollerConfig
from digit_poller.git import Clone, GitError
from digit_poller.poller import clone_of
from digit_release.manifest import MANIFEST_NAME, SUMS_NAME, TFLITE_NAME, read_manifest
from digit_testing.hostile_server import OWNER_REPO, HostileServer
from digit_testing.processes import running_api
from digit_testing.releases import SHIPPED, git, release_assets, write_release

from .test_poller import make_release

STATE = Path(".git") / "digit-poller" / "state.json"


def run_bounded(argv: list[str], limit: float = 60.0) -> int:
    """main(argv) in a thread; a run still going after `limit` seconds is a hang (and fails the test)."""
    outcome: list[int] = []
    worker = threading.Thread(target=lambda: outcome.append(main(argv)), daemon=True)
    worker.start()
    worker.join(limit)
    assert not worker.is_alive(), f"the poller was still running after {limit:.0f} s"
    return outcome[0]


def release_files(tmp: Path, version: int = 2, **changes) -> dict[str, bytes]:
    folder = write_release(tmp / f"built-{version}", version, **changes)
    return release_assets(folder)


def state_of(world) -> dict:
    path = world.clone / STATE
    return json.loads(path.read_text()) if path.exists() else {}


# --- 1. a staged release is never lost; the model in service comes from the remote -------------


def test_a_failure_between_add_and_commit_does_not_lose_the_release(world, monkeypatch, caplog) -> None:
    make_release(world.releases, 2)
    real_git = Clone.git

    def commit_fails(self, *args, check=True):
        if args[0] == "commit":  # as `Author identity unknown` does, after `git add` staged the model
            raise GitError("git commit failed: Author identity unknown")
        return real_git(self, *args, check=check)

    monkeypatch.setattr(Clone, "git", commit_fails)
    assert main(["--once"]) == 1
    monkeypatch.setattr(Clone, "git", real_git)
    # The index and the work tree are both back to HEAD: nothing staged pretends to be in service.
    assert git(world.clone, "status", "--porcelain") == ""
    caplog.clear()
    assert main(["--once", "--dry-run"]) == 0
    assert "would download, check and install the first that passes of model-v2" in caplog.text
    assert main(["--once"]) == 0
    assert world.remote_version() == "2" and world.clone_is_clean()


def test_a_host_without_any_git_identity_commits_as_the_poller(world, monkeypatch, tmp_path) -> None:
    home = tmp_path / "empty-home"
    home.mkdir()
    for key in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    make_release(world.releases, 2)
    assert main(["--once"]) == 0
    assert world.remote_version() == "2"
    author = git(world.remote, "log", "-1", "--format=%an <%ae>|%(trailers:key=Digit-Poller,valueonly)", "main")
    assert author.strip() == "digit-poller <digit-poller@localhost>|model-v2"
    monkeypatch.setenv("POLLER_GIT_NAME", "Model Bot")
    monkeypatch.setenv("POLLER_GIT_EMAIL", "models@example.org")
    make_release(world.releases, 3)
    assert main(["--once"]) == 0
    assert git(world.remote, "log", "-1", "--format=%an <%ae>", "main").strip() == "Model Bot <models@example.org>"


def test_the_model_in_service_is_what_the_remote_holds_not_the_index(world) -> None:
    """Someone staged v2 in the clone by hand: that is not in service, and it is not the poller's to keep."""
    make_release(world.releases, 2)
    write_release(world.clone / "api" / "models", 2)
    (world.clone / "api" / "models" / SUMS_NAME).unlink()
    git(world.clone, "add", "api/models")
    assert main(["--once", "--dry-run"]) == 0  # reads the remote: v1, so v2 would be installed
    assert main(["--once"]) == 1  # the staged change is someone's: refused, left as it was
    assert git(world.clone, "diff", "--cached", "--name-only").split() == ["api/models/model.json"]
    assert world.remote_version() == "1"


# --- 2. every network phase has a deadline, whatever the server does --------------------------


@pytest.fixture
def hostile(world, monkeypatch, tmp_path):
    with HostileServer(release_files(tmp_path)) as server:
        monkeypatch.setenv("MODEL_SOURCE", f"github:{OWNER_REPO}")
        monkeypatch.setenv("GITHUB_API_URL", server.api_url)
        monkeypatch.setenv("LIST_DEADLINE", "1.5")
        monkeypatch.setenv("DOWNLOAD_DEADLINE", "2")
        monkeypatch.setenv("HTTP_TIMEOUT", "0.5")
        yield server


# (where, mode, what the log says): each would hold a run for a minute or more without its deadline
TRANSIENT = [
    ("listing", "trickle-headers", "listing releases took more than 1.5 s"),
    ("listing", "stall", "ReadTimeout"),
    ("listing", "trickle-body", "listing releases took more than 1.5 s"),
    ("listing", "endless-body", "bytes for one page"),
    ("listing", "304-unconditional", "answered 304 to a request that was not conditional"),
    ("listing", "broken-gzip", "DecodingError"),
    ("asset", "trickle", "downloading model-v2 took more than 2 s"),
    ("asset", "stall-after-headers", "ReadTimeout"),
    ("asset", "redirect-loop", "more than 5 redirects"),
    ("asset", "short", "RemoteProtocolError"),
    ("asset", "long", "more bytes than the"),
    ("asset", "truncated-gzip", "truncated: got"),
    ("asset", "broken-gzip", "DecodingError"),
]


@pytest.mark.parametrize(("where", "mode", "said"), TRANSIENT, ids=[f"{w}-{m}" for w, m, _ in TRANSIENT])
def test_a_hostile_server_costs_one_bounded_run_and_nothing_else(world, hostile, caplog, where, mode, said) -> None:  # noqa: PLR0917
    setattr(hostile, where, mode)
    assert run_bounded(["--once"]) == 1  # a transient fault: the next run tries again
    assert said in caplog.text
    assert world.remote_version() == "1" and world.clone_is_clean()
    assert "rejected" not in state_of(world)  # nothing remembered against the release
    setattr(hostile, where, "ok")
    assert run_bounded(["--once"]) == 0
    assert world.remote_version() == "2" and world.clone_is_clean()


def test_an_asset_listed_over_the_cap_is_rejected_once_and_never_downloaded_again(world, hostile, caplog) -> None:
    hostile.listed_size = {TFLITE_NAME: 10**12}
    assert run_bounded(["--once"]) == 2
    assert "over the 67108864-byte cap" in caplog.text
    assert not [path for path in hostile.requests if "/assets/" in path]  # refused from the listing alone
    hostile.requests.clear()
    assert run_bounded(["--once"]) == 0  # remembered: nothing new to try
    assert "skipping model-v2: rejected" in caplog.text
    assert not [path for path in hostile.requests if "/assets/" in path]
    assert world.remote_version() == "1" and world.clone_is_clean()


# --- 3 and 5. the clone: the poller's own leftovers go, anyone else's work is refused ----------


def push_to_remote(world, files: dict[str, str], message: str) -> None:
    other = world.tmp / "teammate"
    if not other.exists():
        git(world.tmp, "clone", "--quiet", str(world.remote), str(other))
    git(other, "pull", "--quiet")
    for relative, text in files.items():
        (other / relative).parent.mkdir(parents=True, exist_ok=True)
        (other / relative).write_text(text)
    git(other, "add", ".")
    git(other, "commit", "--quiet", "-m", message)
    git(other, "push", "--quiet", "origin", "main")


def test_an_interrupted_sync_checkout_is_recovered_not_blamed_on_the_user(world) -> None:
    """What a kill in the middle of the sync's checkout leaves: HEAD and the index old, many new files untracked."""
    push_to_remote(world, {f"docs/page-{i}.md": f"page {i}\n" for i in range(300)}, "docs: 300 pages")
    make_release(world.releases, 2)
    clone = clone_of(PollerConfig())  # the clone the poller itself would use
    clone.fetch()
    clone.begin("sync")  # the journal the killed run wrote before its checkout
    git(world.clone, "checkout", "origin/main", "--", "docs")  # some of the incoming files, written...
    git(world.clone, "reset", "--quiet")  # ...but not yet in the index
    assert len(git(world.clone, "status", "--porcelain").splitlines()) == 1  # docs/ untracked
    assert main(["--once"]) == 0
    assert world.remote_version() == "2" and world.clone_is_clean()


def test_an_unpushed_commit_of_someone_else_is_refused_and_kept(world, caplog) -> None:
    (world.clone / "NOTES.md").write_text("my notes\n")
    git(world.clone, "add", "NOTES.md")
    git(world.clone, "commit", "--quiet", "-m", "my notes")
    mine = git(world.clone, "rev-parse", "HEAD").strip()
    assert main(["--once"]) == 1  # a "nothing new" run refuses too: it would have reset the commit away
    assert "1 commit(s) not on origin/main that the poller did not make" in caplog.text
    assert f"{mine[:10]} my notes" in caplog.text
    make_release(world.releases, 2)
    assert main(["--once", "--dry-run"]) == 0  # reads only
    assert main(["--once"]) == 1
    assert git(world.clone, "rev-parse", "HEAD").strip() == mine  # nothing touched
    assert world.remote_version() == "1"


def test_edits_inside_api_models_are_refused_and_kept(world, caplog) -> None:
    make_release(world.releases, 2)
    (world.clone / "api" / "models" / "NOTES.md").write_text("why v1 stays\n")
    assert main(["--once"]) == 1
    assert "holds changes the poller did not make (api/models/NOTES.md)" in caplog.text
    assert (world.clone / "api" / "models" / "NOTES.md").read_text() == "why v1 stays\n"


def test_the_pollers_own_unpushed_commit_is_dropped_without_fuss(world, caplog) -> None:
    make_release(world.releases, 2)
    write_release(world.clone / "api" / "models", 2)
    (world.clone / "api" / "models" / SUMS_NAME).unlink()
    git(world.clone, "commit", "--quiet", "-am", "model: v1 -> v2\n\nDigit-Poller: model-v2")  # a push that failed
    assert main(["--once"]) == 0
    assert "dropping 1 unpushed commit(s) of an earlier run of the poller" in caplog.text
    assert world.remote_version() == "2" and world.clone_is_clean()
    assert len(world.remote_log()) == 2  # the release once, not twice


# --- 4 and 6. the model's interface, and manifests that do not hold together -----------------


@pytest.fixture(scope="session")
def three_class_release(tmp_path_factory) -> Path:
    """A real 3-class model (digits 0, 1, 7), trained by this repository's pipeline in a few seconds."""
    pytest.importorskip("tensorflow", reason="the training requirements (make setup) build the 3-class model")
    root = tmp_path_factory.mktemp("three-class")
    params = root / "params.yaml"
    params.write_text(
        "epochs: 3\nbatch_size: 64\nlearning_rate: 0.002\nseed: 7\nnumbers: [0, 1, 7]\naugmentation:\n  enabled: false\n"
    )
    out = root / "model-v2"
    train = [sys.executable, "-m", "digit_training", "--params", str(params), "--out", str(out), "--version", "2"]
    done = subprocess.run(
        [*train, "--no-report", "--quiet"],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_a_model_with_other_labels_is_refused_unless_allowed(world, three_class_release, caplog, monkeypatch) -> None:
    import shutil

    shutil.copytree(three_class_release, world.releases / "model-v2")
    manifest = read_manifest(three_class_release)
    assert manifest.label_list() == ["0", "1", "7"] and manifest.metrics.accuracy > 0.985
    assert main(["--once"]) == 2
    assert "interface: differs from the model in service (labels" in caplog.text
    assert "ALLOW_INTERFACE_CHANGE=true" in caplog.text
    assert world.remote_version() == "1"

    monkeypatch.setenv("ALLOW_INTERFACE_CHANGE", "true")  # a new policy: the remembered verdict lapses
    with running_api(world.clone / "api" / "models", world.tmp, {"RELOAD_INTERVAL": "0.2"}) as api:
        assert main(["--once"]) == 0
        assert world.remote_version() == "2"
        assert "on the 659 held-out digits of 0, 1, 7" in caplog.text
        api.wait_for_version("2")
        answer = httpx.post(f"{api.url}/predict", json={"pixels": seven()}).json()
        assert answer["prediction"] == 7 and len(answer["probabilities"]) == 3
        assert httpx.get(f"{api.url}/model").json()["labels"] == {"0": "0", "1": "1", "2": "7"}


def seven() -> list[int]:
    from digit_training.data import load_bundled

    data = load_bundled()
    return data.x_test[data.y_test == 7][0].reshape(-1).tolist()


def relabelled(labels: dict[str, str]) -> dict:
    shipped = read_manifest(SHIPPED)
    names = [labels[str(i)] for i in range(len(labels))]
    return {
        "labels": labels,
        "metrics": shipped.metrics.model_copy(
            update={"per_class_accuracy": dict(zip(names, shipped.metrics.per_class_accuracy.values(), strict=True))}
        ),
    }


def shipped_metrics_with(**changes: object) -> dict:
    return {"metrics": {**read_manifest(SHIPPED).metrics.model_dump(mode="json"), **changes}}


def negative_count() -> list[list[int]]:
    rows = read_manifest(SHIPPED).metrics.confusion_matrix
    return [[-1, *row[1:]] if i == 0 else row for i, row in enumerate(rows)]


BAD_MANIFESTS = [
    ("negative-label", lambda: relabelled({**read_manifest(SHIPPED).labels, "9": "-1"}), "digits 0-9 of the data set"),
    ("non-digit-label", lambda: relabelled({**read_manifest(SHIPPED).labels, "3": "three"}), "digits 0-9"),
    ("repeated-label", lambda: relabelled({**read_manifest(SHIPPED).labels, "9": "8"}), "must not repeat a digit"),
    (
        "label-index-out-of-range",
        lambda: {"labels": {**{k: v for k, v in read_manifest(SHIPPED).labels.items() if k != "9"}, "10": "9"}},
        "labels must map every class index 0..9",
    ),
    ("negative-count", lambda: shipped_metrics_with(confusion_matrix=negative_count()), "greater than or equal to 0"),
    (
        "infinite-class-accuracy",
        lambda: shipped_metrics_with(
            per_class_accuracy={**read_manifest(SHIPPED).metrics.per_class_accuracy, "3": 1e999}
        ),
        "per_class_accuracy",
    ),
    (
        "input-shape-disagrees",
        lambda: {"input": read_manifest(SHIPPED).input.model_copy(update={"shape": (28, 28, 3)})},
        "model input is float32[28, 28, 1], manifest says float32[28, 28, 3]",
    ),
]


@pytest.mark.parametrize(("case", "change", "said"), BAD_MANIFESTS, ids=[c for c, _, _ in BAD_MANIFESTS])
def test_a_malformed_manifest_is_a_rejection_named_not_a_crash(world, caplog, case, change, said) -> None:
    folder = world.releases / "model-v2"
    write_release(folder, 2)
    # Written as a release author could: the JSON edited after the fact, checksums made to match.
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    manifest.update(json.loads(json.dumps({k: _plain(v) for k, v in change().items()})))
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    (folder / SUMS_NAME).unlink()
    assert main(["--once"]) == 2
    assert said in caplog.text
    assert "Traceback" not in caplog.text
    assert world.remote_version() == "1" and world.clone_is_clean()
    assert "model-v2" in state_of(world)["rejected"]


def _plain(value):
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


# --- 7. no credential-bearing part of a URL reaches the log, at any level -----------------------


def test_no_credential_reaches_the_cron_log_even_at_debug(world, github_server, tmp_path) -> None:
    token = "ghp_secretTokenInTheEnvironment0123"  # noqa: S105
    url_password = "pw-in-the-api-url-4711"  # noqa: S105
    github_server.require_token = None
    folder = make_release(tmp_path / "built", 2)
    github_server.add_release("model-v2", release_assets(folder))
    api_url = github_server.api_url.replace("http://", f"http://x-access-token:{url_password}@")
    env = {
        **os.environ,
        "MODEL_SOURCE": f"github:{github_server.repo}",
        "GITHUB_API_URL": api_url,
        "GITHUB_TOKEN": token,
    }
    done = subprocess.run(
        [sys.executable, "-m", "digit_poller", "--once", "--log-level", "DEBUG"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    assert world.remote_version() == "2"
    assert "X-Amz-Signature" not in log and "X-Amz-Credential" not in log  # the pre-signed storage URL
    assert url_password not in log and token not in log
    assert "HTTP Request" in log and "/download/" in log  # httpx did log the requests, redacted


# --- 8. a rate limit is honoured across runs, cron's and the daemon's ---------------------------


def test_a_rate_limit_stops_every_poll_until_the_time_given(world, github_server, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("MODEL_SOURCE", f"github:{github_server.repo}")
    monkeypatch.setenv("GITHUB_API_URL", github_server.api_url)
    github_server.rate_limited(reset_in_seconds=3000)
    assert main(["--once"]) == 1
    assert state_of(world)["not_before"][f"github:{github_server.repo}"] > time.time() + 2900
    github_server.clear_requests()
    for _ in range(3):
        assert main(["--once"]) == 0  # cron runs: waiting as asked is no error
    log = tmp_path / "daemon.log"
    with open(log, "wb") as out:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "digit_poller", "--interval", "0.3"], env=dict(os.environ), stdout=out, stderr=out
        )
    time.sleep(4)
    daemon.terminate()
    assert daemon.wait(timeout=15) == 0
    assert github_server.exchanges == []  # not one request in all those polls
    assert "rate limited" not in log.read_text()  # said once, by the run that was limited


# --- 9. outcomes: a rejection is remembered and does not hide the next best ---------------------


def test_a_rejected_top_release_does_not_hide_a_good_lower_one(world, caplog) -> None:
    make_release(world.releases, 11)
    bad = make_release(world.releases, 50)
    data = bytearray((bad / TFLITE_NAME).read_bytes())
    data[500] ^= 1
    (bad / TFLITE_NAME).write_bytes(bytes(data))
    assert main(["--once"]) == 2  # v50 rejected, and said so; v11 went in within the same run
    assert world.remote_version() == "11"
    caplog.clear()
    assert main(["--once"]) == 0
    assert "skipping model-v50: rejected" in caplog.text and "integrity" in caplog.text
    # Re-published (new bytes): the verdict lapses and the release is judged again.
    write_release(bad, 50)
    assert main(["--once"]) == 0 and world.remote_version() == "50"


def test_cron_env_template_and_readme_name_the_identity_settings() -> None:
    """10. A host without git identity is documented: the settings and their defaults."""
    root = Path(__file__).resolve().parents[2]
    installer = (root / "automation" / "install_cron.sh").read_text()
    readme = (root / "README.md").read_text()
    for text in (installer, readme):
        assert "POLLER_GIT_NAME" in text and "POLLER_GIT_EMAIL" in text


def test_another_input_spec_is_an_interface_change_refused_by_default(world, caplog, monkeypatch) -> None:
    """A model that agrees with its own manifest, but wants its pixels in 0..1: clients would break."""
    write_release(
        world.releases / "model-v2", 2, input=read_manifest(SHIPPED).input.model_copy(update={"range": (0, 1)})
    )
    assert main(["--once"]) == 2
    assert "interface: differs from the model in service (input" in caplog.text
    assert world.remote_version() == "1"
    monkeypatch.setenv("ALLOW_INTERFACE_CHANGE", "true")
    assert main(["--once"]) == 0 and world.remote_version() == "2"


def test_a_304_to_an_unconditional_request_never_revives_a_stored_listing(tmp_path) -> None:
    from digit_poller.sources import SourceError
    from digit_poller.sources.github import GitHubSource

    with HostileServer(release_files(tmp_path)) as server:
        source = GitHubSource(OWNER_REPO, api_url=server.api_url, state_dir=tmp_path / "state")
        assert [r.tag for r in source.releases()] == ["model-v2"]  # stored, but without an ETag
        server.listing = "304-unconditional"
        fresh = GitHubSource(OWNER_REPO, api_url=server.api_url, state_dir=tmp_path / "state")
        with pytest.raises(SourceError, match="304 to a request that was not conditional"):
            fresh.releases()


# --- what an outside review found, kept as tests -----------------------------------------------


def test_a_token_with_a_stray_carriage_return_works_and_never_shows(world, github_server, tmp_path) -> None:
    token = "ghp_windowsLineEnding0123456789"  # noqa: S105
    github_server.require_token = token
    folder = make_release(tmp_path / "built", 2)
    github_server.add_release("model-v2", release_assets(folder))
    env = {**os.environ, "MODEL_SOURCE": f"github:{github_server.repo}", "GITHUB_API_URL": github_server.api_url}
    run = [sys.executable, "-m", "digit_poller", "--once", "--log-level", "DEBUG"]
    done = subprocess.run(
        run, env={**env, "GITHUB_TOKEN": token + "\r"}, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert world.remote_version() == "2" and token not in done.stdout + done.stderr
    broken = subprocess.run(
        run,
        env={**env, "GITHUB_TOKEN": "ghp_first\nghp_second"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert broken.returncode == 1
    assert "GITHUB_TOKEN" in broken.stderr and "ghp_first" not in broken.stderr and "ghp_second" not in broken.stderr


def stalled_http_remote(world) -> None:
    """origin becomes an HTTP server that accepts connections and never answers (a hung git host)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    world.stalled = listener  # kept open (and never accepted from) for the test's length
    git(world.clone, "remote", "set-url", "origin", f"http://127.0.0.1:{listener.getsockname()[1]}/repo.git")


def test_a_hung_git_remote_costs_one_bounded_run(world, monkeypatch, caplog) -> None:
    monkeypatch.setattr("digit_poller.git.GIT_TIMEOUT_SECONDS", 3)
    stalled_http_remote(world)
    assert run_bounded(["--once"], limit=60) == 1
    assert "git fetch took more than 3 s: stopped" in caplog.text
    world.stalled.close()


def test_a_push_hung_in_the_remote_s_hook_costs_one_bounded_run(world, monkeypatch, caplog) -> None:
    monkeypatch.setattr("digit_poller.git.GIT_TIMEOUT_SECONDS", 3)
    hook = world.remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\nsleep 600\n")
    hook.chmod(0o755)
    make_release(world.releases, 2)
    assert run_bounded(["--once"], limit=60) == 1
    assert "git push took more than 3 s: stopped" in caplog.text
    hook.unlink()
    assert main(["--once"]) == 0 and world.remote_version() == "2" and world.clone_is_clean()


def test_work_done_in_the_clone_after_a_killed_run_is_refused_and_kept(world, caplog) -> None:
    make_release(world.releases, 2)
    clone = clone_of(PollerConfig())  # the clone the poller itself would use
    clone.begin("install")  # a run was killed while it installed a release
    (world.clone / "NOTES.md").write_text("alice's notes\n")
    git(world.clone, "add", "NOTES.md")
    git(world.clone, "-c", "user.name=alice", "-c", "user.email=a@example.invalid", "commit", "-qm", "alice: fix")
    (world.clone / "README.md").write_text("alice's edit, not committed yet\n")
    alice = git(world.clone, "rev-parse", "HEAD").strip()
    assert main(["--once"]) == 1
    assert "has since gained work the poller did not do" in caplog.text and "alice: fix" in caplog.text
    assert git(world.clone, "rev-parse", "HEAD").strip() == alice
    assert (world.clone / "README.md").read_text() == "alice's edit, not committed yet\n"
    assert world.remote_version() == "1"


@pytest.mark.parametrize(
    ("headers", "longest"),
    [({"retry-after": "inf"}, 3600), ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "99999999999999"}, 3600)],
    ids=["retry-after-inf", "reset-in-milliseconds"],
)
def test_a_rate_limit_wait_is_bounded_and_belongs_to_its_source(
    world, github_server, monkeypatch, headers, longest
) -> None:
    monkeypatch.setenv("MODEL_SOURCE", f"github:{github_server.repo}")
    monkeypatch.setenv("GITHUB_API_URL", github_server.api_url)
    github_server.fail_next(429, headers=headers)
    assert main(["--once"]) == 1
    [until] = state_of(world)["not_before"].values()
    assert time.time() < until <= time.time() + longest
    # Another source is not held up by that one's wait.
    monkeypatch.setenv("MODEL_SOURCE", f"dir:{world.releases}")
    make_release(world.releases, 2)
    assert main(["--once"]) == 0 and world.remote_version() == "2"


def test_bytes_that_are_not_text_in_a_release_are_a_rejection_and_the_next_best_goes_in(
    world, caplog, monkeypatch
) -> None:
    make_release(world.releases, 2)
    bad_sums = make_release(world.releases, 3)
    (bad_sums / SUMS_NAME).write_bytes(b"\xff\xfe not text")
    assert main(["--once"]) == 2
    assert "SHA256SUMS is not UTF-8 text" in caplog.text and "Traceback" not in caplog.text
    assert world.remote_version() == "2"
    from digit_release import signing

    _private, public = signing.generate()
    monkeypatch.setenv("MODEL_PUBLIC_KEY", public)
    bad_signature = make_release(world.releases, 4)
    (bad_signature / "model.json.sig").write_bytes(b"\xff\xfe\x00")
    assert main(["--once"]) == 2
    assert "model.json.sig is not base64 text" in caplog.text


def test_a_public_key_that_cannot_be_read_is_a_configuration_error(world, caplog, monkeypatch) -> None:
    make_release(world.releases, 2)
    monkeypatch.setenv("MODEL_PUBLIC_KEY", "not-a-key")
    assert main(["--once"]) == 1
    assert "MODEL_PUBLIC_KEY" in caplog.text and "rejected" not in caplog.text
    assert "rejected" not in state_of(world)


def test_a_name_server_that_never_answers_costs_one_bounded_run(world, monkeypatch, caplog) -> None:
    monkeypatch.setattr("digit_poller.poller.NETWORK_GRACE_SECONDS", 1.0)
    never = threading.Event()
    real = socket.getaddrinfo

    def silent(host, *args, **kwargs):
        if host == "releases.slow-dns.invalid":
            never.wait(60)  # getaddrinfo cannot be interrupted: only the caller can stop waiting
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", silent)
    monkeypatch.setenv("MODEL_SOURCE", f"github:{OWNER_REPO}")
    monkeypatch.setenv("GITHUB_API_URL", "http://releases.slow-dns.invalid:9")
    monkeypatch.setenv("LIST_DEADLINE", "1")
    try:
        assert run_bounded(["--once"], limit=30) == 1
        assert "listing releases: no answer within 2 s" in caplog.text
    finally:
        never.set()


def test_commits_a_force_push_took_away_are_dropped_not_refused(world, caplog) -> None:
    push_to_remote(world, {"LEAKED.txt": "a secret\n"}, "oops: a secret")
    assert main(["--once"]) == 0  # the clone takes the teammate's commit
    teammate = world.tmp / "teammate"
    git(teammate, "reset", "--quiet", "--hard", "HEAD~1")
    git(teammate, "push", "--quiet", "--force", "origin", "main")
    make_release(world.releases, 2)
    assert main(["--once"]) == 0
    assert "the branch was rewritten upstream (a force push)" in caplog.text
    assert world.remote_version() == "2" and world.clone_is_clean()
    assert "oops: a secret" not in world.remote_log()


@pytest.mark.parametrize("where", ["asset-url", "deep-listing"])
def test_urls_and_json_no_client_can_read_are_named_not_tracebacks(world, hostile, caplog, tmp_path, where) -> None:
    if where == "asset-url":
        hostile.asset_url = {TFLITE_NAME: "http://[::1"}
        assert run_bounded(["--once"]) == 2  # that release's asset: a rejection, remembered
        assert "is not a URL" in caplog.text
    else:
        hostile.listing = "deep-json"
        assert run_bounded(["--once"]) == 1  # the listing: a transient fault
        assert "did not answer JSON a client can read" in caplog.text
    assert "Traceback" not in caplog.text and world.clone_is_clean()


def test_a_relative_redirect_s_signed_query_stays_out_of_the_debug_log(world, hostile) -> None:
    from digit_testing.hostile_server import SIGNED_QUERY

    hostile.asset = "relative-redirect"
    env = {**os.environ, "MODEL_SOURCE": f"github:{OWNER_REPO}", "GITHUB_API_URL": hostile.api_url}
    done = subprocess.run(
        [sys.executable, "-m", "digit_poller", "--once", "--log-level", "DEBUG"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    log = done.stdout + done.stderr
    assert "/storage/" in log  # the redirect was logged...
    assert "X-Amz-Signature" not in log and "0123456789abcdefsecret" not in log and SIGNED_QUERY not in log


def test_what_a_killed_run_downloaded_goes_at_the_next_start(world) -> None:
    leftover = world.clone / ".git" / "digit-poller" / "download"
    leftover.mkdir(parents=True)
    (leftover / ".model.tflite.x.part").write_bytes(b"half a download")
    assert main(["--once"]) == 0  # nothing new
    assert not leftover.exists()


def test_a_partial_commit_s_lock_left_by_a_kill_is_cleared(world) -> None:
    make_release(world.releases, 2)
    clone = clone_of(PollerConfig())  # the clone the poller itself would use
    clone.begin("install")
    lock = world.clone / ".git" / "next-index-4242.lock"
    lock.write_bytes(b"")
    assert main(["--once"]) == 0 and world.remote_version() == "2" and world.clone_is_clean()
    assert not lock.exists()


def test_a_branch_someone_checked_out_is_refused_not_switched(world, caplog) -> None:
    git(world.clone, "checkout", "--quiet", "-b", "feature")
    make_release(world.releases, 2)
    assert main(["--once"]) == 1
    assert "has branch feature checked out" in caplog.text
    assert git(world.clone, "symbolic-ref", "--short", "HEAD").strip() == "feature"
