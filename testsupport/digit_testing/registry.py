"""A real image registry on loopback: Debian's `docker-registry` (the Distribution project's server).

The deploy path pins images by digest; the tests push the images they built here, render the
overlay with `IMAGE@sha256:...` and run the pods from what this registry serves. The Docker daemon
talks plain HTTP to a registry on 127.0.0.0/8 without being told to (an "insecure registry" by
default), so no TLS is set up.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from digit_testing.docker import Engine
from digit_testing.processes import free_port, stop, wait_for
from digit_testing.tooling import require_tool

MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
)
CONFIG = """\
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


@contextmanager
def registry(folder: Path) -> Iterator[str]:
    """A registry with its storage in `folder`, for the duration; its address HOST:PORT."""
    binary = require_tool(
        "docker-registry", "apt-get install docker-registry", found=shutil.which("docker-registry", path="/usr/bin")
    )
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "config.yml"
    config.write_text(CONFIG.format(root=folder / "storage", port=port))
    log = folder / "registry.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([binary, "serve", str(config)], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(f"http://127.0.0.1:{port}/v2/", process, log, timeout=30)
        yield f"127.0.0.1:{port}"
    finally:
        stop(process)


def push(engine: Engine, image: str, address: str, repository: str, tag: str) -> str:
    """Push `image` as ADDRESS/REPOSITORY:TAG; the digest the registry gave it (sha256:...)."""
    target = f"{address}/{repository}:{tag}"
    engine("tag", image, target)
    output = engine("push", target, timeout=600).stdout
    match = re.search(r"digest: (sha256:[0-9a-f]{64})", output)
    assert match, f"docker push printed no digest:\n{output}"
    return match.group(1)


def manifest(address: str, repository: str, reference: str) -> tuple[str, dict[str, object]]:
    """The registry's manifest for a tag or digest: (its Docker-Content-Digest, the manifest)."""
    response = httpx.get(
        f"http://{address}/v2/{repository}/manifests/{reference}", headers={"Accept": ", ".join(MANIFEST_TYPES)}
    )
    response.raise_for_status()
    return response.headers["Docker-Content-Digest"], response.json()
