"""nginx in front of the API, as in production: the real nginx (Debian's) on the config rendered
from frontend/nginx/default.conf.template, the real API as a subprocess, httpx as the client.

Covers what the template promises: `nginx -t` passes; the page with its security headers and
caching; /api/ proxied as sent (the API's one prefix); request ids; the metrics kept private under
every spelling; gixy on the rendered config; the 2 MiB body limit; the rate limit; gzip; JSON
answers when the API is down.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from digit_testing.processes import running_api
from digit_testing.tooling import require_tool as require

from .stack import REPO, STATIC, Nginx, free_port, nginx_binary, render, start_nginx, stop

TOO_LARGE = {"detail": "request body is larger than the limit of 2097152 bytes"}
TOO_MANY = {"detail": "too many requests, slow down"}


@dataclass
class Api:
    url: str
    log: Path

    def log_lines(self) -> list[dict]:
        """The API's JSON log lines (it logs every request at LOG_LEVEL=debug)."""
        lines = []
        for line in self.log.read_text().splitlines():
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return lines

    def requests_with_id(self, request_id: str, wait: float = 2.0) -> list[dict]:
        """The access lines of the requests that carried `request_id`, waiting up to `wait` seconds
        for them (the API writes its access line once the response is sent)."""
        deadline = time.monotonic() + wait
        while True:
            found = [line for line in self.log_lines() if line.get("request_id") == request_id and "path" in line]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


