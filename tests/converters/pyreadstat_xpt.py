"""The XPT file pyreadstat writes for a whole frame, value by value: the reference the
record encoder (:class:`fhircdisc.converters.xpt.XptPieceEncoder`) is held to."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fhircdisc.converters.xpt import _pyreadstat_frame, _pyreadstat_write, _stamped
from fhircdisc.schemas.columns import DatasetMeta


def pyreadstat_xpt(df: pd.DataFrame, meta: DatasetMeta, path: Path, created: str) -> bytes:
    """The bytes of ``df`` written whole by pyreadstat to ``path``, headers stamped
    ``created``."""
    _pyreadstat_write(_pyreadstat_frame(df, meta), path, path, meta)
    return _stamped(path.read_bytes(), created)
