"""Redirects never carry the client's Host: every route the app would redirect to answers with a path.

Starlette redirects a path with a trailing slash to the route without one (and the reverse, and a
page folder to its index); it builds the URL from the request's Host header. The service turns
those into paths, which the client resolves against the URL it asked for, so a forged Host cannot
send it elsewhere and, behind TLS or on another port, the scheme and port stay right.
"""

from __future__ import annotations

import re
from pathlib import Path

from starlette.routing import Mount, Route

STATIC = Path(__file__).resolve().parents[3] / "frontend" / "static"
FORGED = {"Host": "evil.example:8443", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}


def spelled_otherwise(path: str) -> str:
    """The path with a trailing slash it does not have, or without the one it has."""
    path = re.sub(r"\{[^}]+\}", "mnist-cnn", path)
    return path.rstrip("/") if path.endswith("/") else path + "/"


def redirect_candidates(client) -> list[tuple[str, str]]:
    """(method, path) for every documented route and every route and folder of Starlette's own."""
    found = [
        (method.upper(), spelled_otherwise(path))
        for path, operations in client.get("/openapi.json").json()["paths"].items()
        for method in operations
    ]
    for route in client.app.routes:
        if isinstance(route, Mount):
            found.append(("GET", route.path.rstrip("/")))
        elif isinstance(route, Route) and route.path != "/":
            found += [(method, spelled_otherwise(route.path)) for method in sorted(route.methods or {"GET"})]
    return found


def test_every_redirect_is_a_path_whatever_host_the_client_sends(make_client, shipped_model_dir) -> None:
    client = make_client(shipped_model_dir, static_dir=STATIC)
    redirects = {}
    for method, path in redirect_candidates(client):
        for prefix in ("", "/api"):
            response = client.request(method, prefix + path, headers=FORGED, follow_redirects=False)
            if 300 <= response.status_code < 400:
                redirects[f"{method} {prefix}{path}"] = response.headers["location"]
    # The trailing-slash redirects of the API's routes and the page's folders, with and without /api.
    assert len(redirects) >= 20, redirects
    for request, location in redirects.items():
        assert location.startswith("/") and not location.startswith("//"), (request, location)
        assert "evil" not in location, (request, location)
    assert redirects["GET /api/feedback/stats/"] == "/api/feedback/stats"
    assert redirects["GET /js"] == "/js/"


def test_a_redirect_path_leads_to_the_route(make_client, shipped_model_dir) -> None:
    client = make_client(shipped_model_dir, static_dir=STATIC)
    response = client.get("/api/model/", headers=FORGED, follow_redirects=True)
    assert response.status_code == 200
    assert response.url.path == "/api/model"


def test_a_redirect_without_a_host_header_is_a_path_too(make_client, shipped_model_dir) -> None:
    client = make_client(shipped_model_dir)
    response = client.get("/model/", headers={"Host": ""}, follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/model"