@pytest.fixture(scope="module")
def nginx_bin() -> str:
    return nginx_binary()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The API serving the shipped model, logging every request so the tests can see what reached it."""
    # PYTHONUNBUFFERED: each log line in the file as it is written
    env = {"LOG_LEVEL": "debug", "PYTHONUNBUFFERED": "1"}
    with running_api(REPO / "api" / "models", tmp_path_factory.mktemp("api"), env) as service:
        yield Api(service.url, service.log)


@pytest.fixture(scope="module")
def proxy(nginx_bin: str, api: Api, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    """nginx with the production defaults (20r/s, burst 40) in front of the API."""
    server, process = start_nginx(nginx_bin, tmp_path_factory.mktemp("nginx"), api.url.removeprefix("http://"))
    yield server
    stop(process)


@pytest.fixture(scope="module")
def client(proxy: Nginx) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy.url, timeout=10) as session:
        yield session


# ---- the rendering itself ------------------------------------------------------------------------


def test_template_placeholders_are_the_documented_ones() -> None:
    assert render.placeholders(render.TEMPLATE.read_text()) == {
        "NGINX_PORT",
        "STATIC_ROOT",
        "API_UPSTREAM",
        "API_RATE_LIMIT",
        "API_RATE_BURST",
        "FEEDBACK_RATE_LIMIT",
        "FEEDBACK_RATE_BURST",
        "NGINX_ACCESS_LOG",
    }


def test_rendering_fills_placeholders_and_leaves_nginx_variables_alone() -> None:
    text = "listen ${NGINX_PORT}; set $x $host; root ${STATIC_ROOT};"
    assert render.render_template(text, {"NGINX_PORT": "8080", "STATIC_ROOT": "/srv"}) == (
        "listen 8080; set $x $host; root /srv;"
    )
    with pytest.raises(render.RenderError, match="STATIC_ROOT"):
        render.render_template(text, {"NGINX_PORT": "8080"})
    with pytest.raises(render.RenderError, match="NGINX_PORT"):
        render.render_template(text, {"NGINX_PORT": "8080; evil", "STATIC_ROOT": "/srv"})


def test_image_entrypoint_renders_the_same_config() -> None:
    """The nginx image runs envsubst on the template with every defined variable of its environment
    (docker-entrypoint.d/20-envsubst-on-templates.sh): that gives what render.py gives, even with
    the variables Kubernetes adds to a pod."""
    envsubst = require("envsubst", "apt-get install gettext-base")
    values = {
        "NGINX_PORT": "8080",
        "STATIC_ROOT": "/usr/share/nginx/html",
        "API_UPSTREAM": "digit-api:8000",
        "API_RATE_LIMIT": "20r/s",
        "API_RATE_BURST": "40",
        "FEEDBACK_RATE_LIMIT": "1r/s",
        "FEEDBACK_RATE_BURST": "10",
        "NGINX_ACCESS_LOG": "/dev/stdout",
    }
    pod = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/home/nginx",
        "HOSTNAME": "frontend-1",
        "NGINX_VERSION": "1.27.0",
        "DIGIT_API_PORT": "tcp://10.0.0.1:8000",
        "DIGIT_API_SERVICE_HOST": "10.0.0.1",
        **values,
    }
    shell_format = " ".join(f"${{{name}}}" for name in pod)  # what the entrypoint passes to envsubst
    template = render.TEMPLATE.read_text()
    rendered = subprocess.run(
        [envsubst, shell_format], input=template, env=pod, capture_output=True, text=True, check=True
    ).stdout
    assert rendered == render.render_template(template, values)


def test_rendered_config_passes_nginx_t(nginx_bin: str, tmp_path: Path) -> None:
    """The `nginx -t` check, through the CLI as a user runs it."""
    port = str(free_port())
    argv = [
        "--api-upstream",
        "127.0.0.1:8000",
        "--port",
        port,
        "--static-root",
        str(STATIC),
        "--out-dir",
        str(tmp_path),
    ]
    assert render.main([*argv, "--check"]) == 0
    site = (tmp_path / "conf.d" / "default.conf").read_text()
    assert "${" not in site
    assert "$digit_request_id" in site and "$binary_remote_addr" in site
    assert f"listen 127.0.0.1:{port};" in site
    assert (tmp_path / "snippets" / "security-headers.conf").is_file()


# ---- the page ------------------------------------------------------------------------------------


def test_page_has_security_headers(client: httpx.Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<canvas" in response.text or "<html" in response.text
    csp = dict(part.strip().split(" ", 1) for part in response.headers["content-security-policy"].split(";"))
    assert csp["script-src"] == "'self'"
    assert "'unsafe-inline'" not in response.headers["content-security-policy"]
    assert csp["default-src"] == "'self'" and csp["frame-ancestors"] == "'none'"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    assert "camera=()" in response.headers["permissions-policy"]
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["server"] == "nginx"  # server_tokens off: no version
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


def test_js_module_is_served_as_javascript(client: httpx.Client) -> None:
    response = client.get("/js/app.js")
    assert response.status_code == 200
    assert "javascript" in response.headers["content-type"]
    assert "max-age=300" in response.headers["cache-control"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.content == (STATIC / "js" / "app.js").read_bytes()


def test_gzip_for_text_when_asked(client: httpx.Client) -> None:
    script = max((STATIC / "js").glob("*.js"), key=lambda path: path.stat().st_size)
    zipped = client.get(f"/js/{script.name}", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers["vary"]
    assert zipped.content == script.read_bytes()  # httpx inflates it
    assert zipped.num_bytes_downloaded < script.stat().st_size / 2
    plain = client.get(f"/js/{script.name}", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert int(plain.headers["content-length"]) == script.stat().st_size


# ---- the API through /api/ -----------------------------------------------------------------------


def test_predict_through_nginx(client: httpx.Client, api: Api, held_out_digits) -> None:
    images, labels = held_out_digits
    version = httpx.get(f"{api.url}/model").json()["version"]
    right = 0
    for image, label in zip(images[:10], labels[:10], strict=True):
        response = client.post("/api/predict", json={"pixels": image.reshape(-1).tolist()})
        assert response.status_code == 200, response.text
        body = response.json()
        assert response.headers["x-model-version"] == body["model_version"] == str(version)
        assert len(body["probabilities"]) == 10
        right += body["prediction"] == int(label)
    assert right >= 9


def test_the_api_gets_the_path_as_sent_under_its_one_prefix(client: httpx.Client, api: Api) -> None:
    rid = f"e2e-prefix-{uuid.uuid4().hex}"
    response = client.get("/api/healthz", headers={"X-Request-Id": rid})
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    # nginx passes the path on untouched; the API answers under /api, once.
    assert [line["path"] for line in api.requests_with_id(rid)] == ["/api/healthz"]
    assert client.get("/api/api/healthz").status_code == 404


def test_client_request_id_reaches_the_api_and_comes_back(client: httpx.Client, api: Api) -> None:
    rid = f"e2e-{uuid.uuid4().hex}"
    response = client.get("/api/model", headers={"X-Request-Id": rid})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == rid
    assert len(response.headers.get_list("x-request-id")) == 1
    assert api.requests_with_id(rid), "the API never saw the client's request id"


def test_invalid_request_id_is_replaced_by_nginx_with_the_same_id_at_the_api(client: httpx.Client, api: Api) -> None:
    response = client.get("/api/healthz", headers={"X-Request-Id": "not valid!"})
    rid = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", rid)
    assert api.requests_with_id(rid)


def test_request_id_on_static_responses(client: httpx.Client) -> None:
    assert client.get("/css/app.css", headers={"X-Request-Id": "abc.123"}).headers["x-request-id"] == "abc.123"


# Every spelling a client might try to reach /metrics (or the API's root, where it lives) through
# nginx: none may answer with the metrics. Sent byte for byte (httpx would normalise them).
METRICS_SPELLINGS = [
    "/api/metrics",
    "/api/metrics/",
    "/api/metrics?format=text",
    "/api/metrics#x",
    "/api/api/metrics",  # nginx once stripped one /api, the API the other
    "/api/api/api/metrics",
    "/api//metrics",
    "//api/metrics",
    "/api///metrics",
    "//api//api//metrics",
    "/api/./metrics",
    "/api/x/../metrics",
    "/api/docs/../metrics",
    "/api/v2/../metrics",
    "/api/api/../metrics",
    "/api/%6detrics",
    "/api/%6Detrics",
    "/api/%6D%65%74%72%69%63%73",
    "/api/%2e/metrics",
    "/api/%2E%2E/api/metrics",
    "/api/%2fmetrics",
    "/api%2fmetrics",
    "/api/api%2fmetrics",
    "/api/..%2fmetrics",
    "/api/%252e%252e/metrics",
    "/api/%2561pi/metrics",
    "/api/METRICS",
    "/api/Metrics",
    "/API/metrics",
    "/Api/Metrics",
    "/api/metrics;x",
    "/api/metrics%3bx",
    "/api/metrics%3F",
    "/api/metrics%20",
    "/api/metrics.",
    "/api/metrics%00",
    "/api/metrics\\",
    "/api\\metrics",
    "/metrics",
    "//metrics",
    "/./metrics",
    "/api/../metrics",
    "/api/%2e%2e/metrics",
    "/x/../metrics",
    "/healthz",  # the API's root is not reachable either: only /api/ is proxied
    "/v2/health/live",
    "/openapi.json",
]
METRIC_NAMES = re.compile(rb"http_requests_total|model_info|predictions_total|# HELP|# TYPE")


def raw_get(url: str, target: str, method: str = "GET", host: str = "localhost") -> tuple[int, bytes]:
    """One request with this exact request-target, on a fresh connection (no client normalises it)."""
    address = url.removeprefix("http://")
    hostname, port = address.rsplit(":", 1)
    with socket.create_connection((hostname, int(port)), timeout=10) as sock:
        sock.sendall(f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode("latin-1"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.mark.parametrize("target", METRICS_SPELLINGS)
def test_no_spelling_reaches_the_metrics(proxy: Nginx, api: Api, target: str) -> None:
    status, body = raw_get(proxy.url, target)
    assert not METRIC_NAMES.search(body), f"{target} exposed metrics"
    assert status in (400, 404), (target, status, body[:200])


@pytest.mark.parametrize(
    "target", ["/api/metrics", "/api/api/metrics", "http://localhost/api/metrics", "http://localhost/api//api/metrics"]
)
@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "OPTIONS", "PROPFIND"])
def test_no_method_or_absolute_form_reaches_the_metrics(proxy: Nginx, target: str, method: str) -> None:
    status, body = raw_get(proxy.url, target, method=method)
    assert not METRIC_NAMES.search(body), (method, target)
    assert status in (400, 404, 405), (method, target, status)


def test_the_spelling_table_can_see_metrics(api: Api) -> None:
    """The detector above does find metrics where they are served: the API itself, directly."""
    status, body = raw_get(api.url, "/metrics")
    assert status == 200 and METRIC_NAMES.search(body)
    status, body = raw_get(api.url, "/api/metrics")
    assert status == 200 and METRIC_NAMES.search(body)


def test_metrics_answer_is_json(client: httpx.Client) -> None:
    for path in ("/api/metrics", "/api/metrics/", "/api/metrics?format=text"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json() == {"detail": "Not Found"}


def test_gixy_finds_nothing_above_low(nginx_bin: str, tmp_path: Path) -> None:
    """gixy on the rendered config: each LOW finding it may report is explained in the template."""
    gixy = require("gixy", "pip install -r requirements-dev.txt (gixy-ng)")
    render.render(tmp_path, api_upstream="127.0.0.1:8000", port=free_port(), static_root=STATIC)
    report = tmp_path / "gixy.json"
    result = subprocess.run(
        [gixy, "-f", "json", "-o", str(report), str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    findings = json.loads(report.read_text() or "[]")
    assert result.returncode in (0, 1), result.stdout + result.stderr  # 1: findings (judged below)
    above_low = [f for f in findings if f["severity"] not in ("UNSPECIFIED", "LOW")]
    assert not above_low, json.dumps(above_low, indent=2)
    template = render.TEMPLATE.read_text()
    for finding in findings:
        assert f"gixy ({finding['severity']}, {finding['plugin']})" in template, f"unexplained: {finding}"


def test_gixy_is_not_a_rubber_stamp(tmp_path: Path) -> None:
    """The check above would catch the old config's finding: a proxy_pass that rewrites the path."""
    gixy = require("gixy", "pip install -r requirements-dev.txt (gixy-ng)")
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        "events {}\nhttp { server { listen 8080; location /api/ { proxy_pass http://127.0.0.1:8000/; } } }\n"
    )
    report = tmp_path / "gixy.json"
    subprocess.run(
        [gixy, "-f", "json", "-o", str(report), str(conf)], capture_output=True, text=True, timeout=120, check=False
    )
    assert {f["plugin"] for f in json.loads(report.read_text()) if f["severity"] in ("MEDIUM", "HIGH")} >= {
        "proxy_pass_normalized"
    }


