"""GitHubSource against a local stand-in for the GitHub Releases API (tests/github_server.py)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import httpx
import pytest

from digit_poller.sources import RateLimited, Release, SourceError
from digit_poller.sources import github as github_module
from digit_poller.sources.github import GitHubSource

TOKEN = "ghp_TestTokenThatMustNeverLeak0123456789"  # noqa: S105 - a fake, for the leak checks
OTHER_TOKEN = "ghp_SomeoneElsesToken"  # noqa: S105
FILES = {"model.tflite": b"tflite-bytes" * 100, "model.json": b'{"version": "x"}', "SHA256SUMS": b"sums\n"}


def source_for(server, **kwargs) -> GitHubSource:
    return GitHubSource(server.repo, api_url=server.api_url, **kwargs)


def versions(releases: list[Release]) -> list[int]:
    return [release.version for release in releases]


# --- listing -------------------------------------------------------------------------------------


def test_highest_version_wins_not_the_newest(github_server) -> None:
    github_server.add_release("model-v1", FILES)
    github_server.add_release("model-v3", FILES)
    github_server.add_release("model-v2", FILES)  # published after v3: newer by date, lower by N

    releases = source_for(github_server).releases()

    assert versions(releases) == [3, 2, 1]
    assert releases[0].tag == "model-v3"
    assert set(releases[0].assets) == set(FILES)
    assert all("/releases/assets/" in url for url in releases[0].assets.values())


def test_skips_drafts_prereleases_other_tags_and_other_files(github_server) -> None:
    github_server.add_release("model-v4", {**FILES, "notes.txt": b"hi", "../evil": b"x"})
    github_server.add_release("model-v9", FILES, draft=True)
    github_server.add_release("model-v8", FILES, prerelease=True)
    for tag in ("v10", "model-v07", "model-v5-rc1", "model-v0", "release-model-v6"):
        github_server.add_release(tag, FILES)

    # with a token GitHub shows drafts too (to users with push access): they must still be skipped
    releases = source_for(github_server, token=TOKEN).releases()

    assert versions(releases) == [4]
    assert set(releases[0].assets) == set(FILES)
    listed = json.loads(
        httpx.get(
            f"{github_server.api_url}/repos/{github_server.repo}/releases", headers={"Authorization": f"Bearer {TOKEN}"}
        ).text
    )
    assert any(item["draft"] for item in listed)


def test_empty_repository_has_no_releases(github_server) -> None:
    assert source_for(github_server).releases() == []


def test_second_poll_is_one_conditional_request_answered_304(github_server, tmp_path: Path) -> None:
    github_server.add_release("model-v1", FILES)
    github_server.add_release("model-v2", FILES)
    first = source_for(github_server, token=TOKEN, state_dir=tmp_path).releases()
    remaining = github_server.remaining(TOKEN)
    github_server.clear_requests()

    # cron starts a new process for every poll: only the state file carries the ETag over
    second = source_for(github_server, token=TOKEN, state_dir=tmp_path).releases()

    exchanges = github_server.exchanges
    assert len(exchanges) == 1
    assert exchanges[0].status == 304
    assert exchanges[0].headers["if-none-match"].startswith('W/"')
    assert second == first
    assert github_server.remaining(TOKEN) == remaining  # free: authenticated and 304
    assert (tmp_path / f"github-{github_server.owner}-{github_server.name}.json").is_file()

    github_server.add_release("model-v3", FILES)
    github_server.clear_requests()
    third = source_for(github_server, token=TOKEN, state_dir=tmp_path).releases()
    assert versions(third) == [3, 2, 1]
    assert [e.status for e in github_server.exchanges] == [200]


def test_same_instance_also_reuses_its_listing(github_server) -> None:
    github_server.add_release("model-v1", FILES)
    source = source_for(github_server)
    first = source.releases()
    github_server.clear_requests()
    assert source.releases() == first
    assert [e.status for e in github_server.exchanges] == [304]


def test_unreadable_state_file_is_ignored(github_server, tmp_path: Path) -> None:
    github_server.add_release("model-v1", FILES)
    (tmp_path / f"github-{github_server.owner}-{github_server.name}.json").write_text("{not json")

    assert versions(source_for(github_server, state_dir=tmp_path).releases()) == [1]
    assert [e.status for e in github_server.exchanges] == [200]


def test_pagination_follows_link_headers(github_server, tmp_path: Path) -> None:
    github_server.add_release("model-v7", FILES)  # oldest, so on the second page (newest first)
    for n in range(120):
        github_server.add_release(f"docs-{n}", {})
    github_server.add_release("model-v8", FILES)

    releases = source_for(github_server, state_dir=tmp_path).releases()

    assert versions(releases) == [8, 7]
    paths = [e.path for e in github_server.exchanges]
    assert len(paths) == 2
    assert "per_page=100" in paths[0]
    assert paths[1].startswith("/repositories/")  # taken from the Link header, not built by hand
    assert "page=2" in paths[1]

    github_server.clear_requests()
    assert source_for(github_server, state_dir=tmp_path).releases() == releases
    assert [e.status for e in github_server.exchanges] == [304, 304]


# --- download ------------------------------------------------------------------------------------


def test_download_follows_redirect_without_sending_the_token(github_server, tmp_path: Path) -> None:
    github_server.require_token = TOKEN
    github_server.add_release("model-v1", FILES)
    source = source_for(github_server, token=TOKEN)
    release = source.releases()[0]
    github_server.clear_requests()

    source.download(release, tmp_path)

    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == FILES
    api = [e for e in github_server.exchanges if "/releases/assets/" in e.path]
    storage = [e for e in github_server.exchanges if e.path.startswith("/download/")]
    assert len(api) == len(storage) == len(FILES)
    assert all(e.status == 302 and e.headers["authorization"] == f"Bearer {TOKEN}" for e in api)
    assert all(e.headers["accept"] == "application/octet-stream" for e in api)
    assert all(e.status == 200 and "authorization" not in e.headers for e in storage)


def test_download_streamed_directly_without_redirect(github_server, tmp_path: Path) -> None:
    github_server.redirect_downloads = False  # GitHub documents both 200 and 302
    github_server.add_release("model-v1", FILES)
    source = source_for(github_server)

    source.download(source.releases()[0], tmp_path)

    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == FILES


def test_download_over_the_size_cap_fails_and_leaves_nothing(github_server, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(github_module, "MAX_FILE_BYTES", 1000)
    github_server.add_release("model-v1", {"model.json": b"{}", "model.tflite": b"x" * 5000})
    source = source_for(github_server)

    with pytest.raises(SourceError, match="cap"):
        source.download(source.releases()[0], tmp_path)

    assert list(tmp_path.iterdir()) == []  # not even the small file that came first


def test_size_cap_holds_without_content_length(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(github_module, "MAX_FILE_BYTES", 1000)

    def handler(request: httpx.Request) -> httpx.Response:
        # a generator body goes out chunked: nothing tells the client the size up front
        return httpx.Response(200, content=(b"x" * 100 for _ in range(50)))

    client = httpx.Client(transport=httpx.MockTransport(handler))
    source = GitHubSource("o/r", api_url="https://api.example", client=client)
    release = Release(1, "model-v1", {"model.tflite": "https://api.example/repos/o/r/releases/assets/1"})

    with pytest.raises(SourceError, match="cap"):
        source.download(release, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_truncated_download_raises_and_leaves_no_file(github_server, tmp_path: Path) -> None:
    github_server.add_release("model-v1", {"model.tflite": b"y" * 50_000})
    source = source_for(github_server)
    release = source.releases()[0]
    github_server.truncate_downloads = True

    with pytest.raises(SourceError) as error:
        source.download(release, tmp_path)

    assert list(tmp_path.iterdir()) == []
    assert "X-Amz-Signature" not in str(error.value)  # the pre-signed URL's query is a credential


def test_asset_outside_the_release_files_is_never_written(tmp_path: Path) -> None:
    client = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(200, content=b"x")))
    source = GitHubSource("o/r", api_url="https://api.example", client=client)

    source.download(
        Release(1, "model-v1", {"../escape": "https://api.example/a/1", "model.json": "https://api.example/a/2"}),
        tmp_path,
    )

    assert [p.name for p in tmp_path.iterdir()] == ["model.json"]
    assert not (tmp_path.parent / "escape").exists()


# --- failures ------------------------------------------------------------------------------------


def test_server_error_raises_source_error(github_server) -> None:
    github_server.fail_next(502)

    with pytest.raises(SourceError, match="502") as error:
        source_for(github_server).releases()

    assert not isinstance(error.value, RateLimited)
    assert f"/repos/{github_server.repo}/releases" in str(error.value)
    assert "per_page" not in str(error.value)


def test_network_error_raises_source_error(github_server) -> None:
    github_server.add_release("model-v1", FILES)
    source = source_for(github_server)
    source.releases()  # leaves a keep-alive connection in the pool
    github_server.stop()

    with pytest.raises(SourceError, match="failed"):
        source.releases()


def test_spent_quota_raises_rate_limited_until_reset(github_server) -> None:
    github_server.rate_limited(reset_in_seconds=120)

    with pytest.raises(RateLimited) as error:
        source_for(github_server).releases()

    assert 100 <= error.value.retry_after <= 122
    assert github_server.exchanges[-1].status == 403


@pytest.mark.parametrize("status", [403, 429])
def test_retry_after_header_is_honoured(github_server, status: int) -> None:
    github_server.fail_next(status, {"retry-after": "30"})

    with pytest.raises(RateLimited) as error:
        source_for(github_server).releases()

    assert error.value.retry_after == 30


def test_forbidden_without_rate_limit_is_not_rate_limited(github_server) -> None:
    github_server.fail_next(403)

    with pytest.raises(SourceError, match="403") as error:
        source_for(github_server).releases()

    assert not isinstance(error.value, RateLimited)


def test_wrong_token_gives_a_clear_error(github_server) -> None:
    github_server.require_token = OTHER_TOKEN

    with pytest.raises(SourceError) as wrong:
        source_for(github_server, token=TOKEN).releases()
    with pytest.raises(SourceError) as missing:
        source_for(github_server).releases()

    assert "401" in str(wrong.value)
    assert "Bad credentials" in str(wrong.value)
    assert "check GITHUB_TOKEN" in str(wrong.value)
    assert "set GITHUB_TOKEN" in str(missing.value)


def test_token_never_appears_in_errors_or_logs(github_server, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)  # httpx and httpcore log every request at DEBUG
    github_server.add_release("model-v1", FILES)
    source = source_for(github_server, token=TOKEN, state_dir=tmp_path)
    release = source.releases()
    source.releases()
    errors: list[BaseException] = []

    def attempt(action) -> None:
        with pytest.raises(SourceError) as error:
            action()
        errors.append(error.value)

    github_server.fail_next(500)
    attempt(source.releases)
    github_server.fail_next(429, {"retry-after": "5"})
    attempt(source.releases)
    github_server.rate_limited(60)
    attempt(source.releases)
    github_server.rate_limited(-1)
    github_server.require_token = OTHER_TOKEN
    attempt(source.releases)
    github_server.require_token = None
    github_server.truncate_downloads = True
    attempt(lambda: source.download(release[0], tmp_path / "dl"))
    github_server.stop()
    attempt(source.releases)

    assert len(errors) == 6
    for error in errors:
        assert TOKEN not in str(error)
        assert TOKEN not in repr(error)
        assert TOKEN not in repr(error.__cause__) and TOKEN not in repr(error.__context__)
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(source)
    assert all(TOKEN not in p.read_text() for p in tmp_path.glob("*.json"))


def test_rejects_malformed_repository_names() -> None:
    for bad in ("owner", "owner/repo/extra", "owner/..", "", "own er/repo"):
        with pytest.raises(ValueError):
            GitHubSource(bad)


# --- the stand-in itself -------------------------------------------------------------------------


def test_stand_in_latest_is_the_newest_published(github_server) -> None:
    github_server.add_release("model-v1", FILES)
    github_server.add_release("model-v2", FILES)
    github_server.add_release("model-v3", FILES, prerelease=True)
    github_server.add_release("model-v4", FILES, draft=True)

    latest = httpx.get(f"{github_server.api_url}/repos/{github_server.repo}/releases/latest").json()

    assert latest["tag_name"] == "model-v2"


def test_stand_in_counts_anonymous_304s_but_not_authenticated_ones(github_server) -> None:
    url = f"{github_server.api_url}/repos/{github_server.repo}/releases"
    for headers, key in (({}, None), ({"Authorization": f"Bearer {TOKEN}"}, TOKEN)):
        first = httpx.get(url, headers=headers)
        before = int(first.headers["x-ratelimit-remaining"])
        again = httpx.get(url, headers={**headers, "If-None-Match": first.headers["etag"]})
        assert again.status_code == 304
        spent = before - int(again.headers["x-ratelimit-remaining"])
        assert spent == (1 if key is None else 0)
        assert int(again.headers["x-ratelimit-reset"]) > time.time()
