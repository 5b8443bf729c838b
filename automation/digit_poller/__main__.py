"""Bring new model releases into the repository: check them, write api/models, commit, push.

    digit-poller --once                # cron: one poll (automation/poll_model.sh)
    digit-poller --interval 900        # daemon; stops cleanly on SIGTERM
    digit-poller --once --dry-run      # say what would happen, change nothing
    digit-poller --pin 3               # go to model-v3 and stay there
    digit-poller rollback              # go back to the release before the one in service, and stay
    digit-poller --unpin               # follow the latest release again

Configured by MODEL_SOURCE, GITHUB_API_URL, GITHUB_TOKEN, REPO_PATH, GIT_REMOTE, GIT_BRANCH,
MIN_ACCURACY, MODEL_PUBLIC_KEY, ALLOW_INTERFACE_CHANGE, POLLER_GIT_NAME, POLLER_GIT_EMAIL and the
deadlines LIST_DEADLINE, DOWNLOAD_DEADLINE, HTTP_TIMEOUT (seconds).
Exit codes: 0 updated or nothing new, 1 transient error (tried again next run), 2 a candidate
was rejected (remembered; lower releases are considered).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from pathlib import Path

from pydantic import ValidationError

from digit_poller import logs
from digit_poller.config import PollerConfig
from digit_poller.poller import Exit, Request, poll
from digit_poller.sources import ReleaseSource

# In --interval mode, consecutive failed polls wait twice as long each time, up to this.
MAX_BACKOFF_SECONDS = 3600.0

logger = logging.getLogger("digit_poller")


def make_source(config: PollerConfig) -> ReleaseSource:
    kind, _, where = config.model_source.partition(":")
    if kind == "dir":
        from digit_poller.sources.directory import DirectorySource  # noqa: PLC0415

        return DirectorySource(Path(where))
    if kind == "github":
        from digit_poller.sources.github import GitHubSource  # noqa: PLC0415

        token = config.github_token.get_secret_value() if config.github_token else None
        return GitHubSource(
            where,
            api_url=config.github_api_url,
            token=token,
            state_dir=config.state_dir,
            timeout=config.http_timeout,
            list_deadline=config.list_deadline,
            download_deadline=config.download_deadline,
        )
    from digit_poller.sources.azureml import AzureMLSource  # noqa: PLC0415  (an optional extra)

    return AzureMLSource(where, list_deadline=config.list_deadline, download_deadline=config.download_deadline)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="digit-poller", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", nargs="?", choices=["poll", "rollback"], default="poll")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="poll once and exit (the default)")
    mode.add_argument("--interval", type=float, metavar="SECONDS", help="poll every SECONDS until SIGTERM")
    parser.add_argument("--dry-run", action="store_true", help="say what would be done, change nothing")
    pin = parser.add_mutually_exclusive_group()
    pin.add_argument("--pin", type=int, metavar="N", help="go to model-vN and stay there")
    pin.add_argument("--unpin", action="store_true", help="follow the latest release again")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    if args.command == "rollback" and (args.pin is not None or args.unpin or args.interval):
        parser.error("rollback goes one release back once: it takes no --pin, --unpin or --interval")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Secrets are known before the settings are validated: a bad setting's message must not leak one.
    logs.configure(
        args.log_level, secrets=[os.environ.get("GITHUB_TOKEN", ""), os.environ.get("AZURE_CLIENT_SECRET", "")]
    )
    try:
        config = PollerConfig()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        logger.error("configuration: %s", problems)
        return Exit.ERROR
    try:
        source = make_source(config)
    except ImportError as exc:
        logger.error("MODEL_SOURCE %s needs an optional extra (%s): %s", config.model_source, exc.name, exc)
        return Exit.ERROR
    request = Request(pin=args.pin, unpin=args.unpin, rollback=args.command == "rollback", dry_run=args.dry_run)
    if args.interval is None:
        return int(poll(config, source, request))

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    logger.info("polling %s every %.0f s", source.name, args.interval)
    failures = 0
    while not stop.is_set():
        try:
            outcome = poll(config, source, request)
        except Exception:  # a daemon that dies on one bad poll stops all later updates
            logger.exception("poll crashed")
            outcome = Exit.ERROR
        request = Request(dry_run=args.dry_run)  # a pin or unpin applies once; the state keeps it
        failures = failures + 1 if outcome is Exit.ERROR else 0
        wait = backoff(args.interval, failures)
        if failures:
            logger.info("poll failed %d time(s) in a row: trying again in %.0f s", failures, wait)
        stop.wait(wait)
    logger.info("stopped")
    return int(Exit.OK)


def backoff(interval: float, failures: int) -> float:
    """The wait before the next poll: the interval, doubled for each transient failure in a row."""
    if not failures:
        return interval
    return max(interval, min(interval * 2.0**failures, MAX_BACKOFF_SECONDS))


if __name__ == "__main__":
    raise SystemExit(main())
