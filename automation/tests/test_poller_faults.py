"""The poller on an operator's bad day: hostile servers, lost identities, others' work in the clone,
releases that change the model's interface, rate limits, and outcomes that must be told apart.

Each test names the defect of issue 10 it covers; the crash-point harness is test_crash_points.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from digit_api.manifest import MANIFEST_NAME, SUMS_NAME, TFLITE_NAME, read_manifest
from digit_poller.__main__ import main
from digit_poller.git import Clone, GitError, Identity

from .hostile_server import OWNER_REPO, HostileServer
from .releases import SHIPPED, git, write_release
from .test_poller import make_release, world  # noqa: F401  (the fixture, shared)

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
    return {name: (folder / name).read_bytes() for name in (TFLITE_NAME, MANIFEST_NAME, SUMS_NAME)}


def state_of(world) -> dict:  # noqa: F811
    path = world.clone / STATE
    return json.loads(path.read_text()) if path.exists() else {}


# --- 1. a staged release is never lost; the model in service comes from the remote -------------


def test_a_failure_between_add_and_commit_does_not_lose_the_release(world, monkeypatch, caplog) -> None:  # noqa: F811
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


def test_a_host_without_any_git_identity_commits_as_the_poller(world, monkeypatch, tmp_path) -> None:  # noqa: F811
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


def test_the_model_in_service_is_what_the_remote_holds_not_the_index(world) -> None:  # noqa: F811
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
def hostile(world, monkeypatch, tmp_path):  # noqa: F811
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
def test_a_hostile_server_costs_one_bounded_run_and_nothing_else(world, hostile, caplog, where, mode, said) -> None:  # noqa: F811, PLR0917
    setattr(hostile, where, mode)
    assert run_bounded(["--once"]) == 1  # a transient fault: the next run tries again
    assert said in caplog.text
    assert world.remote_version() == "1" and world.clone_is_clean()
    assert "rejected" not in state_of(world)  # nothing remembered against the release
    setattr(hostile, where, "ok")
    assert run_bounded(["--once"]) == 0
    assert world.remote_version() == "2" and world.clone_is_clean()


def test_an_asset_listed_over_the_cap_is_rejected_once_and_never_downloaded_again(world, hostile, caplog) -> None:  # noqa: F811
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


def push_to_remote(world, files: dict[str, str], message: str) -> None:  # noqa: F811
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


def test_an_interrupted_sync_checkout_is_recovered_not_blamed_on_the_user(world) -> None:  # noqa: F811
    """What a kill in the middle of the sync's checkout leaves: HEAD and the index old, many new files untracked."""
    push_to_remote(world, {f"docs/page-{i}.md": f"page {i}\n" for i in range(300)}, "docs: 300 pages")
    make_release(world.releases, 2)
    clone = Clone(world.clone, "origin", "main", world.clone / ".git" / "digit-poller", _identity())
    clone.fetch()
    clone.begin("sync")  # the journal the killed run wrote before its checkout
    git(world.clone, "checkout", "origin/main", "--", "docs")  # some of the incoming files, written...
    git(world.clone, "reset", "--quiet")  # ...but not yet in the index
    assert len(git(world.clone, "status", "--porcelain").splitlines()) == 1  # docs/ untracked
    assert main(["--once"]) == 0
    assert world.remote_version() == "2" and world.clone_is_clean()


def test_an_unpushed_commit_of_someone_else_is_refused_and_kept(world, caplog) -> None:  # noqa: F811
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


def test_edits_inside_api_models_are_refused_and_kept(world, caplog) -> None:  # noqa: F811
    make_release(world.releases, 2)
    (world.clone / "api" / "models" / "NOTES.md").write_text("why v1 stays\n")
    assert main(["--once"]) == 1
    assert "holds changes the poller did not make (api/models/NOTES.md)" in caplog.text
    assert (world.clone / "api" / "models" / "NOTES.md").read_text() == "why v1 stays\n"


def test_the_pollers_own_unpushed_commit_is_dropped_without_fuss(world, caplog) -> None:  # noqa: F811
    make_release(world.releases, 2)
    write_release(world.clone / "api" / "models", 2)
    (world.clone / "api" / "models" / SUMS_NAME).unlink()
    git(world.clone, "commit", "--quiet", "-am", "model: v1 -> v2\n\nDigit-Poller: model-v2")  # a push that failed
    assert main(["--once"]) == 0
    assert "dropping 1 unpushed commit(s) of an earlier run of the poller" in caplog.text
    assert world.remote_version() == "2" and world.clone_is_clean()
    assert len(world.remote_log()) == 2  # the release once, not twice


def _identity() -> Identity:
    return Identity("t", "t@example.invalid")


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


