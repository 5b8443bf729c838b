"""Run the digit API: `python -m digit_api` (settings from HOST, PORT, MODEL_DIR, LOG_LEVEL, WORKERS)."""

from __future__ import annotations

import argparse

import uvicorn

from digit_api.config import get_settings


def main(argv: list[str] | None = None) -> int:
    # Settings come from the environment (one typed object, as in the container); the command line
    # only documents them, so `digit-api --help` says what to set.
    argparse.ArgumentParser(
        prog="digit-api",
        description="Serve the digit recognition API (LiteRT) over HTTP.",
        epilog="Configured by environment: HOST, PORT, MODEL_DIR, WORKERS, LOG_LEVEL, RELOAD_INTERVAL, "
        "NUM_THREADS, STATIC_DIR, DATABASE_URL, DATABASE_MIGRATE, FAST_PATH (docs/api.md).",
    ).parse_args(argv)
    settings = get_settings()
    uvicorn.run(
        "digit_api.main:serve_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_config=None,  # serve_app installs the JSON logging in every worker
        log_level=settings.log_level,
        access_log=False,  # the service middleware writes one access line per request
        server_header=False,
        # The service reads no client address; behind nginx the X-Forwarded-* work is nginx's.
        proxy_headers=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
