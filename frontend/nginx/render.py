"""Render the nginx config for a LOCAL run with the system's nginx, without root.

    python frontend/nginx/render.py --api-upstream 127.0.0.1:8000 --port 8080 --out-dir build/nginx

writes build/nginx/nginx.conf (a whole main config whose pid, logs and temp files stay in the
folder), build/nginx/conf.d/default.conf (default.conf.template with its ${NAME} placeholders
filled in) and build/nginx/snippets/security-headers.conf, then prints the command that starts
nginx in the foreground. `--check` also runs `nginx -t` on the result and returns its status.

The image does not use this script: its entrypoint renders the same template with envsubst.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "default.conf.template"
SECURITY_HEADERS = HERE / "security-headers.conf"
DEFAULT_STATIC_ROOT = HERE.parent / "static"
DEFAULT_MIME_TYPES = Path("/etc/nginx/mime.types")

DEFAULT_RATE_LIMIT = "20r/s"
DEFAULT_RATE_BURST = 40
DEFAULT_FEEDBACK_RATE_LIMIT = "1r/s"
DEFAULT_FEEDBACK_RATE_BURST = 10

# Placeholders are ${UPPER_CASE} only: nginx's own variables ($host, $request_id) are lower case
# and written without braces, so they are never touched.
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
# What a value may contain: enough for host:port, paths and rates, nothing that ends a directive.
SAFE_VALUE = re.compile(r"[A-Za-z0-9_.:/\[\]@+-]+")
RATE = re.compile(r"[1-9][0-9]*r/[sm]")
UPSTREAM = re.compile(r"(\[[0-9A-Fa-f:]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}")


class RenderError(ValueError):
    """The template cannot be rendered with the values given."""


def placeholders(text: str) -> set[str]:
    """The ${NAME} placeholders a template uses."""
    return set(PLACEHOLDER.findall(text))


def render_template(text: str, values: Mapping[str, str]) -> str:
    """Substitute the template's ${NAME} placeholders, and nothing else, from `values`."""
    missing = sorted(placeholders(text) - values.keys())
    if missing:
        raise RenderError(f"no value for the template variable(s) {', '.join(missing)}")
    for name in placeholders(text):
        if not SAFE_VALUE.fullmatch(values[name]):
            raise RenderError(f"{name}={values[name]!r}: only letters, digits and . _ : / [ ] @ + - are allowed")
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], text)


def main_config(out_dir: Path, mime_types: Path = DEFAULT_MIME_TYPES) -> str:
    """A whole nginx.conf whose pid, logs and temp files live in out_dir."""
    tmp = out_dir / "tmp"
    # A root master would run its workers as `nobody`, who cannot read a private out_dir.
    user = "user root;\n" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""
    return f"""# Written by frontend/nginx/render.py for a local run (the image has its own nginx.conf).
{user}worker_processes 1;
# Twice the connections: each proxied request holds a client and an upstream descriptor.
worker_rlimit_nofile 1024;
pid {out_dir}/nginx.pid;
error_log stderr warn;

events {{
    worker_connections 512;
}}

http {{
    include {mime_types};
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65s;
    access_log {out_dir}/access.log;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {out_dir}/conf.d/*.conf;
}}
"""