def test_a_model_with_other_labels_is_refused_unless_allowed(world, three_class_release, caplog, monkeypatch) -> None:  # noqa: F811
    import shutil

    shutil.copytree(three_class_release, world.releases / "model-v2")
    manifest = read_manifest(three_class_release)
    assert manifest.label_list() == ["0", "1", "7"] and manifest.metrics.accuracy > 0.985
    assert main(["--once"]) == 2
    assert "interface: differs from the model in service (labels" in caplog.text
    assert "ALLOW_INTERFACE_CHANGE=true" in caplog.text
    assert world.remote_version() == "1"

    monkeypatch.setenv("ALLOW_INTERFACE_CHANGE", "true")  # a new policy: the remembered verdict lapses
    with serving(world.clone / "api" / "models") as api:
        assert main(["--once"]) == 0
        assert world.remote_version() == "2"
        assert "on the 659 held-out digits of 0, 1, 7" in caplog.text
        answer = api.wait_for_version("2").post("/predict", json={"pixels": seven()}).json()
        assert answer["prediction"] == 7 and len(answer["probabilities"]) == 3
        assert api.client.get("/model").json()["labels"] == {"0": "0", "1": "1", "2": "7"}


def seven() -> list[int]:
    from digit_training.data import load_bundled

    data = load_bundled()
    return data.x_test[data.y_test == 7][0].reshape(-1).tolist()


class serving:
    """The API serving a folder, hot-reloading it, for the length of a `with`."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir

    def __enter__(self):
        import socket

        import httpx

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {**os.environ, "PORT": str(port), "MODEL_DIR": str(self.model_dir), "RELOAD_INTERVAL": "0.2"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "digit_api"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5)
        self.wait_for_version("1")
        return self

    def wait_for_version(self, version: str):
        import httpx

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if self.client.get("/readyz").json().get("model_version") == version:
                    return self.client
            except (httpx.TransportError, ValueError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"the API never served v{version}")

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(timeout=10)


def relabelled(labels: dict[str, str]) -> dict:
    shipped = read_manifest(SHIPPED)
    names = [labels[str(i)] for i in range(len(labels))]
    return {
        "labels": labels,
        "metrics": shipped.metrics.model_copy(
            update={"per_class_accuracy": dict(zip(names, shipped.metrics.per_class_accuracy.values(), strict=True))}
        ),
    }


BAD_MANIFESTS = [
    ("negative-label", lambda: relabelled({**read_manifest(SHIPPED).labels, "9": "-1"}), "digits 0-9 of the data set"),
    ("non-digit-label", lambda: relabelled({**read_manifest(SHIPPED).labels, "3": "three"}), "digits 0-9"),
    ("repeated-label", lambda: relabelled({**read_manifest(SHIPPED).labels, "9": "8"}), "must not repeat a digit"),
    (
        "label-index-out-of-range",
        lambda: {"labels": {**{k: v for k, v in read_manifest(SHIPPED).labels.items() if k != "9"}, "10": "9"}},
        "labels must map every class index 0..9",
    ),
    (
        "input-shape-disagrees",
        lambda: {"input": read_manifest(SHIPPED).input.model_copy(update={"shape": (28, 28, 3)})},
        "model input is float32[28, 28, 1], manifest says float32[28, 28, 3]",
    ),
]


@pytest.mark.parametrize(("case", "change", "said"), BAD_MANIFESTS, ids=[c for c, _, _ in BAD_MANIFESTS])
def test_a_malformed_manifest_is_a_rejection_named_not_a_crash(world, caplog, case, change, said) -> None:  # noqa: F811
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


def test_no_credential_reaches_the_cron_log_even_at_debug(world, github_server, tmp_path) -> None:  # noqa: F811
    token = "ghp_secretTokenInTheEnvironment0123"  # noqa: S105
    url_password = "pw-in-the-api-url-4711"  # noqa: S105
    github_server.require_token = None
    folder = make_release(tmp_path / "built", 2)
    github_server.add_release(
        "model-v2", {n: (folder / n).read_bytes() for n in (TFLITE_NAME, MANIFEST_NAME, SUMS_NAME)}
    )
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


def test_a_rate_limit_stops_every_poll_until_the_time_given(world, github_server, monkeypatch, tmp_path) -> None:  # noqa: F811
    monkeypatch.setenv("MODEL_SOURCE", f"github:{github_server.repo}")
    monkeypatch.setenv("GITHUB_API_URL", github_server.api_url)
    github_server.rate_limited(reset_in_seconds=3000)
    assert main(["--once"]) == 1
    assert state_of(world)["not_before"] > time.time() + 2900
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


def test_a_rejected_top_release_does_not_hide_a_good_lower_one(world, caplog) -> None:  # noqa: F811
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


def test_another_input_spec_is_an_interface_change_refused_by_default(world, caplog, monkeypatch) -> None:  # noqa: F811
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
