"""SAS XPORT (XPT) files: write version 5 (what FDA and PMDA accept), read versions 5 and 8.

Writing goes through ``pyreadstat.write_xport``. That function silently truncates
labels to 40 characters, writes non-ASCII text as UTF-8 bytes and writes numbers it
cannot represent as infinity or zero, so :func:`check_xpt_v5` checks every limit first
and :func:`write_xpt` refuses to write a dataset that breaks any of them.

Numbers: XPT stores IBM hexadecimal floats (7-bit base-16 exponent, 56-bit fraction).
Measured with pyreadstat 1.3: every IEEE double ``x`` with
``16**-65 <= abs(x) < 2**249`` (about 5.4e-79 to 9.0e+74) and zero survive a write and
read bit for bit; smaller magnitudes come back as 0 and larger ones as infinity
(pyreadstat's limit is 2**249, below the IBM format's own 7.2e+75). Numbers outside
that range are therefore reported as violations.

Char length: ``pyreadstat`` sizes each character variable to its longest value (at
least 1). To honour a larger ``ColumnMeta.length`` the values are padded with
trailing blanks, which XPT readers strip anyway.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from fhircdisc.converters.atomic import atomic_path
from fhircdisc.converters.datasets import (
    build_frame,
    char_cells,
    check_frame,
    normalize_char,
    num_cells,
)
from fhircdisc.errors import ConversionError, InputError
from fhircdisc.schemas.columns import ColumnMeta, DatasetMeta

MAX_NAME = 8
MAX_LABEL = 40
MAX_CHAR_BYTES = 200
XPT_MIN_MAGNITUDE = 16.0**-65  # smallest non-zero magnitude kept (below: written as 0)
XPT_MAX_MAGNITUDE = 2.0**249  # first magnitude pyreadstat writes as infinity
MAX_LISTED = 20

_DATASET_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*\Z")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class XptViolation:
    """One way a dataset breaks the XPT v5 limits. ``row`` is 1-based, None if not a value."""

    domain: str
    variable: str | None
    row: int | None
    message: str

    def __str__(self) -> str:
        where = self.domain
        if self.variable:
            where += f".{self.variable}"
        if self.row is not None:
            where += f" row {self.row}"
        return f"{where}: {self.message}"


def _non_ascii(text: str) -> str | None:
    """The first non-ASCII character of ``text`` (as ``'é' (U+00E9)``), or None."""
    for ch in text:
        if ord(ch) > 127:
            return f"{ch!r} (U+{ord(ch):04X})"
    return None


def xpt_representable(value: float) -> bool:
    """True if XPT v5 (as written by pyreadstat) keeps ``value`` exactly; NaN (missing) is True."""
    if math.isnan(value) or value == 0.0:
        return True
    return math.isfinite(value) and XPT_MIN_MAGNITUDE <= abs(value) < XPT_MAX_MAGNITUDE


def _check_name_label(domain: str, what: str, variable: str | None, name: str | None,
                      label: str, pattern: re.Pattern[str], rule: str) -> list[XptViolation]:
    out: list[XptViolation] = []
    if name is not None:
        if len(name) > MAX_NAME:
            out.append(XptViolation(domain, variable, None,
                                    f"{what} name {name!r} is {len(name)} characters, "
                                    f"XPT v5 allows {MAX_NAME}"))
        if not pattern.match(name):
            out.append(XptViolation(domain, variable, None,
                                    f"{what} name {name!r} is not valid: {rule}"))
    if len(label) > MAX_LABEL:
        out.append(XptViolation(domain, variable, None,
                                f"{what} label is {len(label)} characters, "
                                f"XPT v5 allows {MAX_LABEL}: {label!r}"))
    bad = _non_ascii(label)
    if bad:
        out.append(XptViolation(domain, variable, None,
                                f"{what} label has non-ASCII character {bad}"))
    return out


def check_xpt_v5(df: pd.DataFrame, meta: DatasetMeta) -> list[XptViolation]:
    """Every way ``df``/``meta`` break the XPT v5 limits (empty list: writable).

    Checks dataset and variable names (at most 8 characters; a dataset name is a letter
    then letters/digits, a variable name letters, digits and underscores not starting
    with a digit), labels (at most 40 characters, ASCII), Char values (at most 200 bytes,
    ASCII) and Num values (finite and within the range XPT keeps, see module docstring).
    Columns of ``meta`` absent from ``df`` are skipped here (``write_xpt`` reports them).
    """
    domain = meta.name
    out = _check_name_label(domain, "dataset", None, meta.name, meta.label, _DATASET_NAME,
                            "it must start with a letter and hold only letters and digits")
    seen: set[str] = set()
    for col in meta.columns:
        out += _check_name_label(domain, "variable", col.name, col.name, col.label,
                                 _VARIABLE_NAME,
                                 "it must start with a letter or underscore and hold only "
                                 "letters, digits and underscores")
        if col.name in seen:
            out.append(XptViolation(domain, col.name, None, "variable appears twice"))
        seen.add(col.name)
        if col.name not in df.columns:
            continue
        for row, value in enumerate(df[col.name].tolist(), start=1):
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            if col.type == "Char":
                if not isinstance(value, str):
                    continue  # a type problem, reported by the writer's conversion
                size = len(value.encode("utf-8"))
                if size > MAX_CHAR_BYTES:
                    out.append(XptViolation(domain, col.name, row,
                                            f"value is {size} bytes, XPT v5 allows "
                                            f"{MAX_CHAR_BYTES}"))
                bad = _non_ascii(value)
                if bad:
                    out.append(XptViolation(domain, col.name, row,
                                            f"value has non-ASCII character {bad}"))
            else:
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    continue  # a type problem, reported by the writer's conversion
                if math.isnan(number):
                    continue
                if not math.isfinite(number):
                    out.append(XptViolation(domain, col.name, row,
                                            f"value {number!r} is not a finite number"))
                elif not xpt_representable(number):
                    out.append(XptViolation(domain, col.name, row,
                                            f"value {number!r} is outside the range XPT v5 "
                                            f"keeps (magnitude {XPT_MIN_MAGNITUDE:.3g} to "
                                            f"{XPT_MAX_MAGNITUDE:.3g}, or 0)"))
    out += _trailing_blank_rows(df, meta)
    return out


def _trailing_blank_rows(df: pd.DataFrame, meta: DatasetMeta) -> list[XptViolation]:
    """Final rows that XPT cannot keep: all variables Char, row entirely blank, row < 80 bytes.

    Such rows look exactly like the blank padding of the last 80-byte record, and
    readers (readstat, SAS) drop them. Longer rows are restored by :func:`read_xpt`.
    """
    if not meta.columns or any(c.type != "Char" for c in meta.columns):
        return []
    if any(c.name not in df.columns for c in meta.columns):
        return []
    row_length = 0
    for col in meta.columns:
        texts = [v for v in df[col.name].tolist() if isinstance(v, str)]
        row_length += max([col.length or 1, *(len(t.encode("utf-8")) for t in texts)])
    if row_length >= 80:
        return []
    out: list[XptViolation] = []
    for index in range(len(df) - 1, -1, -1):
        row = df.iloc[index]
        if any(isinstance(row[c.name], str) and row[c.name].strip(" ") for c in meta.columns):
            break
        out.append(XptViolation(meta.name, None, index + 1,
                                "every value of this final row is blank: XPT cannot tell it "
                                "from padding (row length under 80 bytes) and it would be lost"))
    return out[::-1]


def _violation_message(path: Path, violations: list[XptViolation]) -> str:
    lines = [f"{path}: cannot write XPT v5, {len(violations)} problem(s):"]
    lines += [f"  {v}" for v in violations[:MAX_LISTED]]
    if len(violations) > MAX_LISTED:
        lines.append(f"  ... and {len(violations) - MAX_LISTED} more")
    return "\n".join(lines)


def write_xpt(df: pd.DataFrame, path: Path | str, meta: DatasetMeta, *,
              created: str | None = None) -> None:
    """Write ``df`` as an XPT version 5 file; ConversionError (and no file) if it breaks a limit.

    Missing Char values are written as blanks; Num values as 8-byte IBM floats.
    ``created`` (ISO 8601 date-time) replaces the creation/modification stamps in the
    headers, so that the same data written twice gives identical bytes.
    """
    import pyreadstat

    path = Path(path)
    check_frame(df, meta)
    violations = check_xpt_v5(df, meta)
    if violations:
        raise ConversionError(_violation_message(path, violations))

    data: dict[str, pd.Series] = {}
    for col in meta.columns:
        if col.type == "Char":
            values = ["" if v is None else v for v in char_cells(df, meta, col)]
            width = max([col.length or 1, *(len(v) for v in values)])
            # pad so pyreadstat sizes the variable to ColumnMeta.length (blanks are stripped
            # on read); ASCII was checked, so characters == bytes here
            data[col.name] = pd.Series([v.ljust(width) for v in values], dtype=object)
        else:
            data[col.name] = pd.Series(num_cells(df, meta, col), dtype="float64")
    frame = pd.DataFrame(data) if data else pd.DataFrame(index=range(len(df)))

    try:
        with atomic_path(path) as tmp:
            pyreadstat.write_xport(frame, str(tmp), file_label=meta.label,
                                   column_labels=[c.label for c in meta.columns],
                                   table_name=meta.name, file_format_version=5)
            if created is not None:
                _stamp_headers(tmp, created)
    except (pyreadstat.ReadstatError, pyreadstat.PyreadstatError) as exc:
        raise ConversionError(f"{path}: pyreadstat could not write XPT: {exc}") from exc


_HEADER_STAMP = re.compile(rb"\d\d[A-Z]{3}\d\d:\d\d:\d\d:\d\d")
_NAMESTR_HEADER = b"HEADER RECORD*******NAMESTR"


def _stamp_headers(path: Path, created: str) -> None:
    """Put ``created`` (ISO 8601) in every date stamp of the library and member headers."""
    try:
        when = datetime.fromisoformat(created)
    except ValueError as exc:
        raise ConversionError(f"creation date-time {created!r} is not ISO 8601") from exc
    month = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV",
             "DEC")[when.month - 1]
    stamp = f"{when:%d}{month}{when:%y}:{when:%H:%M:%S}".encode("ascii")
    data = path.read_bytes()
    end = data.find(_NAMESTR_HEADER)
    head = _HEADER_STAMP.sub(stamp, data[:end])
    path.write_bytes(head + data[end:])


_OBS_HEADER = re.compile(rb"HEADER RECORD\*{7}OBS(?:V8)? +HEADER RECORD!{7}")
_MEMBER_HEADER = re.compile(rb"HEADER RECORD\*{7}MEMB(?:ER|V8) +HEADER RECORD!{7}")


def _check_layout(path: Path, n_rows: int, row_length: int) -> tuple[str | None, int]:
    """(why the file looks cut short or None, number of all-blank rows readstat dropped).

    XPT files consist of 80-byte records and the last one is padded with blanks, so a
    size that is not a multiple of 80, or non-blank bytes after the last whole row, mean
    a truncated file (readstat then silently returns the rows it could read). A cut
    exactly between rows on a record boundary cannot be detected.

    readstat also drops trailing rows that are entirely blank (only possible when all
    variables are character). With a row length of 80 or more the padding cannot hold a
    whole row, so such rows are certainly data and are counted here to be restored.
    """
    data = path.read_bytes()
    if len(data) % 80:
        return f"its size ({len(data)} bytes) is not a multiple of 80", 0
    if len(_MEMBER_HEADER.findall(data)) != 1:
        return None, 0  # several members: leave the layout to readstat
    match = _OBS_HEADER.search(data)
    if match is None or row_length <= 0:
        return None, 0
    tail = data[match.start() + 80 + n_rows * row_length:]
    if tail.strip(b" "):
        return "it ends inside a row", 0
    dropped = len(tail) // row_length if row_length >= 80 else 0
    return None, dropped


def read_xpt(path: Path | str) -> tuple[pd.DataFrame, DatasetMeta]:
    """Read an XPT file (version 5 or 8) into the in-memory frame and its metadata.

    Labels come from the file, type from the stored variable type (character -> Char,
    numeric -> Num) and length from the stored width. Text that is not UTF-8 is decoded
    as Windows-1252 (older SAS files). Any unreadable file is an InputError.
    """
    import pyreadstat

    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", source=str(path))
    try:
        try:
            raw, fmeta = pyreadstat.read_xport(str(path))
        except UnicodeDecodeError:
            raw, fmeta = pyreadstat.read_xport(str(path), encoding="WINDOWS-1252")
    except (pyreadstat.ReadstatError, pyreadstat.PyreadstatError, UnicodeDecodeError,
            ValueError, OSError) as exc:
        raise InputError(f"not a readable SAS XPORT file: {exc}", source=str(path),
                         hint="the file may be truncated or in another format") from exc

    labels = fmeta.column_names_to_labels or {}
    types = fmeta.readstat_variable_types or {}
    widths = fmeta.variable_storage_width or {}
    truncated, blank_rows = _check_layout(path, len(raw),
                                          sum(int(w) for w in widths.values()))
    if truncated:
        raise InputError(f"truncated SAS XPORT file: {truncated}", source=str(path),
                         hint=f"only {len(raw)} whole rows could be read")
    columns: list[ColumnMeta] = []
    values: list[list[Any]] = []
    for name in fmeta.column_names:
        is_char = types.get(name) == "string"
        width = widths.get(name)
        columns.append(ColumnMeta(name=name, label=labels.get(name) or "",
                                  type="Char" if is_char else "Num",
                                  length=int(width) if width else None))
        series = raw[name]
        if is_char:
            values.append([normalize_char(v) for v in series.tolist()] + [None] * blank_rows)
        else:  # blank_rows is 0 here: a numeric variable is never blank
            values.append(pd.to_numeric(series, errors="coerce").astype("float64").tolist())
    meta = DatasetMeta(name=fmeta.table_name or path.stem.upper(), label=fmeta.file_label or "",
                       columns=tuple(columns))
    return build_frame(meta, values), meta
