"""A local stand-in for the GitHub Releases REST API, faithful to GitHub's documented behaviour
for the few endpoints the poller uses, with switches for the failures the real one produces.

- `GET /repos/{o}/{r}/releases`: newest first; drafts only for authenticated callers (GitHub shows
  them to users with push access only); `per_page` (default 30, at most 100) and `page`, with a
  `Link` header whose URLs use `/repositories/{id}/releases` as GitHub's do, so a client must follow
  them as given; a weak ETag, and 304 on a matching `If-None-Match`.
- `GET /repos/{o}/{r}/releases/latest`: the most recent published (non-draft, non-prerelease) one.
- `GET /repos/{o}/{r}/releases/assets/{id}`: the asset's JSON, or with `Accept: application/octet-stream`
  a 302 to `/download/{id}?X-Amz-...`, the stand-in for the pre-signed storage URL.
- `GET /download/{id}`: the bytes. Like S3 with a pre-signed URL, it answers 400 to a request that
  also carries an Authorization header.
- Every API response carries `x-ratelimit-*`; each counts against the caller's quota (60 an hour
  unauthenticated, 5,000 with a token) except a 304 to an authenticated request, and a spent quota
  answers 403 until the reset time.

Write endpoints (what a publisher uses), each needing a token (401 without one, as GitHub answers):

- `POST /repos/{o}/{r}/releases`: 201 with the release JSON, whose `upload_url` is
  `{api}/uploads/repos/{o}/{r}/releases/{id}/assets{?name,label}` (GitHub's is on uploads.github.com);
  422 for a missing or already used `tag_name`.
- `POST /uploads/repos/{o}/{r}/releases/{id}/assets?name=FILE`: stores the body as an asset, 201;
  422 for a missing or already used name. `fail_upload(n)` makes the n-th upload from now fail.
- `PATCH /repos/{o}/{r}/releases/{id}`: changes `draft`, `prerelease`, `name`, `body`, `tag_name`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

DOCS = "https://docs.github.com/rest"
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass
class Exchange:
    method: str
    path: str
    headers: dict[str, str]
    status: int = 0


@dataclass
class _Release:
    id: int
    tag: str
    files: dict[str, tuple[int, bytes]]  # name -> (asset id, bytes)
    draft: bool
    prerelease: bool
    created_at: datetime
    name: str = ""
    body: str = ""


@dataclass
class _Fault:
    status: int
    headers: dict[str, str]
    times: int


@dataclass
class _Quota:
    limit: int
    used: int = 0
    reset: int = field(default_factory=lambda: int(time.time()) + 3600)


class GitHubServer:
    """Start with `with GitHubServer() as server:` or the `github_server` fixture."""

    def __init__(self, owner: str = "octo-org", repo: str = "digits") -> None:
        self.owner, self.name = owner, repo
        self.repo_id = 4242
        self.require_token: str | None = None
        self.truncate_downloads = False
        # GitHub may also stream an asset directly (200) instead of redirecting: clients must take both
        self.redirect_downloads = True
        self._releases: list[_Release] = []
        self._next_id = 1000
        self._faults: list[_Fault] = []
        self._quotas: dict[str, _Quota] = {}
        self._exchanges: list[Exchange] = []
        self._uploads = 0  # uploads answered so far
        self._failing_upload: tuple[int, int] | None = None  # (upload number, status)
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> GitHubServer:
        server = self

        class Handler(_Handler):
            github = server

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="github-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        # keep-alive connections outlive the listener; close them so a stopped server is really gone
        with self._lock:
            for connection in list(self._connections):
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None

    def __enter__(self) -> GitHubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def repo(self) -> str:
        return f"{self.owner}/{self.name}"

    # --- test API ------------------------------------------------------------------------------

    def add_release(
        self, tag: str, files: dict[str, bytes], draft: bool = False, prerelease: bool = False
    ) -> dict[str, Any]:
        """Publish a release, later (by `created_at`) than every release added before it."""
        with self._lock:
            release_id = self._take_id()
            assets = {name: (self._take_id(), data) for name, data in files.items()}
            created = EPOCH + timedelta(minutes=len(self._releases))
            release = _Release(release_id, tag, assets, draft, prerelease, created)
            self._releases.append(release)
        return self._release_json(release, f"http://127.0.0.1:{self.port}" if self._httpd else "http://localhost")

    def fail_next(self, status: int, headers: dict[str, str] | None = None, times: int = 1) -> None:
        """The next `times` requests (any path) answer `status` with GitHub's JSON error body."""
        with self._lock:
            self._faults.append(_Fault(status, dict(headers or {}), times))

    def fail_upload(self, nth: int = 1, status: int = 502) -> None:
        """The `nth` asset upload from now answers `status` (and stores nothing)."""
        with self._lock:
            self._failing_upload = (self._uploads + nth, status)

    def release(self, tag: str) -> dict[str, Any] | None:
        """The JSON of the release tagged `tag` (drafts too), or None."""
        with self._lock:
            found = next((r for r in self._releases if r.tag == tag), None)
        return None if found is None else self._release_json(found, self.api_url)

    def release_tags(self) -> list[tuple[str, bool, bool]]:
        """(tag, draft, prerelease) of every release, in the order they were created."""
        with self._lock:
            return [(r.tag, r.draft, r.prerelease) for r in self._releases]

    def asset_bytes(self, tag: str, name: str) -> bytes:
        with self._lock:
            release = next(r for r in self._releases if r.tag == tag)
            return release.files[name][1]

    def rate_limited(self, reset_in_seconds: float) -> None:
        """Spend every caller's quota; it comes back `reset_in_seconds` from now."""
        reset = int(time.time() + reset_in_seconds)
        with self._lock:
            for key in ("anonymous", *([self.require_token] if self.require_token else [])):
                self._quota(key)
            for quota in self._quotas.values():
                quota.used, quota.reset = quota.limit, reset
            self._spent_until = reset

    @property
    def exchanges(self) -> list[Exchange]:
        with self._lock:
            return list(self._exchanges)

    @property
    def requests(self) -> list[tuple[str, str, dict[str, str]]]:
        """(method, path with query, headers with lower-case names) of every request answered."""
        return [(e.method, e.path, e.headers) for e in self.exchanges]

    def clear_requests(self) -> None:
        with self._lock:
            self._exchanges.clear()

    def remaining(self, token: str | None = None) -> int:
        with self._lock:
            quota = self._quota(token or "anonymous")
            return quota.limit - quota.used

    # --- internals used by the handler ---------------------------------------------------------

    _spent_until = 0

    def _take_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _quota(self, key: str) -> _Quota:
        quota = self._quotas.get(key)
        now = int(time.time())
        if quota is None:
            quota = _Quota(limit=60 if key == "anonymous" else 5000)
            if self._spent_until > now:
                quota.used, quota.reset = quota.limit, self._spent_until
            self._quotas[key] = quota
        if quota.reset <= now:
            quota.used, quota.reset = 0, now + 3600
        return quota

    def _take_fault(self) -> _Fault | None:
        with self._lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            fault.times -= 1
            if fault.times <= 0:
                self._faults.pop(0)
            return fault

    def _visible_releases(self, authenticated: bool) -> list[_Release]:
        with self._lock:
            releases = [r for r in self._releases if authenticated or not r.draft]
        return sorted(releases, key=lambda r: r.created_at, reverse=True)

    def _find_asset(self, asset_id: int) -> tuple[_Release, str, bytes] | None:
        with self._lock:
            for release in self._releases:
                for name, (aid, data) in release.files.items():
                    if aid == asset_id:
                        return release, name, data
        return None

    def _release_json(self, release: _Release, base: str) -> dict[str, Any]:
        repo_url = f"{base}/repos/{self.owner}/{self.name}"
        stamp = release.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "url": f"{repo_url}/releases/{release.id}",
            "html_url": f"https://github.com/{self.owner}/{self.name}/releases/tag/{release.tag}",
            "assets_url": f"{repo_url}/releases/{release.id}/assets",
            "id": release.id,
            "node_id": f"RE_{release.id}",
            "tag_name": release.tag,
            "target_commitish": "main",
            "upload_url": f"{base}/uploads/repos/{self.owner}/{self.name}/releases/{release.id}/assets{{?name,label}}",
            "name": release.name or release.tag,
            "body": release.body,
            "draft": release.draft,
            "prerelease": release.prerelease,
            "created_at": stamp,
            "published_at": None if release.draft else stamp,
            "author": {"login": "octocat", "id": 1, "type": "User"},
            "assets": [self._asset_json(release, name, aid, data, base) for name, (aid, data) in release.files.items()],
        }

    def _asset_json(self, release: _Release, name: str, asset_id: int, data: bytes, base: str) -> dict[str, Any]:
        stamp = release.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "url": f"{base}/repos/{self.owner}/{self.name}/releases/assets/{asset_id}",
            "browser_download_url": f"https://github.com/{self.owner}/{self.name}/releases/download/{release.tag}/{name}",
            "id": asset_id,
            "node_id": f"RA_{asset_id}",
            "name": name,
            "label": None,
            "state": "uploaded",
            "content_type": "application/octet-stream",
            "size": len(data),
            "download_count": 0,
            "created_at": stamp,
            "updated_at": stamp,
            "uploader": {"login": "octocat", "id": 1, "type": "User"},
        }


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-request (a killed poller) is no server error worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    github: GitHubServer
    protocol_version = "HTTP/1.1"
    timeout = 30  # an idle keep-alive connection must not pin a handler thread forever

    def setup(self) -> None:
        super().setup()
        with self.github._lock:
            self.github._connections.add(self.connection)

    def finish(self) -> None:
        with self.github._lock:
            self.github._connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # pytest shows the test's own output; the request log is in `server.requests`

    # --- dispatch ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def _handle(self, method: str) -> None:
        # one handler object serves every request of a keep-alive connection: reset per request
        self._identity: str | None = None
        self._method = method
        self._headers = {k.lower(): v for k, v in self.headers.items()}
        length = self._headers.get("content-length", "0")
        self._body = self.rfile.read(int(length)) if length.isdigit() and int(length) > 0 else b""
        self._exchange = Exchange(method, self.path, self._headers)
        self._recorded = False
        try:
            self._route()
        finally:
            self._record(self._exchange.status)

    def _record(self, status: int) -> None:
        # before the response goes out: once a client has its answer, the test may look at the log
        if not self._recorded:
            self._recorded = True
            self._exchange.status = status
            with self.github._lock:
                self.github._exchanges.append(self._exchange)

    def _route(self) -> None:
        split = urlsplit(self.path)
        self._query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        parts = [p for p in split.path.split("/") if p]
        fault = self.github._take_fault()
        is_api = not (len(parts) == 2 and parts[0] == "download")
        if fault is not None:
            extra = self._rate_headers(count=True) if is_api else {}
            extra.update(fault.headers)
            self._json(fault.status, {"message": _reason(fault.status), "documentation_url": DOCS}, extra)
            return
        if not is_api:
            self._download(parts[1])
            return
        self._identity = self._authenticate()
        if self._identity is None:
            self._json(401, {"message": "Bad credentials", "documentation_url": DOCS}, {}, count=False)
            return
        quota = self.github._quota(self._identity)
        if quota.used >= quota.limit:
            who = "127.0.0.1" if self._identity == "anonymous" else "user ID 1"
            message = f"API rate limit exceeded for {who}. (But here's the good news: authenticated requests get a higher rate limit.)"
            self._json(403, {"message": message, "documentation_url": DOCS}, {}, count=False)
            return
        repo_path = [self.github.owner.lower(), self.github.name.lower()]
        uploads = parts[:1] == ["uploads"]  # uploads.github.com's paths, here under /uploads
        parts = parts[1:] if uploads else parts
        if len(parts) >= 3 and parts[0] == "repos" and [p.lower() for p in parts[1:3]] == repo_path:
            rest = parts[3:]
        elif len(parts) >= 2 and parts[0] == "repositories" and parts[1] == str(self.github.repo_id):
            rest = parts[2:]
        else:
            rest = None
        if uploads or self._method != "GET":
            self._write(rest, uploads)
        elif rest == ["releases"]:
            self._list()
        elif rest == ["releases", "latest"]:
            self._latest()
        elif rest is not None and len(rest) == 3 and rest[:2] == ["releases", "assets"] and rest[2].isdigit():
            self._asset(int(rest[2]))
        else:
            self._json(404, {"message": "Not Found", "documentation_url": DOCS}, {})

    def _authenticate(self) -> str | None:
        """The quota key of the caller, or None for a rejected token."""
        auth = self._headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "basic":
            # GitHub takes a token as the password of Basic authentication (a URL's user info)
            try:
                token = base64.b64decode(token.strip(), validate=True).decode().partition(":")[2]
            except (ValueError, UnicodeDecodeError):
                token = ""
        else:
            token = token.strip() if scheme.lower() in {"bearer", "token"} else ""
        if self.github.require_token is not None:
            return token if token == self.github.require_token else None
        if auth and not token:
            return None
        return token or "anonymous"

    # --- endpoints -----------------------------------------------------------------------------

    @property
    def _base(self) -> str:
        return f"http://{self._headers.get('host', f'127.0.0.1:{self.github.port}')}"

    def _list(self) -> None:
        per_page = _int(self._query.get("per_page"), 30, 1, 100)
        page = _int(self._query.get("page"), 1, 1, 10**6)
        releases = self.github._visible_releases(authenticated=self._identity != "anonymous")
        body = [self.github._release_json(r, self._base) for r in releases[(page - 1) * per_page : page * per_page]]
        last = max(1, -(-len(releases) // per_page))
        headers: dict[str, str] = {}
        links = []
        link_base = f"{self._base}/repositories/{self.github.repo_id}/releases?per_page={per_page}&page="
        if page < last:
            links += [f'<{link_base}{page + 1}>; rel="next"', f'<{link_base}{last}>; rel="last"']
        if page > 1:
            links += [f'<{link_base}1>; rel="first"', f'<{link_base}{min(page - 1, last)}>; rel="prev"']
        if links:
            headers["Link"] = ", ".join(links)
        self._json_cached(body, headers)

    # --- write endpoints -----------------------------------------------------------------------

    def _write(self, rest: list[str] | None, uploads: bool) -> None:
        if self._identity == "anonymous":
            self._json(401, {"message": "Requires authentication", "documentation_url": DOCS}, {}, count=False)
        elif rest is None:
            self._json(404, {"message": "Not Found", "documentation_url": DOCS}, {})
        elif not uploads and self._method == "POST" and rest == ["releases"]:
            self._create_release()
        elif uploads and self._method == "POST" and len(rest) == 3 and rest[0] == "releases" and rest[2] == "assets":
            self._upload(rest[1])
        elif not uploads and self._method == "PATCH" and len(rest) == 2 and rest[0] == "releases":
            self._update_release(rest[1])
        else:
            self._json(404, {"message": "Not Found", "documentation_url": DOCS}, {})

    def _payload(self) -> dict[str, Any] | None:
        try:
            payload = json.loads(self._body or b"{}")
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            self._json(400, {"message": "Problems parsing JSON", "documentation_url": DOCS}, {})
            return None
        return payload

    def _invalid(self, resource: str, field_name: str, code: str) -> None:
        errors = [{"resource": resource, "code": code, "field": field_name}]
        self._json(422, {"message": "Validation Failed", "errors": errors, "documentation_url": DOCS}, {})

    def _release_by_id(self, raw_id: str) -> _Release | None:
        with self.github._lock:
            return next((r for r in self.github._releases if raw_id.isdigit() and r.id == int(raw_id)), None)

    def _create_release(self) -> None:
        payload = self._payload()
        if payload is None:
            return
        tag = payload.get("tag_name")
        if not isinstance(tag, str) or not tag:
            self._invalid("Release", "tag_name", "missing_field")
            return
        with self.github._lock:
            if any(r.tag == tag for r in self.github._releases):
                taken = True
            else:
                taken = False
                release = _Release(
                    self.github._take_id(),
                    tag,
                    {},
                    bool(payload.get("draft", False)),
                    bool(payload.get("prerelease", False)),
                    EPOCH + timedelta(minutes=len(self.github._releases)),
                    name=str(payload.get("name") or ""),
                    body=str(payload.get("body") or ""),
                )
                self.github._releases.append(release)
        if taken:
            self._invalid("Release", "tag_name", "already_exists")
            return
        self._json(201, self.github._release_json(release, self._base), {})

    def _upload(self, raw_id: str) -> None:
        release = self._release_by_id(raw_id)
        if release is None:
            self._json(404, {"message": "Not Found", "documentation_url": DOCS}, {})
            return
        with self.github._lock:
            self.github._uploads += 1
            failing = self.github._failing_upload
            fail = failing is not None and failing[0] == self.github._uploads
        if fail:
            assert failing is not None
            self._json(failing[1], {"message": _reason(failing[1]), "documentation_url": DOCS}, {})
            return
        name = self._query.get("name")
        if not name:
            self._invalid("ReleaseAsset", "name", "missing_field")
            return
        if not self._headers.get("content-type"):
            self._invalid("ReleaseAsset", "content_type", "missing_field")
            return
        with self.github._lock:
            taken = name in release.files
            if not taken:
                asset_id = self.github._take_id()
                release.files[name] = (asset_id, self._body)
        if taken:
            self._invalid("ReleaseAsset", "name", "already_exists")
            return
        self._json(201, self.github._asset_json(release, name, asset_id, self._body, self._base), {})

    def _update_release(self, raw_id: str) -> None:
        release = self._release_by_id(raw_id)
        if release is None:
            self._json(404, {"message": "Not Found", "documentation_url": DOCS}, {})
            return
        payload = self._payload()
        if payload is None:
            return
        with self.github._lock:
            for key in ("draft", "prerelease"):
                if key in payload:
                    setattr(release, key, bool(payload[key]))
            for key in ("name", "body"):
                if key in payload:
                    setattr(release, key, str(payload[key] or ""))
            if isinstance(payload.get("tag_name"), str) and payload["tag_name"]:
                release.tag = payload["tag_name"]
        self._json(200, self.github._release_json(release, self._base), {})

    def _latest(self) -> None:
        for release in self.github._visible_releases(authenticated=False):
            if not release.prerelease:
                self._json_cached(self.github._release_json(release, self._base), {})
                return
        self._json(404, {"message": "Not Found", "documentation_url": DOCS}, {})

    def _asset(self, asset_id: int) -> None:
        found = self.github._find_asset(asset_id)
        if found is None or (found[0].draft and self._identity == "anonymous"):
            self._json(404, {"message": "Not Found", "documentation_url": DOCS}, {})
            return
        release, name, data = found
        if "application/octet-stream" not in self._headers.get("accept", ""):
            self._json_cached(self.github._asset_json(release, name, asset_id, data, self._base), {})
            return
        if not self.github.redirect_downloads:
            self._bytes(data, self._rate_headers(count=True))
            return
        signature = hashlib.sha256(f"{asset_id}:{time.time()}".encode()).hexdigest()
        location = (
            f"{self._base}/download/{asset_id}?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            f"&X-Amz-Expires=300&X-Amz-Signature={signature}&response-content-type=application%2Foctet-stream"
        )
        headers = {"Location": location, **self._rate_headers(count=True)}
        self._send(302, b"", headers)

    def _download(self, raw_id: str) -> None:
        found = self.github._find_asset(int(raw_id)) if raw_id.isdigit() else None
        if found is None or "X-Amz-Signature" not in self._query:
            self._xml(403, "AccessDenied", "Request has expired or is not signed")
            return
        if "authorization" in self._headers:
            self._xml(
                400,
                "InvalidArgument",
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature "
                "query string parameter or the Authorization header should be specified",
            )
            return
        self._bytes(found[2], {})

    # --- responses -----------------------------------------------------------------------------

    def _rate_headers(self, count: bool) -> dict[str, str]:
        identity = self._identity or "anonymous"
        with self.github._lock:
            quota = self.github._quota(identity)
            if count and quota.used < quota.limit:
                quota.used += 1
            return {
                "x-ratelimit-limit": str(quota.limit),
                "x-ratelimit-remaining": str(quota.limit - quota.used),
                "x-ratelimit-reset": str(quota.reset),
                "x-ratelimit-used": str(quota.used),
                "x-ratelimit-resource": "core",
            }

    def _json_cached(self, payload: Any, headers: dict[str, str]) -> None:
        body = json.dumps(payload, indent=1).encode()
        etag = f'W/"{hashlib.sha256(body).hexdigest()[:32]}"'
        candidates = {c.strip().removeprefix("W/") for c in self._headers.get("if-none-match", "").split(",")}
        common = {"ETag": etag, "Cache-Control": "private, max-age=60, s-maxage=60", "Vary": "Accept, Authorization"}
        if etag.removeprefix("W/") in candidates or "*" in candidates:
            # free only when authenticated: GitHub counts anonymous conditional requests
            free = self._identity != "anonymous"
            self._send(304, b"", {**common, **headers, **self._rate_headers(count=not free)})
            return
        self._send(
            200, body, {**common, **headers, **self._rate_headers(count=True)}, "application/json; charset=utf-8"
        )

    def _json(self, status: int, payload: Any, headers: dict[str, str], count: bool = True) -> None:
        if not any(k.lower().startswith("x-ratelimit-") for k in headers):
            headers = {**self._rate_headers(count=count), **headers}
        self._send(status, json.dumps(payload).encode(), headers, "application/json; charset=utf-8")

    def _xml(self, status: int, code: str, message: str) -> None:
        body = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>'
        self._send(status, body.encode(), {}, "application/xml")

    def _bytes(self, data: bytes, headers: dict[str, str]) -> None:
        if self.github.truncate_downloads:
            self._record(200)
            self.send_response(200)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data) + 1024))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self._send(200, data, headers, "application/octet-stream")

    def _send(self, status: int, body: bytes, headers: dict[str, str], content_type: str | None = None) -> None:
        self._record(status)
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if content_type and status != 304:
            self.send_header("Content-Type", content_type)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)


def _int(value: str | None, default: int, low: int, high: int) -> int:
    try:
        return min(high, max(low, int(value))) if value is not None else default
    except ValueError:
        return default


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
