"""Poll-cycle benchmark: what an idle poll costs, and how long a release takes to become a pushed commit.

It builds a bare repository as the remote and the poller's clone of it (holding the shipped model),
serves releases from the local GitHub Releases stand-in (automation/tests/github_server.py: the
documented API, ETags and 304s, the 302 to the asset), and runs the real poller:

- a full update: release model-v2 published -> downloaded, checked, committed, pushed;
- idle polls: nothing new, each costs one conditional request answered 304.

It prints figures; it asserts nothing. Loopback only.

    .venv/bin/python bench/poll.py [--idle-polls 20]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "automation"))

from tests.github_server import GitHubServer  # noqa: E402
from tests.releases import git, make_world, write_release  # noqa: E402

from digit_api.manifest import (  # noqa: E402
    MANIFEST_NAME,
    SUMS_NAME,
    TFLITE_NAME,
)
from digit_poller.__main__ import main as poll  # noqa: E402

logger = logging.getLogger("bench.poll")


def release_files(version: int) -> dict[str, bytes]:
    """The shipped model under another version number, as a release's assets."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_release(Path(tmp), version)
        return {name: (folder / name).read_bytes() for name in (TFLITE_NAME, MANIFEST_NAME, SUMS_NAME)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle-polls", type=int, default=20)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    token = "bench-token"  # noqa: S105  (the stand-in's, not a secret)
    for role in ("AUTHOR", "COMMITTER"):
        os.environ[f"GIT_{role}_NAME"] = "bench"
        os.environ[f"GIT_{role}_EMAIL"] = "bench@example.invalid"
    with tempfile.TemporaryDirectory(prefix="bench-poll-") as tmp, GitHubServer() as server:
        remote, clone = make_world(Path(tmp))
        server.require_token = token
        os.environ.update(
            MODEL_SOURCE=f"github:{server.repo}",
            GITHUB_API_URL=server.api_url,
            GITHUB_TOKEN=token,
            REPO_PATH=str(clone),
        )
        server.add_release("model-v2", release_files(2))
        server.clear_requests()
        started = time.perf_counter()
        code = poll(["--once"])
        update = time.perf_counter() - started
        if code != 0 or '"version": "2"' not in git(remote, "show", "main:api/models/model.json"):
            print(f"the update did not land (exit {code})")
            return 1
        update_requests = len(server.exchanges)

        idle_times, idle_requests = [], []
        for _ in range(args.idle_polls):
            server.clear_requests()
            started = time.perf_counter()
            poll(["--once"])
            idle_times.append(time.perf_counter() - started)
            idle_requests.append([exchange.status for exchange in server.exchanges])
    idle_times.sort()
    statuses = sorted({status for requests in idle_requests for status in requests})
    print(f"full update (release published -> pushed commit): {update:.2f} s, {update_requests} HTTP requests")
    print(
        f"idle poll ({args.idle_polls} runs): median {idle_times[len(idle_times) // 2] * 1000:.0f} ms, "
        f"max {idle_times[-1] * 1000:.0f} ms, {max(map(len, idle_requests))} request(s) each, statuses {statuses}"
    )
    print("(a 304 to an authenticated request does not count against GitHub's rate limit)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
