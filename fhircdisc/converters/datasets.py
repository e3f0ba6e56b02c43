"""SDTM dataset files: format dispatch and the in-memory conventions every format shares.

In memory an SDTM dataset is a :class:`pandas.DataFrame` whose columns follow the
:class:`~fhircdisc.schemas.columns.DatasetMeta` order:

* ``Char`` columns have ``object`` dtype and hold ``str`` or ``None`` (missing).
  Writers also accept ``NaN``/``pd.NA`` as missing.
* ``Num`` columns have ``float64`` dtype; ``NaN`` is missing.

Every reader returns that shape. Char values are normalised the SAS way on read:
trailing blanks are insignificant (XPT pads values with them), so they are stripped,
and an empty value is missing (``None``). Readers of all formats apply the same rule
so that one dataset read from XPT, Dataset-JSON or CSV compares equal.

The format modules import their helpers from here; this module imports the format
modules lazily (inside the dispatch functions), which avoids an import cycle and
keeps ``pyreadstat`` unloaded when only JSON is used.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fhircdisc.errors import ConversionError, InputError
from fhircdisc.schemas.columns import ColumnMeta, DatasetMeta

FORMATS: tuple[str, ...] = ("xpt", "json", "ndjson", "csv")
"""Dataset file formats, also the file extensions written."""

_EXT_TO_FORMAT = {".xpt": "xpt", ".json": "json", ".ndjson": "ndjson", ".csv": "csv"}
_PREFERENCE = {"xpt": 0, "json": 1, "ndjson": 2, "csv": 3}


# --------------------------------------------------------------------------- helpers


def is_missing(value: object) -> bool:
    """True for ``None``, ``NaN`` and ``pd.NA``/``NaT``."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    try:
        return bool(pd.isna(value))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return False


def check_frame(df: pd.DataFrame, meta: DatasetMeta) -> None:
    """Raise :class:`ConversionError` unless ``df`` has exactly the columns of ``meta``."""
    names = [c.name for c in meta.columns]
    dup_meta = sorted({n for n in names if names.count(n) > 1})
    frame_cols = [str(c) for c in df.columns]
    dup_frame = sorted({n for n in frame_cols if frame_cols.count(n) > 1})
    missing = [n for n in names if n not in frame_cols]
    extra = [n for n in frame_cols if n not in names]
    problems = []
    if dup_meta:
        problems.append(f"metadata lists these variables twice: {', '.join(dup_meta)}")
    if dup_frame:
        problems.append(f"data has these columns twice: {', '.join(dup_frame)}")
    if missing:
        problems.append(f"variables in the metadata but not in the data: {', '.join(missing)}")
    if extra:
        problems.append(f"columns in the data but not in the metadata: {', '.join(extra)}")
    if problems:
        raise ConversionError(f"dataset {meta.name}: " + "; ".join(problems))


def char_cells(df: pd.DataFrame, meta: DatasetMeta, col: ColumnMeta,
               first_row: int = 1) -> list[str | None]:
    """The values of a Char column as ``str`` or ``None``; anything else is a ConversionError.

    ``first_row`` is the number given to the frame's first row in messages (a frame
    that is one piece of a larger dataset passes its position in the whole).
    """
    out: list[str | None] = []
    for row, value in enumerate(df[col.name].tolist(), start=first_row):
        if is_missing(value):
            out.append(None)
        elif isinstance(value, str):
            out.append(value)
        else:
            raise ConversionError(
                f"{meta.name}.{col.name} row {row}: Char variable holds "
                f"{type(value).__name__} {value!r}, expected text"
            )
    return out


def num_cells(df: pd.DataFrame, meta: DatasetMeta, col: ColumnMeta,
              first_row: int = 1) -> list[float]:
    """The values of a Num column as ``float`` (``NaN`` = missing); text is a ConversionError."""
    out: list[float] = []
    for row, value in enumerate(df[col.name].tolist(), start=first_row):
        if is_missing(value):
            out.append(math.nan)
        elif isinstance(value, (bool, np.bool_)) or not isinstance(value, (Real, Integral)):
            raise ConversionError(
                f"{meta.name}.{col.name} row {row}: Num variable holds "
                f"{type(value).__name__} {value!r}, expected a number"
            )
        else:
            out.append(float(value))
    return out


def char_array(df: pd.DataFrame, meta: DatasetMeta, col: ColumnMeta,
               first_row: int = 1) -> np.ndarray:
    """:func:`char_cells` as an ``object`` array, vectorised for text columns.

    Columns of ``object`` or string dtype whose present values are all ``str`` take a
    fast path; anything else goes through :func:`char_cells` (same values and errors).
    """
    series = df[col.name]
    if series.dtype == object or isinstance(series.dtype, pd.StringDtype):
        out = series.to_numpy(dtype=object, copy=True)
        if pd.api.types.infer_dtype(out, skipna=False) == "string":
            return out  # all text, nothing missing
        if pd.api.types.infer_dtype(out, skipna=True) in ("string", "empty"):
            out[pd.isna(out)] = None
            return out
    out = np.empty(len(series), dtype=object)
    out[:] = char_cells(df, meta, col, first_row)
    return out


