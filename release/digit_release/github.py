"""The GitHub Releases REST API, as the publisher and the poller both use it.

One client for what both need: the documented headers (API version, `Accept`, bearer token), a
wall-clock deadline per phase that holds whatever the server does, the asset download (a 302 to
a pre-signed storage URL that must not get the token, held to the size the listing gives), and
errors that say what happened without quoting a credential. The publisher adds create, upload
and publish; the poller adds ETags and its own view of what a release is.

Every message names URLs by `safe_url` (no user info, no query: a pre-signed URL's query is a
credential), and the token is masked wherever an error might quote it.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import math
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

import httpx

API_VERSION = "2022-11-28"
DEFAULT_API_URL = "https://api.github.com"
PER_PAGE = 100
# GitHub lists releases newest first; 10 pages of 100 is far more than a model repository holds,
# and the bound keeps a misbehaving server (a Link loop) from keeping a run busy for ever.
MAX_PAGES = 10
MAX_REDIRECTS = 5
MAX_PAGE_BYTES = 16 * 1024 * 1024
# GitHub asks clients that hit a secondary rate limit without a hint to wait at least a minute;
# its primary limits reset within the hour, so a longer wait is a broken header, not an answer.
DEFAULT_RETRY_AFTER = 60.0
MAX_RETRY_AFTER = 3600.0

_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")


class GitHubError(RuntimeError):
    """A request failed (network, deadline, status, an answer that is not what GitHub documents)."""


class RateLimited(GitHubError):
    """GitHub asked the client to wait; `retry_after` is in seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BadAsset(GitHubError):
    """The asset itself cannot be had, whatever the network does: a URL that is no URL, a size over the cap."""


class TooLarge(BadAsset):
    """A download with no listed size went over the cap it was given: the asset's fault, not the network's."""


def safe_url(url: httpx.URL | str) -> str:
    """The URL for messages: no user info, no query (pre-signed storage URLs carry signatures)."""
    url = httpx.URL(str(url))
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}{url.path}"


def safe_url_or_not(url: str) -> str:
    """safe_url, for a string that may not even parse as a URL."""
    try:
        return safe_url(url)
    except (httpx.InvalidURL, ValueError, TypeError):
        return "(an unparseable URL)"


def without_credentials(url: str) -> str:
    """A URL as it may be stored: the query (page=2) stays, user info never does."""
    return str(httpx.URL(url).copy_with(username=None, password=None))


def origin(url: httpx.URL | str) -> tuple[str, str, int | None]:
    url = httpx.URL(str(url))
    return url.scheme, url.host, url.port


