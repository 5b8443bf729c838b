"""The whole poll against the local GitHub Releases stand-in: the real HTTP client, real git."""

from __future__ import annotations

import json
import time

import pytest

from digit_poller.__main__ import main
from digit_testing.releases import release_assets

from .test_poller import make_release

TOKEN = "ghp_test_token_never_logged"  # noqa: S105  (a test value: the point is that it never shows)


def wait_is_over(world) -> None:
    """Time passes beyond the wait the source asked for (the poller keeps it in its state file)."""
    path = world.clone / ".git" / "digit-poller" / "state.json"
    state = json.loads(path.read_text())
    [(name, until)] = state["not_before"].items()  # the wait was recorded, for that source
    assert until > time.time()
    path.write_text(json.dumps({**state, "not_before": {name: time.time() - 1}}))


@pytest.fixture
def github(world, github_server, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MODEL_SOURCE", f"github:{github_server.repo}")
    monkeypatch.setenv("GITHUB_API_URL", github_server.api_url)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    github_server.require_token = TOKEN

    def publish(version: int, **kwargs) -> None:
        folder = make_release(world.tmp / "built", version)
        files = release_assets(folder)
        github_server.add_release(f"model-v{version}", files, **kwargs)

    return github_server, publish


def test_release_to_pushed_commit_then_idle_polls_cost_a_304(world, github, caplog) -> None:
    server, publish = github
    publish(2)
    publish(3, prerelease=True)  # never chosen
    assert main(["--once"]) == 0
    assert world.remote_version() == "2" and world.clone_is_clean()
    server.clear_requests()
    assert main(["--once"]) == 0
    assert [exchange.status for exchange in server.exchanges] == [304]  # one request, not counted by GitHub
    assert TOKEN not in caplog.text


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (lambda s: s.fail_next(502), "502"),
        (lambda s: s.rate_limited(reset_in_seconds=120), "rate limit"),
        (lambda s: setattr(s, "truncate_downloads", True), "without sending complete message body"),
    ],
    ids=["5xx", "rate-limited", "truncated-download"],
)
def test_network_faults_change_nothing_and_the_next_run_succeeds(world, github, caplog, fault, message: str) -> None:
    server, publish = github
    publish(2)
    fault(server)
    assert main(["--once"]) == 1
    assert message in caplog.text.lower()
    assert world.remote_version() == "1" and world.clone_is_clean()
    # The fault passes (the quota resets, the server recovers): the next run brings the release in.
    server.truncate_downloads = False
    if message == "rate limit":
        server.rate_limited(reset_in_seconds=-1)
        wait_is_over(world)
    assert main(["--once"]) == 0
    assert world.remote_version() == "2" and world.clone_is_clean()


def test_an_unreachable_github_is_an_error_not_a_change(world, github, caplog) -> None:
    server, publish = github
    publish(2)
    server.stop()
    assert main(["--once"]) == 1
    assert world.remote_version() == "1" and world.clone_is_clean()
    assert TOKEN not in caplog.text