def num_array(df: pd.DataFrame, meta: DatasetMeta, col: ColumnMeta,
              first_row: int = 1) -> np.ndarray:
    """:func:`num_cells` as a ``float64`` array, vectorised for float and integer columns."""
    series = df[col.name]
    if series.dtype.kind in "fiu" and isinstance(series.dtype, np.dtype):
        return series.to_numpy(dtype=np.float64)
    return np.array(num_cells(df, meta, col, first_row), dtype=np.float64)


_NONE = np.array(None, dtype=object)


def none_mask(values: np.ndarray) -> np.ndarray:
    """A boolean array: True where the ``object`` array ``values`` holds None."""
    mask: np.ndarray = np.equal(values, _NONE)
    return mask


def column_arrays(df: pd.DataFrame, meta: DatasetMeta, first_row: int = 1) -> list[np.ndarray]:
    """:func:`char_array` or :func:`num_array` of every column of ``meta``, in order."""
    return [char_array(df, meta, col, first_row) if col.type == "Char"
            else num_array(df, meta, col, first_row) for col in meta.columns]


def normalize_char(value: object) -> str | None:
    """A read Char value: trailing blanks stripped, empty or missing -> ``None``."""
    if value is None or is_missing(value):
        return None
    text = str(value).rstrip(" ")
    return text or None


def build_frame(meta: DatasetMeta, columns: Sequence[Iterable[Any]]) -> pd.DataFrame:
    """Assemble the in-memory frame from per-column values already normalised for their type."""
    data: dict[str, pd.Series] = {}
    for col, values in zip(meta.columns, columns, strict=True):
        if col.type == "Char":
            data[col.name] = pd.Series(list(values), dtype=object)
        else:
            data[col.name] = pd.Series(list(values), dtype="float64")
    if not data:
        return pd.DataFrame()
    return pd.DataFrame(data)


# --------------------------------------------------------------------------- dispatch


def _format_of(path: Path) -> str | None:
    return _EXT_TO_FORMAT.get(path.suffix.lower())


def write_dataset(df: pd.DataFrame, out_dir: Path | str, meta: DatasetMeta, fmt: str, *,
                  creation_datetime: str) -> Path:
    """Write ``df`` as ``<out_dir>/<domain lower-case>.<fmt>`` and return that path.

    ``creation_datetime`` is the Dataset-JSON creation stamp and the XPT header date.
    """
    if fmt not in FORMATS:
        raise ConversionError(f"unknown dataset format {fmt!r}; choose one of {', '.join(FORMATS)}")
    path = Path(out_dir) / f"{meta.name.lower()}.{fmt}"
    if fmt == "xpt":
        from fhircdisc.converters.xpt import write_xpt

        write_xpt(df, path, meta, created=creation_datetime)
    elif fmt in ("json", "ndjson"):
        from fhircdisc.converters.dataset_json import write_dataset_json

        write_dataset_json(df, path, meta, ndjson=fmt == "ndjson",
                           creation_datetime=creation_datetime)
    else:
        from fhircdisc.converters.csv_io import write_csv

        write_csv(df, path, meta)
    return path


def read_dataset(path: Path | str, *,
                 meta: DatasetMeta | None = None) -> tuple[pd.DataFrame, DatasetMeta]:
    """Read one dataset file, choosing the reader by extension (.xpt/.json/.ndjson/.csv).

    ``meta`` is used only for CSV, which carries no labels or types: without it every CSV
    column is Char with an empty label and the dataset is named after the file.
    """
    path = Path(path)
    fmt = _format_of(path)
    if fmt == "xpt":
        from fhircdisc.converters.xpt import read_xpt

        return read_xpt(path)
    if fmt in ("json", "ndjson"):
        from fhircdisc.converters.dataset_json import read_dataset_json

        return read_dataset_json(path)
    if fmt == "csv":
        from fhircdisc.converters.csv_io import read_csv

        df = read_csv(path, meta)
        if meta is None:
            cols = tuple(ColumnMeta(name=str(c), label="", type="Char") for c in df.columns)
            meta = DatasetMeta(name=path.stem.upper(), label="", columns=cols)
        return df, meta
    raise InputError("unsupported dataset file type", source=str(path),
                     hint="use .xpt, .json, .ndjson or .csv")


_DATASET_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,7}$")


def dataset_files(folder: Path | str) -> dict[str, Path]:
    """The dataset files of ``folder`` (not recursive), keyed by upper-case dataset name.

    The key is the file stem (``lb.xpt`` -> ``LB``); files whose stem cannot be a dataset
    name (``conversion-report.json``, ``provenance.csv``) are not datasets. When one
    dataset is present in several formats, xpt > json > ndjson > csv.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("not a folder", source=str(folder))
    chosen: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        fmt = _format_of(path)
        if fmt is None or not path.is_file() or path.name.startswith(".") \
                or not _DATASET_NAME.match(path.stem):
            continue
        key = path.stem.upper()
        current = chosen.get(key)
        if current is None or _PREFERENCE[fmt] < _PREFERENCE[_format_of(current) or "csv"]:
            chosen[key] = path
    return dict(sorted(chosen.items()))


def read_sdtm_folder(folder: Path | str) -> dict[str, tuple[pd.DataFrame, DatasetMeta]]:
    """Read every dataset file in ``folder`` (see ``dataset_files``)."""
    return {key: read_dataset(path) for key, path in dataset_files(folder).items()}