class Deadline:
    """A wall-clock limit on one network phase that holds whatever the server does.

    httpx's timeouts are per socket operation, so a server that trickles a byte at a time could
    hold a request for hours. Every connection the phase opens is registered through httpx's
    `trace` extension; when time is up a timer shuts those sockets down, which ends any read or
    write blocked on them. (The client opens a new connection per request, so no pooled
    connection escapes the phase.)
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

    def __enter__(self) -> Deadline:
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

    def error(self) -> GitHubError:
        return GitHubError(f"{self.what} took more than {self.seconds:g} s (the deadline for it)")


class GitHubClient:
    """The Releases API of one repository: `GET /repos/{owner}/{repo}/releases` and what hangs off it."""

    def __init__(  # noqa: PLR0917 - the signature both callers use
        self,
        repo: str,
        api_url: str = DEFAULT_API_URL,
        token: str | None = None,
        user_agent: str = "digit-release",
        timeout: float = 10.0,
        client: httpx.Client | None = None,
    ) -> None:
        if not _REPO.fullmatch(repo) or repo.split("/")[1] in {".", ".."}:
            raise ValueError(f"GitHub repository must look like OWNER/REPO, got {repo!r}")
        self.repo = repo
        self.name = f"github:{repo}"
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self._token = token or None
        self._user_agent = user_agent
        self._own_client = client is None
        # No keep-alive: every request opens its own connection, so each phase's deadline sees it.
        limits = httpx.Limits(max_keepalive_connections=0)
        self._client = client if client is not None else httpx.Client(timeout=timeout, limits=limits)

    def __repr__(self) -> str:  # the default repr would show the token
        return f"GitHubClient({self.repo!r}, api_url={safe_url(self.api_url)!r})"

    @property
    def authenticated(self) -> bool:
        return self._token is not None

    @property
    def releases_url(self) -> str:
        return f"{self.api_url}/repos/{self.repo}/releases"

    def close(self) -> None:
        if self._own_client:
            self._client.close()

    def deadline(self, seconds: float, what: str) -> Deadline:
        return Deadline(seconds, f"{self.name}: {what}")

    # --- requests ------------------------------------------------------------------------------

    def headers(self, accept: str = "application/vnd.github+json", with_token: bool = True) -> dict[str, str]:
        headers = {"Accept": accept, "X-GitHub-Api-Version": API_VERSION, "User-Agent": self._user_agent}
        if self._token and with_token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    @contextlib.contextmanager
    def _stream(self, method: str, url: str, deadline: Deadline, **kwargs: Any) -> Iterator[httpx.Response]:
        """A request whose network errors, while it is sent and while its body is read inside the
        `with`, come out as GitHubError or the deadline's error."""
        try:
            with self._client.stream(
                method,
                url,
                follow_redirects=False,
                timeout=deadline.timeout(self.timeout),
                extensions={"trace": deadline.trace},
                **kwargs,
            ) as response:
                yield response
        except httpx.HTTPError as error:
            raise (deadline.error() if deadline.expired else self.network_error(url, error)) from None
        except httpx.InvalidURL:
            raise GitHubError(f"{self.name}: {safe_url_or_not(url)} is not a URL the client can request") from None

    def get_page(self, url: str, deadline: Deadline, etag: str | None = None) -> tuple[httpx.Response, bytes]:
        """One page of a listing: the response and its body (at most MAX_PAGE_BYTES)."""
        if origin(url) != origin(self.api_url):
            # the token goes with every listing request, so only ever to the API host
            raise GitHubError(f"{self.name}: next page {safe_url(url)} is not on {safe_url(self.api_url)}")
        headers = self.headers()
        if etag:
            headers["If-None-Match"] = etag
        with self._stream("GET", url, deadline, headers=headers) as response:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_PAGE_BYTES:
                    raise GitHubError(f"{self.name}: {safe_url(url)} sent over {MAX_PAGE_BYTES} bytes for one page")
        return response, bytes(body)

    def request(self, method: str, url: str, expect: int, deadline: Deadline, **kwargs: Any) -> Any:
        """A JSON call (create, upload, update): the decoded answer, or GitHubError naming the status."""
        headers = {**self.headers(), **kwargs.pop("headers", {})}
        with self._stream(method, url, deadline, headers=headers, **kwargs) as response:
            body = response.read()
        if response.status_code != expect:
            raise self.status_error(response, body, f"{method} ")
        try:
            return json.loads(body)
        except ValueError:
            raise GitHubError(f"{self.name}: {method} {safe_url(url)} did not answer JSON") from None

    def list_releases(self, deadline: Deadline) -> list[dict[str, Any]]:
        """Every release the token can see (drafts need push access), following `Link: next`."""
        url: str | None = f"{self.releases_url}?per_page={PER_PAGE}"
        found: list[dict[str, Any]] = []
        seen: set[str] = set()
        while url is not None:
            if len(seen) == MAX_PAGES:
                raise GitHubError(f"{self.name}: more than {MAX_PAGES} pages of releases")
            if url in seen:
                raise GitHubError(f"{self.name}: pagination loops back to {safe_url(url)}")
            seen.add(url)
            response, body = self.get_page(url, deadline)
            if response.status_code != 200:
                raise self.status_error(response, body)
            found += [item for item in self.json_list(url, body) if isinstance(item, dict)]
            url = response.links.get("next", {}).get("url")
        return found

    def json_list(self, url: str, body: bytes) -> list[Any]:
        try:
            items = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than any listing is
            raise GitHubError(f"{self.name}: {safe_url(url)} did not answer JSON a client can read") from None
        if not isinstance(items, list):
            raise GitHubError(f"{self.name}: {safe_url(url)} did not answer a list of releases")
        return items

    # --- assets --------------------------------------------------------------------------------

    def download(
        self,
        url: str,
        out: IO[bytes],
        name: str,
        deadline: Deadline,
        *,
        listed: int | None = None,
        cap: int | None = None,
        on_first_chunk: Callable[[], None] | None = None,
    ) -> int:
        """Write an asset's bytes to `out`, held to the size the listing gives; returns the size.

        A transfer that disagrees with the listing (short, long) is the network's fault:
        GitHubError. Only an unlisted asset over `cap` is the asset's own: TooLarge.
        """
        try:
            same_host = origin(url) == origin(self.api_url)
        except (httpx.InvalidURL, ValueError, TypeError):
            raise BadAsset(f"{self.name}: {name}'s URL {safe_url_or_not(url)} is not a URL") from None
        # The token is for the API only. GitHub answers the asset endpoint with a 302 to a
        # pre-signed storage URL, which needs no token and (S3) rejects a request that carries one.
        headers = self.headers("application/octet-stream", with_token=same_host)
        # The bytes are held to the listed size; a compressed transfer would hide a short one.
        headers["Accept-Encoding"] = "identity"
        for _ in range(MAX_REDIRECTS + 1):
            with self._stream("GET", url, deadline, headers=headers) as response:
                if response.is_redirect:
                    location = response.headers.get("location")
                    if not location:
                        raise GitHubError(f"{self.name}: redirect without Location from {safe_url(url)}")
                    url = str(response.url.join(location))
                    if httpx.URL(url).scheme not in {"http", "https"}:
                        raise GitHubError(f"{self.name}: refusing redirect to {safe_url(url)}")
                    headers = {**self.headers("application/octet-stream", with_token=False)}
                    headers["Accept-Encoding"] = "identity"
                    continue
                if response.status_code != 200:
                    with contextlib.suppress(httpx.HTTPError):
                        response.read()
                    raise self.status_error(response)
                return self._copy_body(response, out, name, listed, cap, on_first_chunk)
        raise GitHubError(f"{self.name}: more than {MAX_REDIRECTS} redirects downloading {name}")

    def _copy_body(  # noqa: PLR0917
        self,
        response: httpx.Response,
        out: IO[bytes],
        name: str,
        listed: int | None,
        cap: int | None,
        on_first_chunk: Callable[[], None] | None,
    ) -> int:
        where = safe_url(response.url)
        declared = response.headers.get("content-length")
        expected = int(declared) if declared and declared.isdigit() else None
        # Content-Length counts encoded bytes, so it only compares for an unencoded body.
        identity = response.headers.get("content-encoding", "identity").lower() == "identity"
        if listed is None and cap is not None and expected is not None and expected > cap:
            raise TooLarge(f"{self.name}: {name} is {expected} bytes, over the {cap}-byte cap ({where})")
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if listed is not None and size > listed:
                raise GitHubError(f"{self.name}: {name}: more bytes than the {listed} the release lists ({where})")
            if cap is not None and size > cap:
                raise TooLarge(f"{self.name}: {name} exceeds the {cap}-byte cap ({where})")
            out.write(chunk)
            if size == len(chunk) and on_first_chunk is not None:
                on_first_chunk()
        if listed is not None and size != listed:
            raise GitHubError(f"{self.name}: {name} truncated: got {size} of the {listed} bytes listed ({where})")
        # h11 already refuses a short body; this also covers transports that do not.
        if expected is not None and identity and size < expected:
            raise GitHubError(f"{self.name}: {name} truncated: got {size} of {expected} bytes ({where})")
        return size

    # --- publishing ----------------------------------------------------------------------------

    def create_draft(self, tag: str, name: str, body: str, deadline: Deadline) -> dict[str, Any]:
        payload = {"tag_name": tag, "name": name, "body": body, "draft": True, "prerelease": False}
        return dict(self.request("POST", self.releases_url, 201, deadline, json=payload))

    def upload(self, upload_url: str, file_name: str, content: bytes, deadline: Deadline) -> None:
        url = upload_url.split("{", 1)[0]  # the URI template: `.../assets{?name,label}`
        headers = {"Content-Type": "application/octet-stream"}
        self.request("POST", url, 201, deadline, params={"name": file_name}, content=content, headers=headers)

    def publish(self, release_id: int, deadline: Deadline) -> dict[str, Any]:
        return dict(self.request("PATCH", f"{self.releases_url}/{release_id}", 200, deadline, json={"draft": False}))

    # --- errors --------------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def network_error(self, url: str, error: httpx.HTTPError) -> GitHubError:
        kind = type(error).__name__
        detail = self.redact(str(error)) or kind
        return GitHubError(f"{self.name}: request to {safe_url(url)} failed ({kind}: {detail})")

    def status_error(self, response: httpx.Response, body: bytes | None = None, method: str = "") -> GitHubError:
        status = response.status_code
        where = f"{method}{safe_url(response.url)}"
        message = ""
        with contextlib.suppress(ValueError, AttributeError, httpx.ResponseNotRead):
            payload = json.loads(body) if body is not None else response.json()
            message = str(payload.get("message", ""))
            if payload.get("errors"):
                message += f" {payload['errors']}"
        message = self.redact(message[:300])
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
            return GitHubError(f"{self.name}: {where} rejected the request (HTTP 401{said}); {hint}")
        if status == 404:
            hint = "" if self._token else " (a private repository needs GITHUB_TOKEN)"
            return GitHubError(f"{self.name}: {where} not found (HTTP 404{said}){hint}")
        hint = "; check GITHUB_TOKEN" if status == 403 else ""
        return GitHubError(f"{self.name}: {where} answered HTTP {status}{said}{hint}")

    @staticmethod
    def _retry_after(headers: httpx.Headers) -> float | None:
        """Seconds to wait, from `retry-after` or, once the quota is spent, from `x-ratelimit-reset`."""
        wait: float | None = None
        value = headers.get("retry-after")
        if value:
            try:
                wait = float(value)
            except ValueError:
                with contextlib.suppress(TypeError, ValueError, OverflowError):
                    wait = float(email.utils.parsedate_to_datetime(value).timestamp()) - time.time()
        if wait is None and headers.get("x-ratelimit-remaining") == "0":
            wait = DEFAULT_RETRY_AFTER
            with contextlib.suppress(TypeError, ValueError):
                # +1: the reset time is whole seconds; asking again in the same second fails again
                wait = max(1.0, float(headers.get("x-ratelimit-reset", "")) - time.time() + 1.0)
        if wait is None:
            return None
        if not math.isfinite(wait):
            return DEFAULT_RETRY_AFTER
        return min(max(0.0, wait), MAX_RETRY_AFTER)
