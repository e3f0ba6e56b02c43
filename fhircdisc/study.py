"""A converted study: one DataFrame per SDTM domain, its provenance and its report."""

from __future__ import annotations

import math
import os
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from fhircdisc.column_values import ColumnValues, text_or_none
from fhircdisc.converters.atomic import publish, staging_folder, write_bytes_atomic
from fhircdisc.report import ConversionReport
from fhircdisc.schemas import sdtmig
from fhircdisc.schemas.columns import ColumnMeta, DatasetMeta
from fhircdisc.schemas.findings import ValidationResult

DOMAIN_ORDER = ("DM", "EX", "AE", "LB", "VS", "TS")
_HIDDEN = ("_order", "_source", "_file", "_location", "_subject", "_studyid", "_fixed",
           "_net", "_records")
REPORT_NAME = "conversion-report.json"
PROVENANCE_NAME = "provenance.csv"


@dataclass
class Study:
    """SDTM datasets of one study (``domains``: name -> DataFrame in SDTMIG column order)."""

    domains: dict[str, pd.DataFrame]
    report: ConversionReport = field(default_factory=ConversionReport)
    provenance: pd.DataFrame = field(default_factory=pd.DataFrame)

    @classmethod
    def from_frames(cls, frames: dict[str, pd.DataFrame], report: ConversionReport) -> Study:
        """Build from raw mapped frames: provenance split off, columns put in SDTMIG order,
        permissible variables that are empty in every row dropped."""
        domains: dict[str, pd.DataFrame] = {}
        prov_parts = []
        for name in sorted(frames, key=lambda n: DOMAIN_ORDER.index(n)
                           if n in DOMAIN_ORDER else 99):
            frame = frames[name].reset_index(drop=True)
            if "_source" in frame:
                empty = pd.Series([None] * len(frame), dtype=object)
                prov_parts.append(pd.DataFrame({
                    "DOMAIN": name,
                    "USUBJID": frame.get("USUBJID", empty),
                    "SEQ": frame.get(f"{name}SEQ", empty),
                    "SOURCE": frame["_source"], "FILE": frame["_file"],
                    "LOCATION": frame["_location"]}))
            frame = frame.drop(columns=[c for c in _HIDDEN if c in frame])
            domains[name] = _tidy(name, frame)
        prov = pd.concat(prov_parts, ignore_index=True) if prov_parts else pd.DataFrame(
            columns=["DOMAIN", "USUBJID", "SEQ", "SOURCE", "FILE", "LOCATION"])
        return cls(domains, report, prov)

    def __getitem__(self, domain: str) -> pd.DataFrame:
        return self.domains[domain]

    def meta(self, domain: str) -> DatasetMeta:
        """Writer metadata (labels and types from SDTMIG 3.4) for one dataset."""
        frame = self.domains[domain]
        numeric = {name for name in frame.columns
                   if pd.api.types.is_numeric_dtype(frame[name])}
        return dataset_meta(domain, list(frame.columns), numeric)

    def validate(self) -> ValidationResult:
        """SDTM conformance findings of these datasets (the rule engine of ``validate``)."""
        from fhircdisc.schemas.conformance import validate_sdtm

        return validate_sdtm(dict(self.domains),
                             metas={name: self.meta(name) for name in self.domains},
                             target="converted study")

    def write(self, out_dir: str | Path, formats: Iterable[str] = ("xpt",), *,
              creation_datetime: str | None = None,
              validation: ValidationResult | None = None) -> list[Path]:
        """Write every dataset in each format, the report and the provenance table.

        Everything is written into a temporary folder first and moved into ``out_dir``
        only when all files succeeded, so a failure leaves no partial output.
        """
        from fhircdisc.converters.datasets import write_dataset

        out = Path(out_dir)
        formats = list(dict.fromkeys(formats))
        stamp = creation_datetime or datetime.now(UTC).replace(microsecond=0).isoformat()
        report = self.report.to_dict(objects=True)
        if validation is not None:
            report["validation"] = validation.to_dict()
        report["sources"] = [relative_path(s, out) for s in report["sources"]]
        provenance = self.provenance.copy()
        if "FILE" in provenance:
            provenance["FILE"] = relative_files(provenance["FILE"], out)
        with staging_folder(out) as staging:
            for name, frame in self.domains.items():
                meta = self.meta(name)
                for fmt in formats:
                    write_dataset(frame, staging, meta, fmt, creation_datetime=stamp)
            write_bytes_atomic(staging / REPORT_NAME, orjson.dumps(
                report, option=orjson.OPT_INDENT_2))
            provenance.to_csv(staging / PROVENANCE_NAME, index=False)
            return publish(staging, out)


