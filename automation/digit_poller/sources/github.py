"""Releases published on GitHub (`github:OWNER/REPO`), read through the GitHub Releases REST API.

The HTTP side (headers, deadlines, the asset redirect, error messages) is the release format's
shared client, digit_release.github. What is the poller's own: the poller runs from cron, a new
process each time, so the listing's ETags are kept in a state file, and an idle poll is then one
conditional request that GitHub answers 304 and, when made with a token, does not count against
the rate limit. Drafts, pre-releases and other tags are not releases here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from digit_poller import crashpoints
from digit_release import github as api
from digit_release.manifest import tag_version

from . import MAX_FILE_BYTES, RELEASE_FILES, BadRelease, RateLimited, Release, SourceError, fingerprint

log = logging.getLogger(__name__)

# httpx's timeouts are per socket operation, so each phase has a wall-clock deadline as well.
LIST_DEADLINE_SECONDS = 60.0
DOWNLOAD_DEADLINE_SECONDS = 600.0
STATE_FORMAT = 2  # 2: releases carry sizes and a fingerprint


@contextlib.contextmanager
def _as_source_errors() -> Iterator[None]:
    """The client's errors in the poller's terms: a rate limit, a bad release, or a transient fault."""
    try:
        yield
    except api.RateLimited as exc:
        raise RateLimited(str(exc), exc.retry_after) from None
    except api.BadAsset as exc:
        raise BadRelease(str(exc)) from None
    except api.GitHubError as exc:
        raise SourceError(str(exc)) from None


class GitHubSource:
    """`ReleaseSource` over `GET /repos/{owner}/{repo}/releases` and the release asset endpoint."""

    def __init__(  # noqa: PLR0917 - the signature every caller and the poller's factory use
        self,
        repo: str,
        api_url: str = api.DEFAULT_API_URL,
        token: str | None = None,
        state_dir: Path | None = None,
        timeout: float = 10.0,
        client: httpx.Client | None = None,
        list_deadline: float = LIST_DEADLINE_SECONDS,
        download_deadline: float = DOWNLOAD_DEADLINE_SECONDS,
    ) -> None:
        self.github = api.GitHubClient(repo, api_url, token, user_agent="digit-poller", timeout=timeout, client=client)
        self.repo, self.name = repo, self.github.name
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.list_deadline, self.download_deadline = list_deadline, download_deadline
        owner, name = repo.split("/")
        self._state_file = self.state_dir / f"github-{owner}-{name}.json" if self.state_dir else None
        self._pages: dict[str, dict[str, Any]] | None = None

    def __repr__(self) -> str:  # the default repr would show the token
        return f"GitHubSource({self.repo!r}, api_url={api.safe_url(self.github.api_url)!r})"

    def close(self) -> None:
        self.github.close()

    def __enter__(self) -> GitHubSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- listing -------------------------------------------------------------------------------

    def releases(self) -> list[Release]:
        stored = self._load_state()
        seen: dict[str, dict[str, Any]] = {}
        url: str | None = f"{self.github.releases_url}?per_page={api.PER_PAGE}"
        with _as_source_errors(), self.github.deadline(self.list_deadline, "listing releases") as deadline:
            while url is not None:
                if len(seen) == api.MAX_PAGES:
                    log.warning("%s: over %d pages of releases; older ones are ignored", self.name, api.MAX_PAGES)
                    break
                key = api.without_credentials(url)
                if key in seen:
                    raise SourceError(f"{self.name}: pagination loops back to {api.safe_url(url)}")
                page = self._fetch_page(url, stored.get(key), deadline)
                seen[key] = page
                url = page["next"]
        self._save_state(seen)
        releases = [
            Release(
                version=item["version"],
                tag=item["tag"],
                assets=dict(item["assets"]),
                sizes=dict(item["sizes"]),
                fingerprint=item["fingerprint"],
            )
            for page in seen.values()
            for item in page["releases"]
        ]
        releases.sort(key=lambda release: release.version, reverse=True)
        return releases

    def _fetch_page(self, url: str, cached: dict[str, Any] | None, deadline: api.Deadline) -> dict[str, Any]:
        etag = cached.get("etag") if cached else None
        response, body = self.github.get_page(url, deadline, etag=etag)
        if response.status_code == 304:
            if not etag:
                # "not modified" since nothing: a stored listing could be stale, so none is trusted
                raise SourceError(
                    f"{self.name}: {api.safe_url(url)} answered 304 to a request that was not conditional"
                )
            log.debug("%s: %s not modified, reusing the stored listing", self.name, api.safe_url(url))
            return cached  # type: ignore[return-value]
        if response.status_code != 200:
            raise self.github.status_error(response, body)
        items = self.github.json_list(url, body)
        next_url = response.links.get("next", {}).get("url")
        return {"etag": response.headers.get("etag"), "next": next_url, "releases": self._parse(items)}

    @staticmethod
    def _parse(items: list[Any]) -> list[dict[str, Any]]:
        releases = []
        for item in items:
            if not isinstance(item, dict) or item.get("draft") is not False or item.get("prerelease") is not False:
                continue
            tag = item.get("tag_name")
            version = tag_version(tag)
            if version is None:
                continue
            assets, sizes, identity = {}, {}, []
            for asset in item.get("assets") or []:
                if isinstance(asset, dict) and asset.get("name") in RELEASE_FILES and isinstance(asset.get("url"), str):
                    name = asset["name"]
                    assets[name] = asset["url"]
                    size = asset.get("size")
                    if isinstance(size, int) and not isinstance(size, bool) and size >= 0:
                        sizes[name] = size
                    # a re-uploaded asset has a new id (so a new URL) and a new updated_at
                    identity.append((name, asset["url"], size, asset.get("updated_at")))
            releases.append(
                {
                    "version": version,
                    "tag": tag,
                    "assets": assets,
                    "sizes": sizes,
                    "fingerprint": fingerprint(sorted(identity, key=str)),
                }
            )
        return releases

    # --- state ---------------------------------------------------------------------------------

    def _load_state(self) -> dict[str, dict[str, Any]]:
        if self._pages is not None:
            return self._pages
        if self._state_file is None or not self._state_file.exists():
            return {}
        try:
            state = json.loads(self._state_file.read_text(encoding="utf-8"))
            if state.get("format") != STATE_FORMAT or not isinstance(state.get("pages"), dict):
                raise ValueError("unknown format")
            pages: dict[str, dict[str, Any]] = state["pages"]
            for page in pages.values():
                for item in page["releases"]:
                    if tag_version(item["tag"]) != item["version"] or not isinstance(item["assets"], dict):
                        raise ValueError("bad release entry")
                    if not isinstance(item["sizes"], dict) or not isinstance(item["fingerprint"], str):
                        raise ValueError("bad release entry")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            # only a cache: a fresh listing costs one counted request, a wrong one could hide releases
            log.warning("%s: ignoring unreadable state file %s (%s)", self.name, self._state_file, error)
            return {}
        return pages

    def _save_state(self, pages: dict[str, dict[str, Any]]) -> None:
        self._pages = pages
        if self._state_file is None:
            return
        try:
            self._state_file.parent.mkdir(parents=True, exist_ok=True)
            text = json.dumps({"format": STATE_FORMAT, "pages": pages}, indent=1, sort_keys=True)
            fd, tmp = tempfile.mkstemp(dir=self._state_file.parent, prefix=f".{self._state_file.name}.")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    out.write(text)
                os.replace(tmp, self._state_file)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as error:
            # the listing itself succeeded; losing the cache only costs a counted request next time
            log.warning("%s: could not write state file %s (%s)", self.name, self._state_file, error)

    # --- download ------------------------------------------------------------------------------

    def download(self, release: Release, dest: Path) -> None:
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        cap = MAX_FILE_BYTES
        for name, size in release.sizes.items():
            if size > cap:  # what the release is, not what the network did: a rejection
                raise BadRelease(f"{self.name}: {release.tag} lists {name} at {size} bytes, over the {cap}-byte cap")
        written: list[Path] = []
        try:
            with _as_source_errors(), self.github.deadline(self.download_deadline, f"downloading {release.tag}") as d:
                for name, url in release.assets.items():
                    if name not in RELEASE_FILES:  # the name becomes a path: never trust it blindly
                        continue
                    self._download_file(url, dest / name, release.sizes.get(name), cap, d)
                    written.append(dest / name)
                    crashpoints.reached(f"downloaded {name}")
        except BaseException:
            # the poller must never see half a release as if it were whole
            for path in written:
                with contextlib.suppress(OSError):
                    path.unlink()
            raise

    def _download_file(self, url: str, target: Path, listed: int | None, cap: int, deadline: api.Deadline) -> None:
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                self.github.download(
                    url,
                    out,
                    target.name,
                    deadline,
                    listed=listed,
                    cap=cap,
                    on_first_chunk=lambda: crashpoints.reached(f"downloading {target.name}"),
                )
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
