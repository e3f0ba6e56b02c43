"""Caches of what repeats in an export (dates, codes, templates, report texts), bounded:
one that fills up is emptied and starts again, which costs a miss per entry rather
than memory that grows with the input."""

from __future__ import annotations

from typing import Any, TypeVar

_Value = TypeVar("_Value")


def remember(cache: dict[Any, Any], key: Any, value: _Value, limit: int) -> _Value:
    """Store ``value`` under ``key``, ``cache`` emptied first when it holds ``limit``
    entries; gives ``value`` back."""
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value
    return value
