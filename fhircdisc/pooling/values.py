"""Cell values as plain Python for the report (``None`` for missing)."""

from __future__ import annotations

from fhircdisc.converters.datasets import is_missing


def optional_text(value: object) -> str | None:
    return None if is_missing(value) else str(value)


def optional_float(value: object) -> float | None:
    """A numeric cell as ``float``; missing or not a number -> ``None``."""
    if is_missing(value):
        return None
    try:
        return float(str(value))
    except ValueError:
        return None