def relative_files(files: pd.Series, out: Path) -> pd.Series:
    """:func:`relative_path` of a column of file names (worked out once per distinct name,
    and kept: the streaming engines ask it of every bucket of rows)."""
    return files.map(dict(zip(names := files.dropna().unique().tolist(),
                              relative_names(names, out), strict=True)))


def relative_names(names: list[Any], out: Path) -> list[Any]:
    """:func:`relative_path` of each of ``names`` (each worked out once, and kept)."""
    return [_relative_text(name, out) if isinstance(name, str) else name for name in names]


@lru_cache(maxsize=65_536)
def _relative_text(source: str, out: Path) -> object:
    return relative_path(source, out)


def csv_rows(frame: pd.DataFrame) -> bytes:
    """The rows of ``frame`` as CSV without a header: the bytes
    ``frame.to_csv(path, index=False, header=False, mode="a")`` appends to a file."""
    data = _csv_rows(frame)
    if data is None:
        return frame.to_csv(index=False, header=False).encode("utf-8")
    return data


#: what makes a CSV field need quotes (or, NUL, not be written by the fast ways)
_CSV_MARKS = (",", '"', "\r", "\n", "\x00")


def _csv_rows(frame: pd.DataFrame) -> bytes | None:
    """:func:`csv_rows`'s bytes when every column is float64 or text and no field needs
    quotes (None otherwise: then pandas writes them)."""
    if len(frame.columns) < 2:
        return None
    columns = []
    for _, series in frame.items():
        texts = csv_texts(series)
        if texts is None or needs_quotes(texts):
            return None
        columns.append(texts)
    return _joined_fields(columns, len(frame))


def needs_quotes(texts: list[str]) -> bool:
    """Whether some of ``texts`` holds one of :data:`_CSV_MARKS`."""
    joined = "".join(texts)
    return any(mark in joined for mark in _CSV_MARKS)


def _joined_fields(columns: list[list[str]], rows: int) -> bytes:
    if not rows:
        return b""
    # every field and separator in one list, joined once: no tuple and join a row
    width = 2 * len(columns)
    pieces = [","] * (width * rows)
    for place, texts in enumerate(columns):
        pieces[2 * place::width] = texts
    pieces[width - 1::width] = [os.linesep] * rows
    return "".join(pieces).encode("utf-8")


def csv_texts(series: pd.Series) -> list[str] | None:
    """The fields of one column as pandas writes them to CSV: float64 by numpy's ``str``,
    text as it is, missing values empty; None for columns of other values."""
    if series.dtype == np.float64:
        values = series.to_numpy()
        whole = _whole_number_texts(values)
        if whole is not None:
            return whole
        texts = values.astype(str).astype(object)
        texts[np.isnan(values)] = ""
        floats: list[str] = texts.tolist()
        return floats
    if series.dtype != object and not isinstance(series.dtype, pd.StringDtype):
        return None
    everyone: list[Any] = series.to_numpy(dtype=object).tolist()
    if set(map(type, everyone)) == {str}:      # the usual column: text in every row
        return everyone
    cells = series.to_numpy(dtype=object, copy=True)
    missing = pd.isna(cells)
    if pd.api.types.infer_dtype(cells[~missing], skipna=False) not in ("string", "empty"):
        return None
    cells[missing] = ""
    strings: list[str] = cells.tolist()
    return strings


