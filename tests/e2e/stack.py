"""Starting the real parts of the stack for the whole-stack tests: the API and nginx as subprocesses."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from digit_testing.processes import free_port, stop, wait_for
from digit_testing.tooling import require_tool

__all__ = ["REPO", "STATIC", "Nginx", "free_port", "nginx_binary", "render", "start_nginx", "stop", "wait_for"]

REPO = Path(__file__).resolve().parents[2]
RENDER_PY = REPO / "frontend" / "nginx" / "render.py"
STATIC = REPO / "frontend" / "static"


def load_render() -> ModuleType:
    """frontend/nginx/render.py is a script, not a package: load it by path."""
    spec = importlib.util.spec_from_file_location("digit_nginx_render", RENDER_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


render = load_render()


@dataclass
class Nginx:
    url: str
    out_dir: Path


def start_nginx(nginx_bin: str, out_dir: Path, upstream: str, **options: object) -> tuple[Nginx, subprocess.Popen]:
    port = free_port()
    render.render(out_dir, api_upstream=upstream, port=port, static_root=STATIC, **options)
    checked = render.check(out_dir, nginx=nginx_bin)
    assert checked.returncode == 0, checked.stderr
    log = out_dir / "nginx.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(render.start_command(out_dir, nginx=nginx_bin), stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/", process, log, timeout=10)
    except BaseException:
        stop(process)
        raise
    return Nginx(url, out_dir), process


def nginx_binary() -> str:
    return require_tool("nginx", "apt-get install nginx", found=render.find_nginx())