def render(
    out_dir: Path,
    *,
    api_upstream: str = "127.0.0.1:8000",
    port: int = 8080,
    static_root: Path = DEFAULT_STATIC_ROOT,
    rate_limit: str = DEFAULT_RATE_LIMIT,
    rate_burst: int = DEFAULT_RATE_BURST,
    feedback_rate_limit: str = DEFAULT_FEEDBACK_RATE_LIMIT,
    feedback_rate_burst: int = DEFAULT_FEEDBACK_RATE_BURST,
    host: str = "127.0.0.1",
    mime_types: Path = DEFAULT_MIME_TYPES,
) -> Path:
    """Write out_dir/nginx.conf, conf.d/default.conf and snippets/; return the nginx.conf path."""
    if not UPSTREAM.fullmatch(api_upstream):
        raise RenderError(f"--api-upstream {api_upstream!r} is not HOST:PORT")
    if not 1 <= port <= 65535:
        raise RenderError(f"--port {port} is not a port")
    if not RATE.fullmatch(rate_limit):
        raise RenderError(f"--rate-limit {rate_limit!r} is not nginx's rate syntax, like 20r/s or 600r/m")
    if rate_burst < 0:
        raise RenderError(f"--rate-burst {rate_burst} is negative")
    if not RATE.fullmatch(feedback_rate_limit):
        raise RenderError(f"--feedback-rate-limit {feedback_rate_limit!r} is not nginx's rate syntax, like 1r/s")
    if feedback_rate_burst < 0:
        raise RenderError(f"--feedback-rate-burst {feedback_rate_burst} is negative")
    static_root = Path(static_root).resolve()
    if not (static_root / "index.html").is_file():
        raise RenderError(f"--static-root {static_root} has no index.html")
    if not Path(mime_types).is_file():
        raise RenderError(f"{mime_types} is missing: is nginx installed? (or pass --mime-types)")
    out_dir = Path(out_dir).resolve()
    values = {
        "NGINX_PORT": f"{host}:{port}" if host else str(port),
        "STATIC_ROOT": str(static_root),
        "API_UPSTREAM": api_upstream,
        "API_RATE_LIMIT": rate_limit,
        "API_RATE_BURST": str(rate_burst),
        "FEEDBACK_RATE_LIMIT": feedback_rate_limit,
        "FEEDBACK_RATE_BURST": str(feedback_rate_burst),
        "NGINX_ACCESS_LOG": str(out_dir / "access.log"),
    }
    site = render_template(TEMPLATE.read_text(encoding="utf-8"), values)
    for sub in ("conf.d", "snippets", "tmp"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    (out_dir / "conf.d" / "default.conf").write_text(site, encoding="utf-8")
    shutil.copyfile(SECURITY_HEADERS, out_dir / "snippets" / "security-headers.conf")
    config = out_dir / "nginx.conf"
    config.write_text(main_config(out_dir, Path(mime_types)), encoding="utf-8")
    return config


def find_nginx() -> str | None:
    """The nginx binary: on PATH, or where Debian puts it (/usr/sbin is not on a user's PATH)."""
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


def nginx_command(out_dir: Path, *extra: str, nginx: str = "nginx") -> list[str]:
    """nginx on the rendered folder; `-e stderr` keeps it away from /var/log before it reads the config."""
    out_dir = Path(out_dir).resolve()
    return [nginx, *extra, "-e", "stderr", "-p", str(out_dir), "-c", str(out_dir / "nginx.conf")]


def start_command(out_dir: Path, nginx: str = "nginx") -> list[str]:
    """The command that runs nginx on the rendered folder in the foreground."""
    return [*nginx_command(out_dir, nginx=nginx), "-g", "daemon off;"]


def check(out_dir: Path, nginx: str | None = None) -> subprocess.CompletedProcess[str]:
    """`nginx -t` on the rendered folder (its verdict is on stderr)."""
    binary = nginx or find_nginx()
    if binary is None:
        raise RenderError("nginx is missing: apt-get install nginx")
    return subprocess.run(nginx_command(out_dir, "-t", nginx=binary), capture_output=True, text=True, check=False)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Render frontend/nginx/default.conf.template into a folder for a local nginx run (no root)."
    )
    parser.add_argument("--api-upstream", default="127.0.0.1:8000", help="HOST:PORT of the API (default %(default)s)")
    parser.add_argument("--port", type=int, default=8080, help="port nginx listens on (default %(default)s)")
    parser.add_argument("--host", default="127.0.0.1", help="address nginx listens on (default %(default)s)")
    parser.add_argument("--static-root", type=Path, default=DEFAULT_STATIC_ROOT, help="the page's folder")
    parser.add_argument(
        "--out-dir", type=Path, default=Path("build/nginx"), help="where to write (default %(default)s)"
    )
    parser.add_argument(
        "--rate-limit", default=DEFAULT_RATE_LIMIT, help="per-client rate on /api/ (default %(default)s)"
    )
    parser.add_argument(
        "--rate-burst",
        type=int,
        default=DEFAULT_RATE_BURST,
        help="requests over the rate before 429 (default %(default)s)",
    )
    parser.add_argument(
        "--feedback-rate-limit",
        default=DEFAULT_FEEDBACK_RATE_LIMIT,
        help="per-client rate on /api/feedback (default %(default)s)",
    )
    parser.add_argument(
        "--feedback-rate-burst",
        type=int,
        default=DEFAULT_FEEDBACK_RATE_BURST,
        help="verdicts over that rate before 429 (default %(default)s)",
    )
    parser.add_argument("--mime-types", type=Path, default=DEFAULT_MIME_TYPES, help="nginx's mime.types")
    parser.add_argument("--check", action="store_true", help="run `nginx -t` on the result and return its exit code")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = render(
            args.out_dir,
            api_upstream=args.api_upstream,
            port=args.port,
            static_root=args.static_root,
            rate_limit=args.rate_limit,
            rate_burst=args.rate_burst,
            feedback_rate_limit=args.feedback_rate_limit,
            feedback_rate_burst=args.feedback_rate_burst,
            host=args.host,
            mime_types=args.mime_types,
        )
        out_dir = config.parent
        print(f"wrote {config} and {out_dir / 'conf.d' / 'default.conf'}", file=sys.stderr)
        if args.check:
            result = check(out_dir)
            sys.stderr.write(result.stderr)
            if result.returncode != 0:
                return result.returncode
    except RenderError as error:
        print(f"render.py: {error}", file=sys.stderr)
        return 2
    host = args.host or "127.0.0.1"
    print(f"# then open http://{host}:{args.port}/ (API at {args.api_upstream}); Ctrl-C stops nginx", file=sys.stderr)
    print(shlex.join(start_command(out_dir, nginx=find_nginx() or "nginx")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
