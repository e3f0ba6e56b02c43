"""JSON text that is kept: a cache key, a line waiting to be written.

``orjson.dumps`` hands back the buffer it wrote into: at least 4 kB whatever the text's
length, and several times the text for longer ones (a 2 kB resource holds 16 kB). Text
that lives on (thousands of cache keys, a million NDJSON lines before they are joined)
is copied into a bytes object of its own size.
"""

from __future__ import annotations

from typing import Any

import orjson


def dumps_kept(value: Any) -> bytes:
    """``orjson.dumps(value)`` in a bytes object the size of the text."""
    return bytes(memoryview(orjson.dumps(value)))


__all__ = ["dumps_kept"]
