"""Releases published on GitHub (`github:OWNER/REPO`), read through the GitHub Releases REST API.

The poller runs from cron, a new process each time, so the listing's ETags are kept in a state
file: an idle poll is then one conditional request that GitHub answers 304 and, when made with a
token, does not count against the rate limit.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import os
import re
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from digit_poller import crashpoints

from . import MAX_FILE_BYTES, RELEASE_FILES, BadRelease, RateLimited, Release, SourceError, fingerprint, version_of

log = logging.getLogger(__name__)

API_VERSION = "2022-11-28"
PER_PAGE = 100
# GitHub lists releases newest first; 10 pages of 100 is far more than a model repository holds,
# and the bound keeps a misbehaving server (a Link loop) from keeping the poll busy forever.
MAX_PAGES = 10
MAX_REDIRECTS = 5
MAX_LISTING_BYTES = 16 * 1024 * 1024
# httpx's timeouts are per socket operation, so a server that trickles a byte at a time could hold
# a poll (and the cron lock) for hours. Each phase has a wall-clock deadline instead.
LIST_DEADLINE_SECONDS = 60.0
DOWNLOAD_DEADLINE_SECONDS = 600.0
# GitHub asks clients that hit a secondary rate limit without a hint to wait at least a minute.
DEFAULT_RETRY_AFTER = 60.0
STATE_FORMAT = 2  # 2: releases carry sizes and a fingerprint

_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")


def _safe_url(url: httpx.URL | str) -> str:
    """The URL for messages: no user info, no query (pre-signed storage URLs carry signatures)."""
    url = httpx.URL(str(url))
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}{url.path}"


def _state_key(url: str) -> str:
    """A listing URL as the state file keeps it: the query (page=2) stays, credentials never do."""
    return str(httpx.URL(url).copy_with(username=None, password=None))


def _origin(url: httpx.URL | str) -> tuple[str, str, int | None]:
    url = httpx.URL(str(url))
    return url.scheme, url.host, url.port


class _Deadline:
    """A wall-clock limit on one network phase that holds whatever the server does.

    Every connection the phase opens is registered through httpx's `trace` extension; when time
    is up a timer shuts those sockets down, which ends any read or write blocked on them. (The
    client opens a new connection per request, so no pooled connection escapes the phase.)
    """

    def __init__(self, seconds: float, what: str) -> None:
        self.seconds, self.what = seconds, what
        self.end = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def __enter__(self) -> _Deadline:
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event not in ("connection.connect_tcp.complete", "connection.connect_unix_socket.complete"):
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                self._shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def timeout(self, per_operation: float) -> httpx.Timeout:
        left = self.end - time.monotonic()
        if self.expired or left <= 0:
            raise self.error()
        return httpx.Timeout(min(per_operation, left))

    def error(self) -> SourceError:
        return SourceError(f"{self.what} took more than {self.seconds:g} s (the deadline for it)")


class GitHubSource:
    """`ReleaseSource` over `GET /repos/{owner}/{repo}/releases` and the release asset endpoint."""

    def __init__(  # noqa: PLR0917 - the signature every caller and the poller's factory use
        self,
        repo: str,
        api_url: str = "https://api.github.com",
        token: str | None = None,
        state_dir: Path | None = None,
        timeout: float = 10.0,
        client: httpx.Client | None = None,
        list_deadline: float = LIST_DEADLINE_SECONDS,
        download_deadline: float = DOWNLOAD_DEADLINE_SECONDS,
    ) -> None:
        if not _REPO.fullmatch(repo) or repo.split("/")[1] in {".", ".."}:
            raise ValueError(f"GitHub repository must look like OWNER/REPO, got {repo!r}")
        self.repo = repo
        self.name = f"github:{repo}"
        self.api_url = api_url.rstrip("/")
        self._token = token or None
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.timeout = timeout
        self.list_deadline, self.download_deadline = list_deadline, download_deadline
        self._own_client = client is None
        # No keep-alive: every request opens its own connection, so each phase's deadline sees it.
        limits = httpx.Limits(max_keepalive_connections=0)
        self._client = client if client is not None else httpx.Client(timeout=timeout, limits=limits)
        owner, name = repo.split("/")
        self._state_file = self.state_dir / f"github-{owner}-{name}.json" if self.state_dir else None
        self._pages: dict[str, dict[str, Any]] | None = None

    def __repr__(self) -> str:  # the default repr would show the token
        return f"GitHubSource({self.repo!r}, api_url={_safe_url(self.api_url)!r})"

    def close(self) -> None:
        if self._own_client:
            self._client.close()

    def __enter__(self) -> GitHubSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- listing -------------------------------------------------------------------------------

    def releases(self) -> list[Release]:
        stored = self._load_state()
        seen: dict[str, dict[str, Any]] = {}
        url: str | None = f"{self.api_url}/repos/{self.repo}/releases?per_page={PER_PAGE}"
        with _Deadline(self.list_deadline, f"{self.name}: listing releases") as deadline:
            while url is not None:
                if len(seen) == MAX_PAGES:
                    log.warning("%s: over %d pages of releases; older ones are not considered", self.name, MAX_PAGES)
                    break
                key = _state_key(url)
                if key in seen:
                    raise SourceError(f"{self.name}: pagination loops back to {_safe_url(url)}")
                if _origin(url) != _origin(self.api_url):
                    # the token goes with every listing request, so only ever to the API host
                    raise SourceError(f"{self.name}: next page {_safe_url(url)} is not on {_safe_url(self.api_url)}")
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

    def _fetch_page(self, url: str, cached: dict[str, Any] | None, deadline: _Deadline) -> dict[str, Any]:
        headers = self._api_headers("application/vnd.github+json")
        conditional = bool(cached and cached.get("etag"))
        if conditional:
            headers["If-None-Match"] = cached["etag"]  # type: ignore[index]
        try:
            with self._client.stream(
                "GET",
                url,
                headers=headers,
                follow_redirects=False,
                timeout=deadline.timeout(self.timeout),
                extensions={"trace": deadline.trace},
            ) as response:
                body = self._read_listing(response, url)
        except httpx.HTTPError as error:
            raise (deadline.error() if deadline.expired else self._network_error(url, error)) from None
        if response.status_code == 304:
            if not conditional:
                # "not modified" since nothing: a stored listing could be stale, so none is trusted
                raise SourceError(f"{self.name}: {_safe_url(url)} answered 304 to a request that was not conditional")
            log.debug("%s: %s not modified, reusing the stored listing", self.name, _safe_url(url))
            return cached  # type: ignore[return-value]
        if response.status_code != 200:
            raise self._status_error(response, body)
        try:
            items = json.loads(body)
        except ValueError:
            raise SourceError(f"{self.name}: {_safe_url(url)} did not answer JSON") from None
        if not isinstance(items, list):
            raise SourceError(f"{self.name}: {_safe_url(url)} did not answer a list of releases")
        next_url = response.links.get("next", {}).get("url")
        return {"etag": response.headers.get("etag"), "next": next_url, "releases": self._parse(items)}

    def _read_listing(self, response: httpx.Response, url: str) -> bytes:
        """The body of a listing page, at most MAX_LISTING_BYTES (a page of 100 releases is about 1 MB)."""
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > MAX_LISTING_BYTES:
                raise SourceError(f"{self.name}: {_safe_url(url)} sent over {MAX_LISTING_BYTES} bytes for one page")
        return bytes(body)

    @staticmethod
    def _parse(items: list[Any]) -> list[dict[str, Any]]:
        releases = []
        for item in items:
            if not isinstance(item, dict) or item.get("draft") is not False or item.get("prerelease") is not False:
                continue
            tag = item.get("tag_name")
            version = version_of(tag) if isinstance(tag, str) else None
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
            pages = state["pages"]
            for page in pages.values():
                for item in page["releases"]:
                    if version_of(item["tag"]) != item["version"] or not isinstance(item["assets"], dict):
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
        for name, size in release.sizes.items():
            if size > MAX_FILE_BYTES:  # what the release is, not what the network did: a rejection
                cap = f"over the {MAX_FILE_BYTES}-byte cap"
                raise BadRelease(f"{self.name}: {release.tag} lists {name} at {size} bytes, {cap}")
        written: list[Path] = []
        try:
            with _Deadline(self.download_deadline, f"{self.name}: downloading {release.tag}") as deadline:
                for name, url in release.assets.items():
                    if name not in RELEASE_FILES:  # the name becomes a path: never trust it blindly
                        continue
                    self._download_file(url, dest / name, release.sizes.get(name), deadline)
                    written.append(dest / name)
                    crashpoints.reached(f"downloaded {name}")
        except BaseException:
            # the poller must never see half a release as if it were whole
            for path in written:
                with contextlib.suppress(OSError):
                    path.unlink()
            raise

    def _download_file(self, url: str, target: Path, listed: int | None, deadline: _Deadline) -> None:
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                self._stream_to(url, out, target.name, listed, deadline)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def _stream_to(self, url: str, out: Any, name: str, listed: int | None, deadline: _Deadline) -> None:
        # The token is for the API only. GitHub answers the asset endpoint with a 302 to a
        # pre-signed storage URL, which needs no token and (S3) rejects a request that carries one.
        headers = self._api_headers("application/octet-stream", with_token=_origin(url) == _origin(self.api_url))
        # The bytes are checked against the listed size; a compressed transfer would hide a short one.
        headers["Accept-Encoding"] = "identity"
        for _ in range(MAX_REDIRECTS + 1):
            try:
                with self._client.stream(
                    "GET",
                    url,
                    headers=headers,
                    follow_redirects=False,
                    timeout=deadline.timeout(self.timeout),
                    extensions={"trace": deadline.trace},
                ) as response:
                    if response.is_redirect:
                        location = response.headers.get("location")
                        if not location:
                            raise SourceError(f"{self.name}: redirect without Location from {_safe_url(url)}")
                        url = str(response.url.join(location))
                        if httpx.URL(url).scheme not in {"http", "https"}:
                            raise SourceError(f"{self.name}: refusing redirect to {_safe_url(url)}")
                        headers = {
                            "Accept": "application/octet-stream",
                            "Accept-Encoding": "identity",
                            "User-Agent": "digit-poller",
                        }
                        continue
                    if response.status_code != 200:
                        response.read()
                        raise self._status_error(response)
                    self._copy_body(response, out, name, listed)
                    return
            except httpx.HTTPError as error:
                raise (deadline.error() if deadline.expired else self._network_error(url, error)) from None
        raise SourceError(f"{self.name}: more than {MAX_REDIRECTS} redirects downloading {name}")

    def _copy_body(self, response: httpx.Response, out: Any, name: str, listed: int | None) -> None:
        """Copy the body, holding it to the size the release lists (or, unlisted, to the cap).

        A transfer that disagrees with the listing (short, long, or said to be either) is the
        network's fault: SourceError, tried again next run. Only an unlisted file over the cap is
        the release's own fault: BadRelease.
        """
        where = _safe_url(response.url)
        declared = response.headers.get("content-length")
        expected = int(declared) if declared and declared.isdigit() else None
        # Content-Length counts encoded bytes, so it only compares for an unencoded body.
        identity = response.headers.get("content-encoding", "identity").lower() == "identity"
        if listed is None and expected is not None and expected > MAX_FILE_BYTES:
            raise BadRelease(f"{self.name}: {name} is {expected} bytes, over the {MAX_FILE_BYTES}-byte cap ({where})")
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if listed is not None and size > listed:
                raise SourceError(f"{self.name}: {name}: more bytes than the {listed} the release lists ({where})")
            if size > MAX_FILE_BYTES:
                raise BadRelease(f"{self.name}: {name} exceeds the {MAX_FILE_BYTES}-byte cap ({where})")
            out.write(chunk)
            if size == len(chunk):  # the first chunk: a crash point in the middle of the transfer
                crashpoints.reached(f"downloading {name}")
        if listed is not None and size != listed:
            raise SourceError(f"{self.name}: {name} truncated: got {size} of the {listed} bytes listed ({where})")
        # h11 already refuses a short body; this also covers transports that do not.
        if expected is not None and identity and size < expected:
            raise SourceError(f"{self.name}: {name} truncated: got {size} of {expected} bytes ({where})")

    # --- HTTP helpers --------------------------------------------------------------------------

    def _api_headers(self, accept: str, with_token: bool = True) -> dict[str, str]:
        headers = {"Accept": accept, "X-GitHub-Api-Version": API_VERSION, "User-Agent": "digit-poller"}
        if self._token and with_token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def _network_error(self, url: str, error: httpx.HTTPError) -> SourceError:
        kind = type(error).__name__
        detail = self._redact(str(error)) or kind
        return SourceError(f"{self.name}: request to {_safe_url(url)} failed ({kind}: {detail})")

    def _status_error(self, response: httpx.Response, body: bytes | None = None) -> SourceError:
        status = response.status_code
        where = _safe_url(response.url)
        message = ""
        with contextlib.suppress(ValueError, AttributeError, httpx.ResponseNotRead):
            message = str((json.loads(body) if body is not None else response.json()).get("message", ""))
        message = self._redact(message[:200])
        said = f": {message}" if message else ""
        headers = response.headers
        if status in {403, 429}:
            retry_after = self._retry_after(headers)
            if retry_after is not None or status == 429 or "rate limit" in message.lower():
                wait = DEFAULT_RETRY_AFTER if retry_after is None else retry_after
                return RateLimited(
                    f"{self.name}: rate limited by {where} (HTTP {status}{said}); retry in {wait:.0f} s", wait
                )
        if status == 401:
            hint = "check GITHUB_TOKEN" if self._token else "set GITHUB_TOKEN"
            return SourceError(f"{self.name}: {where} rejected the request (HTTP 401{said}); {hint}")
        if status == 404:
            hint = "" if self._token else " (a private repository needs GITHUB_TOKEN)"
            return SourceError(f"{self.name}: {where} not found (HTTP 404{said}){hint}")
        return SourceError(f"{self.name}: {where} answered HTTP {status}{said}")

    @staticmethod
    def _retry_after(headers: httpx.Headers) -> float | None:
        """Seconds to wait, from `retry-after` or, once the quota is spent, from `x-ratelimit-reset`."""
        value = headers.get("retry-after")
        if value:
            try:
                return max(0.0, float(value))
            except ValueError:
                with contextlib.suppress(TypeError, ValueError):
                    return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
        if headers.get("x-ratelimit-remaining") == "0":
            with contextlib.suppress(TypeError, ValueError):
                # +1: the reset time is whole seconds; asking again in the same second fails again
                return max(1.0, float(headers.get("x-ratelimit-reset", "")) - time.time() + 1.0)
            return DEFAULT_RETRY_AFTER
        return None