def _whole_number_texts(values: np.ndarray) -> list[str] | None:
    """numpy's ``str`` of float64 values that are all whole numbers below 1e15 or missing
    (``3.0``, empty for NaN), without its shortest-repr search; None for other values."""
    table = whole_number_table(values)
    if table is None:
        return None
    texts, places = table
    found: list[str] = np.array(texts, dtype=object)[places].tolist()
    return found


def whole_number_table(values: np.ndarray) -> tuple[list[str], np.ndarray] | None:
    """:func:`_whole_number_texts` as a table and places into it: each number's text
    once (a --SEQ column repeats 1, 2, 3 ... per subject; the table may hold numbers no
    value is), then the empty text (the place of a NaN); None when a value is not a
    whole number below 1e15 (or is -0.0)."""
    missing = np.isnan(values)
    present = values[~missing]
    if not (np.all(np.abs(present) < 1e15) and np.all(present == np.floor(present))) \
            or np.any(np.signbit(present) & (present == 0)):
        return None
    numbers = np.nan_to_num(values).astype(np.int64)
    low, high = (int(numbers.min()), int(numbers.max())) if len(numbers) else (0, -1)
    if high - low <= len(numbers) + 1024:        # a text per number from the lowest up
        texts = [f"{number}.0" for number in range(low, high + 1)]
        places = numbers - low
    else:
        distinct, places = np.unique(numbers, return_inverse=True)
        texts = [f"{number}.0" for number in distinct.tolist()]
        places = places.reshape(-1)
    places[missing] = len(texts)
    return [*texts, ""], places


def relative_path(source: object, out: Path) -> object:
    """A source path as seen from the output folder, when both share a parent folder.

    Keeps the links in a written report valid when the whole tree is moved, and makes
    the output independent of where the tree lives.
    """
    if not isinstance(source, str):
        return source
    path = Path(source).resolve()
    base = out.resolve()
    if base.parent in path.parents:
        return os.path.relpath(path, base)
    return source


def tidy_columns(domain: str, names: Iterable[str], present: Container[str]) -> list[str]:
    """The columns a dataset keeps, in SDTMIG order: every variable with a value somewhere
    (``present``), Required and Expected ones always (empty when the source has nothing
    for them); permissible and non-SDTMIG variables empty everywhere are dropped."""
    keep = []
    for name in names:
        spec = sdtmig.variable(domain, name)
        if name in present or (spec is not None and spec.core != "Perm"):
            keep.append(name)
    for spec in sdtmig.variables().get(domain, []):
        if spec.core in ("Req", "Exp") and spec.name not in keep:
            keep.append(spec.name)
    return sdtmig.order_columns(domain, keep)


def typed_frame(domain: str, frame: pd.DataFrame | Mapping[str, pd.Series],
                columns: list[str], known: Mapping[str, ColumnValues] | None = None
                ) -> pd.DataFrame:
    """``frame`` with exactly ``columns`` (absent ones empty), SDTMIG Num variables as
    float64 and Char variables as str/None. ``known``: columns of ``frame`` already made
    into codes, typed from them (a Char one when its values are all text). ``frame`` may
    be its columns, by name (Series of one index): no frame is made of them first."""
    if not isinstance(frame, pd.DataFrame):
        if frame and len(set(columns)) == len(columns):
            index = next(iter(frame.values())).index
            return _typed_columns(domain, frame, index, columns, known)
        frame = pd.DataFrame(frame, copy=False)
    if not frame.columns.is_unique or len(set(columns)) < len(columns):
        frame = frame.reindex(columns=columns).copy()
        for name in columns:
            if sdtmig.variable(domain, name) is not None:
                frame[name] = _typed(domain, name, frame[name])
        return frame
    return _typed_columns(domain, frame, frame.index, columns, known)


def _typed_columns(domain: str, given: pd.DataFrame | Mapping[str, pd.Series],
                   index: pd.Index, columns: list[str],
                   known: Mapping[str, ColumnValues] | None) -> pd.DataFrame:
    # each column typed on its own, the frame made once (no frame-wide copy and setting)
    data = {name: _typed(domain, name, given[name] if name in given
                         else pd.Series(np.nan, index=index, dtype=np.float64),
                         None if known is None else known.get(name))
            for name in columns}                            # (a missing one as reindex adds it)
    return pd.DataFrame(data, index=index, columns=columns, copy=False)


