"""simdjson, as both body codecs use it: one reusable parser per thread, and a value's minified text.

A parser keeps its buffers between parses (a new one costs an allocation and page faults per
body). simdjson refuses to parse again while a document it returned is still referenced, so each
caller lets go of its document before it returns.
"""

from __future__ import annotations

import threading
from typing import cast

import simdjson

_local = threading.local()
# What JSON counts as whitespace (RFC 8259); str.strip() would take form feeds and more too.
JSON_WHITESPACE = b" \t\r\n"


def parser() -> simdjson.Parser:
    """This thread's parser."""
    found: simdjson.Parser | None = getattr(_local, "parser", None)
    if found is None:
        found = _local.parser = simdjson.Parser()
    return found


def minified(value: simdjson.Array | simdjson.Object) -> bytes:
    """The value's JSON text without whitespace.

    A property that returns bytes; pysimdjson's stubs call it a method returning str.
    """
    return cast(bytes, value.mini)
