"""A GitHub Releases API that misbehaves on purpose, on raw sockets: it trickles, stalls, loops
redirects, lies about sizes and sends broken compression.

Independent of github_server.py (the well-behaved stand-in): it writes HTTP by hand, so nothing in
it is shaped by the client under test. One release, `model-v<N>`, with the files it is given.

    with HostileServer({"model.tflite": ..., "model.json": ..., "SHA256SUMS": ...}, version=2) as server:
        server.listing = "trickle-headers"   # or set server.asset, server.listed_size
"""

from __future__ import annotations

import gzip
import json
import socket
import socketserver
import threading
import time
from typing import Any

OWNER_REPO = "hostile/digits"

# How the listing (GET /repos/OWNER/REPO/releases) misbehaves.
LISTING_MODES = (
    "ok", "trickle-headers", "stall", "trickle-body", "endless-body", "304-unconditional", "broken-gzip", "deep-json",
)  # fmt: skip
# How the asset download (GET .../releases/assets/ID) misbehaves.
ASSET_MODES = (
    "ok", "trickle", "stall-after-headers", "redirect-loop", "short", "long", "truncated-gzip", "broken-gzip",
    "relative-redirect",
)  # fmt: skip
# The query a relative redirect carries, as a pre-signed storage URL's: a credential.
SIGNED_QUERY = "X-Amz-Credential=AKIDEXAMPLE%2F20260101&X-Amz-Signature=0123456789abcdefsecret"


class HostileServer:
    def __init__(self, files: dict[str, bytes], version: int = 2, trickle_every: float = 0.2) -> None:
        self.files = files
        self.version = version
        self.trickle_every = trickle_every
        self.listing = "ok"
        self.asset = "ok"
        self.listed_size: dict[str, int] = {}  # name -> size the listing claims (default: the truth)
        self.asset_url: dict[str, str] = {}  # name -> URL the listing gives (default: the server's own)
        self.requests: list[str] = []
        self._server: socketserver.ThreadingTCPServer | None = None
        self._stop = threading.Event()

    # --- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> HostileServer:
        owner = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                owner._handle(self.request)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def api_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # --- HTTP by hand --------------------------------------------------------------------------

    def _handle(self, conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                return
            head += chunk
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        path = request_line.split(" ")[1]
        self.requests.append(path)
        try:
            if path.startswith("/storage/"):
                self._send(conn, 200, self.files[sorted(self.files)[int(path.split("/")[2].split("?")[0]) - 100]])
            elif path.startswith(f"/repos/{OWNER_REPO}/releases/assets/"):
                self._asset(conn, path.rsplit("/", 1)[1])
            elif path.startswith(f"/repos/{OWNER_REPO}/releases"):
                self._listing(conn)
            else:
                self._send(conn, 404, b'{"message": "Not Found"}')
        except OSError:
            pass  # the client hung up: what a deadline does

    def _send(self, conn: socket.socket, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    def _trickle(self, conn: socket.socket, data: bytes, forever: bytes = b" ") -> None:
        """Send `data`, then `forever`, one byte every trickle_every seconds, until told to stop."""
        stream = iter(data)
        while not self._stop.is_set():
            byte = next(stream, None)
            conn.sendall(bytes([byte]) if byte is not None else forever)
            time.sleep(self.trickle_every)

    def _release_json(self) -> list[dict[str, Any]]:
        base = self.api_url
        assets = [
            {
                "id": 100 + i,
                "name": name,
                "url": self.asset_url.get(name, f"{base}/repos/{OWNER_REPO}/releases/assets/{100 + i}"),
                "size": self.listed_size.get(name, len(data)),
                "updated_at": "2026-01-01T00:00:00Z",
            }
            for i, (name, data) in enumerate(sorted(self.files.items()))
        ]
        tag = f"model-v{self.version}"
        return [{"id": 1, "tag_name": tag, "draft": False, "prerelease": False, "assets": assets}]

    def _listing(self, conn: socket.socket) -> None:
        body = json.dumps(self._release_json()).encode()
        mode = self.listing
        if mode == "ok":
            self._send(conn, 200, body, {"Content-Type": "application/json"})
        elif mode == "trickle-headers":
            self._trickle(conn, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n", forever=b"X")
        elif mode == "stall":
            self._stop.wait(60)
        elif mode == "trickle-body":
            conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body) + 10_000}\r\n\r\n".encode())
            self._trickle(conn, body)
        elif mode == "endless-body":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n[")
            while not self._stop.is_set():
                conn.sendall(b'{"tag_name": "x"},' * 10_000)
        elif mode == "304-unconditional":
            conn.sendall(b'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\nConnection: close\r\n\r\n')
        elif mode == "broken-gzip":
            self._send(conn, 200, b"\x1f\x8b\x08\x00garbage, not deflate", {"Content-Encoding": "gzip"})
        elif mode == "deep-json":  # well-formed, and deeper than any parser's recursion
            self._send(conn, 200, b"[" * 200_000 + b"]" * 200_000, {"Content-Type": "application/json"})

    def _asset(self, conn: socket.socket, raw_id: str) -> None:
        names = sorted(self.files)
        index = int(raw_id) - 100 if raw_id.isdigit() else -1
        if not 0 <= index < len(names):
            self._send(conn, 404, b'{"message": "Not Found"}')
            return
        data = self.files[names[index]]
        mode = self.asset
        if mode == "ok":
            self._send(conn, 200, data, {"Content-Type": "application/octet-stream"})
        elif mode == "trickle":
            conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {len(data)}\r\n\r\n".encode())
            self._trickle(conn, data)
        elif mode == "stall-after-headers":
            conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {len(data)}\r\n\r\n".encode())
            self._stop.wait(60)
        elif mode == "redirect-loop":
            location = f"{self.api_url}/repos/{OWNER_REPO}/releases/assets/{raw_id}"
            self._send(conn, 302, b"", {"Location": location})
        elif mode == "short":  # says it all, sends half, hangs up
            conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data[: len(data) // 2])
        elif mode == "long":  # more bytes than the listing says, with no length up front
            conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + data + b"\0" * 4096)
        elif mode == "truncated-gzip":
            packed = gzip.compress(data)
            self._send(conn, 200, packed[: len(packed) // 2], {"Content-Encoding": "gzip"})
        elif mode == "broken-gzip":
            self._send(conn, 200, b"\x1f\x8b\x08\x00" + data[:1000], {"Content-Encoding": "gzip"})
        elif mode == "relative-redirect":
            self._send(conn, 302, b"", {"Location": f"/storage/{raw_id}?{SIGNED_QUERY}"})