def _typed(domain: str, name: str, series: pd.Series, known: ColumnValues | None = None
           ) -> pd.Series:
    """A column of ``domain`` with the type SDTMIG gives ``name`` (as it is when SDTMIG
    does not know it); ``known``: the column's codes, when made."""
    spec = sdtmig.variable(domain, name)
    if spec is None:
        return series
    if spec.type == "Num":
        if known is not None and len(known.codes) == len(series) \
                and set(map(type, known.uniques)) <= _NUMBER_TYPES:
            # each distinct number made a float once (missing: code -1, the last, NaN)
            table = np.array([*known.uniques, math.nan], dtype=np.float64)
            return pd.Series(table[known.codes], index=series.index, name=series.name)
        return num_column(series)
    if known is not None and series.dtype == object and len(known.codes) == len(series) \
            and known.all_text:
        # as char_column gives it, without looking at every row's type: text as it is,
        # a missing value (None or NaN: code -1) None; the values copied only to be
        # changed (an object column's copy increments every value's count)
        values = series.to_numpy(dtype=object)
        missing = known.codes < 0
        if missing.any():
            values = values.copy()
            values[missing] = None
        return pd.Series(values, index=series.index, name=series.name, dtype=object,
                         copy=False)
    return char_column(series)


def num_column(series: pd.Series) -> pd.Series:
    """A column as float64: numbers and numeric text as numbers, anything else NaN."""
    if series.dtype == object:
        values = series.to_numpy(dtype=object)
        if pd.api.types.infer_dtype(values, skipna=True) in ("floating", "empty"):
            try:              # floats and missing cells: no text to parse
                return pd.Series(values.astype(np.float64), index=series.index,
                                 name=series.name)
            except (TypeError, ValueError):
                pass
            cells = values.tolist()
            if set(map(type, cells)) <= _FLOAT_OR_NONE:     # None where a row has none
                return pd.Series(np.array([math.nan if cell is None else cell
                                           for cell in cells], dtype=np.float64),
                                 index=series.index, name=series.name)
    return pd.to_numeric(series, errors="coerce").astype("float64")


_FLOAT_OR_NONE = {float, type(None)}
_NUMBER_TYPES = {float, int}


def char_column(series: pd.Series) -> pd.Series:
    """A column as objects, None where a cell is missing."""
    if series.dtype == object or isinstance(series.dtype, pd.StringDtype):
        values = series.to_numpy(dtype=object, copy=True)
        if pd.api.types.infer_dtype(values, skipna=False) == "string" \
                or text_or_none(values.tolist()):                  # None: missing already
            return pd.Series(values, index=series.index, name=series.name, dtype=object,
                             copy=False)                           # (the copy above)
    elif series.dtype == np.float64 and not series.notna().any():
        # nothing but NaN (a variable no row has): None in every row, made at once
        return pd.Series(np.full(len(series), None, dtype=object), index=series.index,
                         name=series.name, dtype=object)
    return series.astype(object).where(series.notna(), None)


def dataset_meta(domain: str, columns: list[str], numeric: Container[str]) -> DatasetMeta:
    """Writer metadata (labels and types from SDTMIG 3.4); a variable SDTMIG does not list
    is Num when it is in ``numeric``."""
    base = sdtmig.dataset_meta(domain, columns)
    out = []
    for col in base.columns:
        kind = col.type
        if sdtmig.variable(domain, col.name) is None:
            kind = "Num" if col.name in numeric else "Char"
        out.append(ColumnMeta(col.name, col.label, kind))
    return DatasetMeta(base.name, base.label, tuple(out))


def _tidy(domain: str, frame: pd.DataFrame) -> pd.DataFrame:
    present = {name for name in frame.columns if not frame[name].isna().all()}
    return typed_frame(domain, frame, tidy_columns(domain, frame.columns, present))
