"""Validation results as JSON: ``ValidationResult.to_dict()``, indented, same bytes each run.

Values that JSON has no type for (paths, dates, sets in the metadata) are written as
text; sets in sorted order, so that the file does not depend on hashing.
"""

from __future__ import annotations

from collections.abc import Set
from pathlib import Path
from typing import Any

import orjson

from fhircdisc.converters.atomic import write_bytes_atomic
from fhircdisc.schemas.findings import ValidationResult

_OPTIONS = (orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS
            | orjson.OPT_SERIALIZE_NUMPY)


def _default(value: Any) -> Any:
    if isinstance(value, Set):
        return sorted(value, key=str)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy / pandas scalars
        return value.item()
    return str(value)


def json_bytes(result: ValidationResult) -> bytes:
    """The report as UTF-8 JSON (2-space indent, trailing newline)."""
    return orjson.dumps(result.to_dict(), default=_default, option=_OPTIONS)


def write_json_report(result: ValidationResult, path: Path | str) -> Path:
    """Write :func:`json_bytes` to ``path`` atomically; return the path."""
    path = Path(path)
    write_bytes_atomic(path, json_bytes(result))
    return path
