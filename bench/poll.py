"""Poll-cycle benchmark: what an idle poll costs, and how long a release takes to become a pushed commit.

It builds a bare repository as the remote and the poller's clone of it (holding the shipped model),
serves releases from the local GitHub Releases stand-in (digit_testing.github_server: the
documented API, ETags and 304s, the 302 to the asset), and runs the real poller:

- a full update: release model-v2 published -> downloaded, checked, committed, pushed;
- idle polls: nothing new, each costs one conditional request answered 304;
- with --hostile: one run against each misbehaviour of digit_testing.hostile_server
  (trickling, stalling, redirect loops, lying sizes, broken compression), with the deadlines
  given, and the worst wall time of a run beside the bound the deadlines set.

It prints figures; it asserts nothing. Loopback only.

    .venv/bin/python bench/poll.py [--idle-polls 20] [--hostile --list-deadline 10 --download-deadline 20]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

from digit_poller.__main__ import main as poll
from digit_testing.github_server import GitHubServer
from digit_testing.hostile_server import ASSET_MODES, LISTING_MODES, OWNER_REPO, HostileServer
from digit_testing.releases import git, make_world, release_assets, write_release

logger = logging.getLogger("bench.poll")


def release_files(version: int) -> dict[str, bytes]:
    """The shipped model under another version number, as a release's assets."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_release(Path(tmp), version)
        return release_assets(folder)


def hostile(args: argparse.Namespace) -> None:
    """One poll per misbehaviour, each in a fresh world; prints the wall time of each and the worst."""
    os.environ.update(
        LIST_DEADLINE=str(args.list_deadline),
        DOWNLOAD_DEADLINE=str(args.download_deadline),
        HTTP_TIMEOUT=str(args.http_timeout),
        MODEL_SOURCE=f"github:{OWNER_REPO}",
    )
    os.environ.pop("GITHUB_TOKEN", None)
    cases = [("listing", mode) for mode in LISTING_MODES[1:]] + [("asset", mode) for mode in ASSET_MODES[1:]]
    rows = []
    for where, mode in cases:
        with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp, HostileServer(release_files(2)) as server:
            _remote, clone = make_world(Path(tmp))
            os.environ.update(GITHUB_API_URL=server.api_url, REPO_PATH=str(clone))
            setattr(server, where, mode)
            started = time.perf_counter()
            code = poll(["--once", "--log-level", "ERROR"])
            rows.append((f"{where} {mode}", code, time.perf_counter() - started))
    for name, code, seconds in rows:
        print(f"  {name:32s} exit {code}  {seconds:6.2f} s")
    bound = args.list_deadline + args.download_deadline
    worst = max(rows, key=lambda row: row[2])
    deadlines = f"LIST_DEADLINE {args.list_deadline:.0f} + DOWNLOAD_DEADLINE {args.download_deadline:.0f}"
    print(
        f"worst run against the hostile server: {worst[2]:.2f} s ({worst[0]}); "
        f"the deadlines bound the network phases to {bound:.0f} s ({deadlines})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle-polls", type=int, default=20)
    parser.add_argument("--hostile", action="store_true", help="also time runs against a misbehaving server")
    parser.add_argument("--list-deadline", type=float, default=10.0)
    parser.add_argument("--download-deadline", type=float, default=20.0)
    parser.add_argument("--http-timeout", type=float, default=5.0)
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
        code = poll(["--once", "--log-level", "WARNING"])
        update = time.perf_counter() - started
        if code != 0 or '"version": "2"' not in git(remote, "show", "main:api/models/model.json"):
            print(f"the update did not land (exit {code})")
            return 1
        update_requests = len(server.exchanges)

        idle_times, idle_requests = [], []
        for _ in range(args.idle_polls):
            server.clear_requests()
            started = time.perf_counter()
            poll(["--once", "--log-level", "WARNING"])
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
    if args.hostile:
        hostile(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