def test_docs_work_under_the_prefix(client: httpx.Client) -> None:
    docs = client.get("/api/docs")
    assert docs.status_code == 200
    assert "/api/openapi.json" in docs.text
    schema = client.get("/api/openapi.json").json()
    assert schema["servers"] == [{"url": "/api"}]
    assert "/predict" in schema["paths"]


def test_body_over_2_mib_gets_413_from_nginx(client: httpx.Client, api: Api) -> None:
    rid = f"e2e-big-{uuid.uuid4().hex}"
    body = b"[" + b"0," * 1_500_000 + b"0]"  # 3 MB of JSON
    response = client.post(
        "/api/predict", content=body, headers={"Content-Type": "application/json", "X-Request-Id": rid}
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"
    assert response.json() == TOO_LARGE
    assert response.headers["x-request-id"] == rid
    assert response.headers["x-content-type-options"] == "nosniff"
    assert not api.requests_with_id(rid, wait=0.5), "nginx should refuse the body before the API sees it"


def test_nginx_errors_on_v2_paths_have_the_protocols_shape(client: httpx.Client) -> None:
    body = b"[" + b"0," * 1_500_000 + b"0]"
    response = client.post("/api/v2/models/mnist-cnn/infer", content=body)
    assert response.status_code == 413
    assert response.json() == {"error": TOO_LARGE["detail"]}


def test_chunked_body_over_2_mib_gets_413(proxy: Nginx) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"["
        for _ in range(1_500):
            yield b"0," * 1_000
        yield b"0]"

    with httpx.Client(base_url=proxy.url, timeout=10) as fresh:
        response = fresh.post("/api/predict", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json() == TOO_LARGE


def test_body_under_the_limit_reaches_the_api(client: httpx.Client) -> None:
    # 1.5 MB is under both limits: the API, not nginx, judges it (here: not 784 numbers).
    body = b"[" + b"0," * 750_000 + b"0]"
    response = client.post("/api/predict", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert "x-model-version" in response.headers


# ---- rate limit and a missing API: their own nginx instances -------------------------------------


def test_rate_limit_answers_429_json(nginx_bin: str, api: Api, tmp_path: Path) -> None:
    server, process = start_nginx(nginx_bin, tmp_path, api.url.removeprefix("http://"), rate_limit="2r/s", rate_burst=3)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as session:
            responses = [session.get("/api/healthz") for _ in range(20)]
            statuses = [response.status_code for response in responses]
            assert statuses[:4] == [200] * 4, statuses  # the burst is served at once (nodelay)
            limited = [response for response in responses if response.status_code == 429]
            assert len(limited) >= 10, statuses
            assert limited[0].json() == TOO_MANY
            assert limited[0].headers["content-type"] == "application/json"
            assert limited[0].headers["retry-after"] == "1"
            assert limited[0].headers["x-frame-options"] == "DENY"
            # The page itself is not rate limited.
            assert {session.get("/").status_code for _ in range(10)} == {200}
    finally:
        stop(process)


def test_feedback_has_its_own_rate_limit(nginx_bin: str, api: Api, tmp_path: Path) -> None:
    """A flood of verdicts is throttled on its own bucket; predictions from the same client go on."""
    server, process = start_nginx(
        nginx_bin,
        tmp_path,
        api.url.removeprefix("http://"),
        feedback_rate_limit="1r/m",
        feedback_rate_burst=2,
    )
    bad_verdict = {"pixels": [0] * 784, "label": 3}  # refused by the API (empty), but counted by nginx
    try:
        with httpx.Client(base_url=server.url, timeout=10) as session:
            statuses = [session.post("/api/feedback", json=bad_verdict).status_code for _ in range(6)]
            assert statuses[:3] == [422] * 3, statuses  # one, plus the burst of two, reach the API
            assert statuses[3:] == [429] * 3, statuses
            limited = session.post("/api/feedback", json=bad_verdict)
            assert limited.json() == TOO_MANY
            assert session.get("/api/feedback/stats").status_code == 429  # the same bucket
            predictions = [session.post("/api/predict", json=[0] * 784).status_code for _ in range(10)]
            assert predictions == [200] * 10
    finally:
        stop(process)


def test_feedback_reaches_the_api_with_the_prefix_stripped(client: httpx.Client) -> None:
    response = client.get("/api/feedback/stats")
    assert response.status_code == 200, response.text
    assert response.json()["model_version"] == "1"
    assert response.headers["x-frame-options"] == "DENY"


def test_api_down_gives_json_503(nginx_bin: str, tmp_path: Path) -> None:
    server, process = start_nginx(nginx_bin, tmp_path, f"127.0.0.1:{free_port()}")
    try:
        response = httpx.get(f"{server.url}/api/healthz", timeout=10)
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/json"
        assert "detail" in response.json()
        assert response.headers["retry-after"]
        assert httpx.get(f"{server.url}/", timeout=10).status_code == 200
    finally:
        stop(process)


@pytest.mark.parametrize(("path", "location"), [("/api/feedback/", "/api/feedback"), ("/api/model/", "/api/model")])
def test_redirects_through_nginx_are_paths_whatever_the_host(client: httpx.Client, path: str, location: str) -> None:
    """A forged Host (or one behind TLS, on another port) never ends up in a redirect the client follows."""
    response = client.get(path, headers={"Host": "evil.example:8443", "X-Forwarded-Proto": "https"})
    assert response.status_code == 307
    assert response.headers["location"] == location
