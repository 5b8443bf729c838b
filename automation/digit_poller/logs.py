"""Logging for the poller: plain lines for cron's log file, with every credential taken out.

Credentials reach messages in URLs (user info in GITHUB_API_URL, the signature in a pre-signed
storage URL's query, which httpx and httpcore print at INFO and DEBUG) and as the token itself.
The filter sits on the handlers, so it covers every logger and level, the libraries' included.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

# scheme://[userinfo@]host/path[?query]: the user info and the query go, the rest is kept.
_URL = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^\s/@'\"<>]*@)?([^\s?#'\"<>]*)(\?[^\s#'\"<>]*)?")
# A relative URL with a query (a redirect's Location: /storage/x?X-Amz-Signature=...): the query goes.
_RELATIVE_QUERY = re.compile(r"(?<![\w/:.])(/[^\s?#'\"<>]*)\?[^\s#'\"<>]*")
_AUTHORIZATION = re.compile(r"(?i)(authorization\W{1,4}(?:bearer\s+|token\s+|basic\s+)?)[^\s'\",)]+")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` without URL user info, URL queries, Authorization values or any of `secrets`."""
    for secret in secrets:
        for form in {secret, secret.strip()}:  # a token with a stray "\r" shows up escaped, as its core
            if form:
                text = text.replace(form, "***")
    text = _URL.sub(
        lambda m: f"{m.group(1)}{'***@' if m.group(2) else ''}{m.group(3)}{'?<redacted>' if m.group(4) else ''}",
        text,
    )
    text = _RELATIVE_QUERY.sub(lambda m: f"{m.group(1)}?<redacted>", text)
    return _AUTHORIZATION.sub(r"\1***", text)


class RedactingFilter(logging.Filter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = [secret for secret in secrets if secret]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info, record.exc_text = None, None
        record.msg, record.args = redact(message, self.secrets), None
        return True


def configure(level: str, secrets: Iterable[str] = ()) -> None:
    root = logging.getLogger()
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    root.setLevel(level)  # also when handlers were there before (an embedding program's, a test runner's)
    redacting = RedactingFilter(secrets)
    for handler in root.handlers:
        for old in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
            handler.removeFilter(old)
        handler.addFilter(redacting)
    if level != "DEBUG":
        # One line per HTTP request is noise in a cron log; the poller says what it fetched.
        logging.getLogger("httpx").setLevel(logging.WARNING)
