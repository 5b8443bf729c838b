"""Stand-ins for the official base images, built here from Debian's archive (testsupport/standins/).

    sudo .venv/bin/python -m digit_testing.standins     # (a Docker engine must be running)

builds them as digit-standin/NAME:bookworm, keeps them, and prints the build arguments that put the
project's Dockerfiles on them (README "Images"). The tests build their own, and remove them after.

The machines that test this project reach Debian's and PyPI's archives but no image registry, so
`python:3.11.14-slim-bookworm`, `nginxinc/nginx-unprivileged:1.28.3-alpine` and
`postgres:17.6-bookworm` cannot be pulled. `debootstrap --variant=minbase bookworm` makes a root
filesystem (kept under build/standins/ between runs: it only changes with the suite), and
testsupport/standins/Dockerfile turns it into one stand-in per official image, with the paths,
users and entrypoints those images document. The project's Dockerfiles take them as build
arguments; the pod runner (digit_testing.pods) runs them where a pod spec names the official image.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from digit_testing.docker import INSTALL, REPO, Engine, daemon_answers, find_client, run_command
from digit_testing.tooling import require_tool, unavailable

RECIPE = REPO / "testsupport" / "standins"
SUITE = "bookworm"
# Debian's archive as apt reaches it on this machine, for debootstrap and for the stand-ins' apt;
# DEBIAN_MIRROR and DEBIAN_SECURITY_MIRROR override them.
DEFAULT_MIRROR = "http://deb.debian.org/debian"
MIRROR = os.environ.get("DEBIAN_MIRROR", DEFAULT_MIRROR)
SECURITY_MIRROR = os.environ.get("DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
ROOTFS_NAME = f"debian-{SUITE}.tar"


@dataclass(frozen=True)
class StandIn:
    """One official image and the stand-in stage that replaces it."""

    official: str
    target: str
    build_arg: str | None  # the project's Dockerfile argument that names this base, if any


STANDINS = (
    StandIn("python:3.11.14-slim-bookworm", "python", "PYTHON_IMAGE"),
    StandIn("nginxinc/nginx-unprivileged:1.28.3-alpine", "nginx-unprivileged", "NGINX_IMAGE"),
    StandIn("postgres:17.6-bookworm", "postgres", None),
)


@dataclass(frozen=True)
class Bases:
    """The stand-ins one run built: official image -> local tag."""

    tags: dict[str, str]

    def build_args(self) -> dict[str, str]:
        """--build-arg values that put the project's Dockerfiles on the stand-ins."""
        return {s.build_arg: self.tags[s.official] for s in STANDINS if s.build_arg}

    def substitute(self, image: str) -> str:
        return self.tags.get(image, image)


def rootfs(cache: Path) -> Path:
    """debootstrap's minbase root filesystem of the suite as a tar, made once and kept in `cache`."""
    tar = cache / ROOTFS_NAME
    if tar.is_file():
        return tar
    if os.geteuid() != 0:
        unavailable("debootstrap needs root to build the stand-in base images (sudo make test)")
    debootstrap = require_tool(
        "debootstrap", "apt-get install debootstrap", found=shutil.which("debootstrap", path="/usr/sbin:/usr/bin")
    )
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix="rootfs-") as scratch:
        root = Path(scratch) / "root"
        run_command([debootstrap, "--variant=minbase", SUITE, str(root), MIRROR], timeout=900)
        # What the official image leaves out too: apt's downloaded lists and packages.
        for leftover in ("var/lib/apt/lists", "var/cache/apt/archives"):
            for path in (root / leftover).glob("*"):
                if path.is_file():
                    path.unlink()
        partial = Path(scratch) / ROOTFS_NAME
        # /dev, /proc and /sys are the container runtime's; --numeric-owner keeps ids, not names.
        subprocess.run(
            ["tar", "-C", str(root), "--numeric-owner", "--exclude=./dev/*", "--exclude=./proc/*",
             "--exclude=./sys/*", "-cf", str(partial), "."],
            check=True, timeout=300,
        )  # fmt: skip
        partial.replace(tar)
    return tar


def build(engine: Engine, cache: Path) -> Bases:
    """The three stand-ins, built in parallel from one context (the recipe and the root filesystem)."""
    tar = rootfs(cache)
    context = cache / f"context-{engine.run_id}"
    shutil.copytree(RECIPE, context)
    sources = context / "debian" / "debian.sources"
    sources.write_text(
        sources.read_text()
        .replace(f"{DEFAULT_MIRROR}-security", SECURITY_MIRROR)
        .replace(f"{DEFAULT_MIRROR}\n", f"{MIRROR}\n")
    )
    try:
        os.link(tar, context / ROOTFS_NAME)  # the same file system (build/): no copy of 100 MB
    except OSError:
        shutil.copy(tar, context / ROOTFS_NAME)
    tags = {s.official: f"digit-standin/{s.target}:{engine.run_id}" for s in STANDINS}
    try:
        # The first build makes the shared debian stage; the others then find it in BuildKit's cache.
        first, *rest = STANDINS
        engine.build(tags[first.official], context / "Dockerfile", context=context, target=first.target)
        with concurrent.futures.ThreadPoolExecutor(len(rest)) as pool:
            for future in [
                pool.submit(engine.build, tags[s.official], context / "Dockerfile", context=context, target=s.target)
                for s in rest
            ]:
                future.result()
    finally:
        shutil.rmtree(context, ignore_errors=True)
    return Bases(tags)


def main(argv: list[str] | None = None) -> int:
    """Build the stand-ins under a fixed tag and say how to build the project's images on them."""
    parser = argparse.ArgumentParser(prog="python -m digit_testing.standins", description=main.__doc__)
    parser.add_argument("--tag", default=SUITE, help=f"the stand-ins' tag (default {SUITE})")
    args = parser.parse_args(argv)
    cli = find_client()
    if cli is None:
        print(f"no docker client: {INSTALL}", file=sys.stderr)
        return 2
    if not daemon_answers(cli):
        print(
            "no Docker engine answers: start one first (sudo dockerd &, or sudo systemctl start docker)",
            file=sys.stderr,
        )
        return 2
    bases = build(Engine(cli, run_id=args.tag), REPO / "build" / "standins")
    for official, tag in bases.tags.items():
        print(f"{official:<45} -> {tag}")
    print("build arguments for the project's Dockerfiles:")
    print(" ".join(f"--build-arg {key}={value}" for key, value in bases.build_args().items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
