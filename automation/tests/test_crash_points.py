"""The crash-point harness: SIGKILL a full update at every step where the poller writes, then check
that the next run converges.

The steps are not listed here. A first run records every step the code marks (digit_poller's
`crashpoints.reached`: each git command that changes something, before and while it runs; each
downloaded file, mid-transfer and done; each file written into api/models), so a step added to
the code is covered without editing this test. Then, for each step K, a fresh copy of the world,
a run killed (its whole process group, git included) on reaching step K, and a normal run after.

The world: a bare remote whose main has moved on since the poller's clone last synced (a teammate
pushed FILES files, checked out through a filter that spawns a process per file, so the sync's
checkout takes long enough to be cut in the middle), and the GitHub stand-in publishing model-v2.
The remote runs git-receive-pack in a session of its own, as a server would: killing the poller
does not kill the remote's side of a push.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from digit_poller.crashpoints import KILL_AT, STEP_LOG
from digit_release.manifest import MANIFEST_NAME, TFLITE_NAME, parse_manifest, sha256_file
from digit_testing.github_server import GitHubServer
from digit_testing.releases import IDENTITY, git, make_world, release_assets, write_release

FILES = 400
TOKEN = "ghp_crash_harness"  # noqa: S105 (authenticated, as deployed: 60 anonymous requests an hour would run out)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    built = write_release(tmp_path_factory.mktemp("release") / "model-v2", 2)
    with GitHubServer() as github:
        github.require_token = TOKEN
        github.add_release("model-v2", release_assets(built))
        yield github


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("world")
    remote, clone = make_world(root)
    teammate = root / "teammate"
    git(root, "clone", "--quiet", str(remote), str(teammate))
    (teammate / ".gitattributes").write_text("docs/** filter=slow\n")
    (teammate / "docs").mkdir()
    for i in range(FILES):
        (teammate / "docs" / f"page-{i}.md").write_text(f"page {i}\n")
    git(teammate, "add", ".")
    git(teammate, "-c", "user.name=teammate", "-c", "user.email=t@example.invalid", "commit", "-qm", "docs: pages")
    git(teammate, "push", "--quiet", "origin", "main")
    shutil.rmtree(teammate)
    git(clone, "config", "filter.slow.smudge", "cat")  # a process per file: a checkout that takes a while
    git(clone, "config", "filter.slow.clean", "cat")
    git(clone, "config", "remote.origin.receivepack", "setsid git-receive-pack")
    shutil.rmtree(root / "seed")
    return root


def fresh_world(template: Path, where: Path) -> tuple[Path, Path]:
    shutil.copytree(template, where, symlinks=True)
    remote, clone = where / "remote.git", where / "clone"
    git(clone, "remote", "set-url", "origin", str(remote))
    return remote, clone


def run_poller(clone: Path, server: GitHubServer, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **IDENTITY,
        "MODEL_SOURCE": f"github:{server.repo}",
        "GITHUB_API_URL": server.api_url,
        "GITHUB_TOKEN": TOKEN,
        "REPO_PATH": str(clone),
        "MIN_ACCURACY": "0.985",
        **extra,
    }
    for name in (STEP_LOG, KILL_AT):
        if name not in extra:
            env.pop(name, None)
    # A session of its own: the kill takes the poller's process group, never pytest.
    return subprocess.run(
        [sys.executable, "-m", "digit_poller", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        start_new_session=True,
        check=False,
    )


def problems_after(remote: Path, clone: Path) -> list[str]:
    """What is wrong once the run after the kill has finished; empty when it converged."""
    found = []
    manifest = json.loads(git(remote, "show", f"main:api/models/{MANIFEST_NAME}"))
    if manifest["version"] != "2":
        found.append(f"the remote serves v{manifest['version']}, not v2")
    landed = git(remote, "log", "--format=%(trailers:key=Digit-Poller,valueonly)", "main").split()
    if landed.count("model-v2") != 1:
        found.append(f"model-v2 landed {landed.count('model-v2')} times")
    if git(clone, "status", "--porcelain", "--untracked-files=all"):
        found.append("the clone is not clean")
    if git(clone, "rev-parse", "HEAD") != git(remote, "rev-parse", "main"):
        found.append("the clone is not at the remote's main")
    if (clone / ".git" / "digit-poller" / "operation.json").exists():
        found.append("a journal is left")
    if git(remote, "log", "--format=%s", "main").count("docs: pages") != 1:
        found.append("the teammate's commit is lost")
    for commit in git(remote, "rev-list", "main").split():
        held = parse_manifest(git(remote, "show", f"{commit}:api/models/{MANIFEST_NAME}"))
        model = remote.parent / "check.tflite"
        model.write_bytes(subprocess.run(
            ["git", "-C", str(remote), "cat-file", "blob", f"{commit}:api/models/{TFLITE_NAME}"],
            capture_output=True, check=True,
        ).stdout)  # fmt: skip
        if sha256_file(model) != held.files[TFLITE_NAME].sha256:
            found.append(f"commit {commit[:10]} holds a model its manifest does not describe")
    return found


def test_a_kill_at_any_step_is_put_right_by_the_next_run(template: Path, server: GitHubServer, tmp_path: Path) -> None:
    steps_file = tmp_path / "steps"
    remote, clone = fresh_world(template, tmp_path / "record")
    recorded = run_poller(clone, server, **{STEP_LOG: str(steps_file)})
    assert recorded.returncode == 0, recorded.stderr[-3000:]
    assert problems_after(remote, clone) == []
    steps = steps_file.read_text().splitlines()
    # The steps the issue names must be among them (the names come from the code).
    for named in (
        "git checkout (running)",  # the sync's checkout of the incoming commit
        "downloading model.tflite",  # mid-transfer
        "wrote model.tflite",
        "wrote model.json",
        "git commit",  # after git add
        "git commit (running)",
        "git push",  # after commit, before push
        "git push (running)",
    ):
        assert named in steps, f"no step {named!r} in {steps}"

    failures, mid_checkout = [], 0
    for number, step in enumerate(steps, 1):
        remote, clone = fresh_world(template, tmp_path / f"kill-{number}")
        killed = run_poller(clone, server, **{KILL_AT: str(number)})
        if killed.returncode != -signal.SIGKILL:
            failures.append(f"step {number} ({step}): the run was not killed (exit {killed.returncode})")
            continue
        untracked = git(clone, "ls-files", "--others", "--exclude-standard", "docs")
        if step == "git checkout (running)" and 0 < len(untracked.splitlines()) < FILES:
            mid_checkout += 1
        after = run_poller(clone, server)
        if after.returncode != 0:
            failures.append(f"step {number} ({step}): the next run exited {after.returncode}: {after.stderr[-800:]}")
            continue
        failures += [f"step {number} ({step}): {problem}" for problem in problems_after(remote, clone)]
        shutil.rmtree(tmp_path / f"kill-{number}")
    assert failures == [], "\n".join(failures)
    # At least one kill really cut the sync's checkout in the middle (some incoming files, not all).
    assert mid_checkout >= 1, "no kill landed in the middle of the sync's checkout"
    print(f"\ncrash points covered: {len(steps)}: {', '.join(steps)}")
