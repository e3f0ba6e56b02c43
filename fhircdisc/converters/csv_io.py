"""SDTM datasets as CSV: UTF-8, one header row of variable names, missing values empty.

Numbers are written so that they read back as the same float: integral values below
1e16 in magnitude as integers (``84``, not ``84.0``), every other value with Python's
shortest round-trip ``repr`` (``0.1``, ``1e+300``, ``inf``). Lines end with ``\\n``;
fields are quoted only when needed (a separator, quote or line break inside). A row
whose only field is empty is written as ``""`` so that it is not a blank line.

CSV carries no labels or types: :func:`read_csv` without metadata returns every column
as Char; with a :class:`DatasetMeta` the columns are put in its order and its Num
columns are parsed as numbers.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fhircdisc.converters.atomic import write_bytes_atomic
from fhircdisc.converters.datasets import (
    build_frame,
    check_frame,
    column_arrays,
    none_mask,
    normalize_char,
)
from fhircdisc.errors import InputError
from fhircdisc.schemas.columns import ColumnMeta, DatasetMeta

MAX_PROBLEMS = 20


def format_number(value: float) -> str:
    """CSV text of a Num value: '' for missing, integers without '.0', else shortest repr."""
    if math.isnan(value):
        return ""
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


def format_numbers(values: np.ndarray) -> np.ndarray:
    """:func:`format_number` of every value of a float64 array, as an ``object`` array."""
    out = np.full(len(values), "", dtype=object)
    with np.errstate(invalid="ignore"):
        whole = (np.floor(values) == values) & (np.abs(values) < 1e16)
    other = ~whole & ~np.isnan(values)
    out[whole] = list(map(str, values[whole].astype(np.int64).tolist()))
    out[other] = list(map(repr, values[other].tolist()))
    return out


def _quoting_marks() -> tuple[str, ...]:
    """The characters that make ``csv.writer`` quote a field here (asked of the module:
    whether a carriage return is one of them depends on the Python version)."""
    marks = []
    for mark in (",", '"', "\r", "\n"):
        buffer = io.StringIO(newline="")
        csv.writer(buffer, lineterminator="\n").writerow([f"a{mark}b", "c"])
        if buffer.getvalue().startswith('"'):
            marks.append(mark)
    return tuple(marks)


_QUOTED = _quoting_marks()


def _rows_bytes(meta: DatasetMeta, arrays: list[np.ndarray]) -> bytes:
    """The CSV lines of ``arrays`` (``column_arrays``), as the ``csv`` module writes them.

    With two or more columns the lines are joined here, quoting (and doubling quotes in)
    the fields that hold a separator, a quote or a line end (:data:`_QUOTED`), exactly
    like ``csv.writer`` with the minimal quoting used here, only faster. A row of one
    empty field needs quotes too (``""``), so one-column datasets go through ``csv.writer``.
    """
    columns: list[list[str]] = []
    for col, values in zip(meta.columns, arrays, strict=True):
        if col.type == "Char":
            texts = values.copy()
            texts[none_mask(values)] = ""
            columns.append(texts.tolist())
        else:
            columns.append(format_numbers(values).tolist())
    if len(columns) < 2:
        return _csv_bytes([[field] for field in columns[0]]) if columns else b""
    for j, fields in enumerate(columns):
        joined = "".join(fields)
        if any(mark in joined for mark in _QUOTED):
            columns[j] = [_quote(f) if any(mark in f for mark in _QUOTED) else f
                          for f in fields]
    lines = "\n".join(map(",".join, zip(*columns, strict=True)))
    return (lines + "\n").encode("utf-8") if lines else b""


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _csv_bytes(rows: Iterable[Sequence[str]]) -> bytes:
    """``rows`` as UTF-8 CSV text (``\\n`` line ends, fields quoted only when needed)."""
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode("utf-8")


def write_csv(df: pd.DataFrame, path: Path | str, meta: DatasetMeta) -> None:
    """Write ``df`` as a UTF-8 CSV file with a header row of variable names."""
    path = Path(path)
    check_frame(df, meta)
    header = _csv_bytes([[c.name for c in meta.columns]])
    write_bytes_atomic(path, header + _rows_bytes(meta, column_arrays(df, meta)))


class CsvPieceEncoder:
    """The bytes of one CSV file whose rows arrive in pieces (see ``dataset_stream``)."""

    def __init__(self, meta: DatasetMeta) -> None:
        self.meta = meta

    def head(self) -> bytes:
        """The header row of variable names."""
        return _csv_bytes([[c.name for c in self.meta.columns]])

    def encode(self, arrays: list[np.ndarray]) -> bytes:
        """The lines of one piece (``column_arrays``)."""
        return _rows_bytes(self.meta, arrays)


def _parse_number(text: str) -> float | None:
    """The float in ``text`` (empty -> NaN), or None if it is not a number."""
    text = text.strip()
    if text == "":
        return math.nan
    try:
        number = float(text)
    except ValueError:
        return None
    if math.isnan(number) and text.lower() not in ("nan", "+nan", "-nan"):
        return None
    return number


def read_csv(path: Path | str, meta: DatasetMeta | None = None) -> pd.DataFrame:
    """Read a CSV dataset. Values are text (empty -> None, trailing blanks stripped).

    With ``meta`` the header must name exactly its variables (any order); the frame
    follows the metadata order and Num columns are numbers (a non-number is an
    InputError naming the row and variable, up to 20 of them listed).
    """
    path = Path(path)
    source = str(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError as exc:
        raise InputError("file not found", source=source) from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start})", source=source) from exc
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", source=source) from exc

    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise InputError("empty file: no header row", source=source)
        records: list[tuple[int, list[str]]] = []
        for fields in reader:
            if fields:
                records.append((reader.line_num, fields))
    except csv.Error as exc:
        raise InputError(f"malformed CSV: {exc}", source=source,
                         location=f"line {reader.line_num}") from exc

    dups = sorted({h for h in header if header.count(h) > 1})
    if dups:
        raise InputError(f"column(s) named twice in the header: {', '.join(dups)}",
                         source=source, location="line 1")
    if meta is None:
        meta = DatasetMeta(name=path.stem.upper(), label="",
                           columns=tuple(ColumnMeta(name=h, label="") for h in header))
    else:
        names = [c.name for c in meta.columns]
        missing = [n for n in names if n not in header]
        extra = [h for h in header if h not in names]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing variable(s) {', '.join(missing)}")
            if extra:
                parts.append(f"unexpected column(s) {', '.join(extra)}")
            raise InputError("header does not match the dataset metadata: " + "; ".join(parts),
                             source=source, location="line 1")

    positions = [header.index(c.name) for c in meta.columns]
    values: list[list[object]] = [[] for _ in meta.columns]
    problems: list[str] = []
    for row, (line, fields) in enumerate(records, start=1):
        if len(fields) != len(header):
            problems.append(f"row {row} (line {line}): has {len(fields)} fields, "
                            f"the header has {len(header)}")
        else:
            for j, (col, pos) in enumerate(zip(meta.columns, positions, strict=True)):
                cell = fields[pos]
                if col.type == "Char":
                    values[j].append(normalize_char(cell))
                    continue
                number = _parse_number(cell)
                if number is None:
                    problems.append(f"row {row} (line {line}), variable {col.name}: "
                                    f"expected a number, got {cell!r}")
                    number = math.nan
                values[j].append(number)
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        if len(problems) == 1:
            location, _, message = problems[0].partition(": ")
            raise InputError(message, source=source, location=location)
        raise InputError(f"{len(problems)} problems" + (" (stopped looking)"
                         if len(problems) >= MAX_PROBLEMS else "") + ":\n  "
                         + "\n  ".join(problems), source=source)
    return build_frame(meta, values)
