"""Image benchmark: how big the two images are, and how fast they and the compose stack start.

It builds the stand-in bases and both images as the tests do (digit_testing.standins and
.images: the repository's Dockerfiles, BuildKit, the CA as a build secret), on a Docker engine
it starts if none runs, and prints:

- each image's size, its base's, and what the Dockerfile adds over the base (the difference of
  their uncompressed layer sizes, as `docker image inspect` reports them);
- the API container's time from `docker run` to an answered GET /readyz (the model is in the
  image: nothing is downloaded), and the frontend's to an answered GET /, each run as compose.yaml
  runs it (read-only root, tmpfs, no capabilities), polled every 20 ms;
- `docker-compose up` (Debian's 1.29) to the first answered POST /api/predict through nginx.

It prints figures; it asserts nothing, and removes what it made. Loopback only.

    .venv/bin/python bench/images.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from digit_testing import images, standins
from digit_testing.compose import project
from digit_testing.docker import REPO, Engine, ca_bundle, engine
from digit_testing.images import LOCKED_DOWN
from digit_testing.processes import poll_until
from digit_testing.releases import held_out

MB = 1_000_000


def until(answered: Callable[[], bool], timeout: float = 60) -> float:
    """Seconds until `answered()` is true, asking every 20 ms."""
    started = time.perf_counter()
    if why := poll_until(answered, timeout=timeout, interval=0.02, timed_out=f"no answer within {timeout} s"):
        raise TimeoutError(why)
    return time.perf_counter() - started


def start_to_answer(docker: Engine, image: str, options: tuple[str, ...], port: int, path: str) -> float:
    """`docker run -d` of the image, then until GET path answers 200 at the container's address."""
    name = f"bench-{docker.run_id}"
    started = time.perf_counter()
    docker("run", "--detach", "--name", name, "--label", docker.label, *options, image)
    try:
        address = docker.inspect(name)[0]["NetworkSettings"]["IPAddress"]
        url = f"http://{address}:{port}{path}"
        until(lambda: httpx.get(url, timeout=1).status_code == 200)
        return time.perf_counter() - started
    finally:
        docker("rm", "--force", "--volumes", name, check=False)


def spread(seconds: list[float]) -> str:
    return (
        f"median {statistics.median(seconds):.2f} s (min {min(seconds):.2f}, max {max(seconds):.2f}, n={len(seconds)})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="starts of each kind to time (default 5)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-images-") as tmp, engine(Path(tmp) / "dockerd") as docker:
        try:
            bases = standins.build(docker, REPO / "build" / "standins")
            built = images.build(docker, bases, images.build_secret(ca_bundle(), Path(tmp) / "pip-ca"))
            print("image              size      base      added by its Dockerfile")
            for image, official in (
                (built.api, "python:3.11.14-slim-bookworm"),
                (built.frontend, "nginxinc/nginx-unprivileged:1.28.3-alpine"),
            ):
                size = docker.inspect(image, kind="image")[0]["Size"]
                base = docker.inspect(bases.substitute(official), kind="image")[0]["Size"]
                name, added = image.partition(":")[0], (size - base) / MB
                row = f"{name:<18} {size / MB:5.0f} MB  {base / MB:5.0f} MB  {added:7.2f} MB"
                print(f"{row} (base: stand-in of {official})")

            volume = f"bench-{docker.run_id}"
            docker("volume", "create", "--label", docker.label, volume)
            api_runs = [
                start_to_answer(docker, built.api, (*LOCKED_DOWN, "-v", f"{volume}:/data"), 8000, "/readyz")
                for _ in range(args.runs)
            ]
            print(f"API, docker run to /readyz 200:      {spread(api_runs)}")
            frontend_options = (
                *LOCKED_DOWN,
                "--tmpfs",
                "/etc/nginx/conf.d:uid=101,gid=101",
                "-e",
                "API_UPSTREAM=127.0.0.1:9",
            )
            frontend_runs = [
                start_to_answer(docker, built.frontend, frontend_options, 8080, "/") for _ in range(args.runs)
            ]
            print(f"frontend, docker run to / 200:       {spread(frontend_runs)}")

            pixels = held_out()[0][0].ravel().tolist()
            compose_runs = []
            for _ in range(args.runs):
                with project("1.29", built) as stack:
                    started = time.perf_counter()
                    stack("up", "--detach", "--no-build")
                    url = f"{stack.url}/api/predict"
                    until(lambda url=url: httpx.post(url, json={"pixels": pixels}, timeout=2).status_code == 200)
                    compose_runs.append(time.perf_counter() - started)
            print(f"docker-compose up to first /api/predict: {spread(compose_runs)}")
        finally:
            docker.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
