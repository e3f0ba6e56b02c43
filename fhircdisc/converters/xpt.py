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

Piece by piece (:class:`XptPieceEncoder`, used by ``dataset_stream``): pyreadstat writes
the headers (from the widths of the whole dataset); the observation records are encoded
here with numpy exactly as pyreadstat encodes them: Char values blank-padded (cut at a
NUL, as readstat copies them), Num values as IBM floats (:func:`ibm_doubles`), the last
80-byte record padded with blanks.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fhircdisc.column_values import ColumnValues, text_facts
from fhircdisc.converters.datasets import (
    build_frame,
    char_array,
    check_frame,
    none_mask,
    normalize_char,
    num_array,
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


def check_xpt_v5(df: pd.DataFrame, meta: DatasetMeta,
                 distinct: Callable[[str], ColumnValues] | None = None) -> list[XptViolation]:
    """Every way ``df``/``meta`` break the XPT v5 limits (empty list: writable).

    Checks dataset and variable names (at most 8 characters; a dataset name is a letter
    then letters/digits, a variable name letters, digits and underscores not starting
    with a digit), labels (at most 40 characters, ASCII), Char values (at most 200 bytes,
    ASCII) and Num values (finite and within the range XPT keeps, see module docstring).
    Columns of ``meta`` absent from ``df`` are skipped here (``write_xpt`` reports them).
    ``distinct`` gives a column's codes into its distinct values when the caller already
    has them; the rows of a column are only gone through when one of those breaks a
    limit.
    """
    return _check(df, meta, names=True, distinct=distinct) + _trailing_blank_rows(df, meta)


def _check(df: pd.DataFrame | None, meta: DatasetMeta, *, names: bool, first_row: int = 1,
           distinct: Callable[[str], ColumnValues] | None = None) -> list[XptViolation]:
    """Name/label violations (``names``) and value violations of ``df`` (if given), in order.

    ``first_row`` is the number of the first row of ``df`` in the whole dataset.
    """
    domain = meta.name
    out: list[XptViolation] = []
    if names:
        out += _check_name_label(domain, "dataset", None, meta.name, meta.label,
                                 _DATASET_NAME,
                                 "it must start with a letter and hold only letters and digits")
    seen: set[str] = set()
    clean: dict[tuple[int, str], tuple[Any, bool]] = {}  # shared distinct values: once
    for col in meta.columns:
        if names:
            out += _check_name_label(domain, "variable", col.name, col.name, col.label,
                                     _VARIABLE_NAME,
                                     "it must start with a letter or underscore and hold only "
                                     "letters, digits and underscores")
            if col.name in seen:
                out.append(XptViolation(domain, col.name, None, "variable appears twice"))
            seen.add(col.name)
        if df is not None and col.name in df.columns:
            column = df[col.name]
            if col.type == "Num" and column.dtype == np.float64:
                if _clean(col, column.to_numpy()):   # at C speed, no distinct values needed
                    continue
            elif distinct is not None:
                coded = distinct(col.name)
                key = (id(coded), col.type)
                if key not in clean:            # (the codes kept: their id stays theirs)
                    facts = coded.text_facts if coded.all_text and col.type == "Char" \
                        else None
                    clean[key] = (coded, _clean(col, coded.uniques, unique=True)
                                  if facts is None
                                  else facts.ascii and facts.longest <= MAX_CHAR_BYTES)
                if clean[key][1]:
                    continue
            out += _value_violations(domain, col, column.tolist(), first_row)
    return out


def _clean(col: ColumnMeta, values: list[Any] | np.ndarray, unique: bool = False) -> bool:
    """True when no value can break a limit (checked column-wise, at C speed); ``unique``:
    ``values`` are already distinct."""
    if col.type == "Char":
        distinct: Any = values
        if not unique:
            with contextlib.suppress(TypeError):
                distinct = set(values)      # columns repeat their values: test each once
        texts = (distinct if pd.api.types.infer_dtype(distinct, skipna=False) == "string"
                 else [v for v in distinct if v.__class__ is str])
        facts = text_facts(texts)
        return facts.ascii and facts.longest <= MAX_CHAR_BYTES
    try:
        numbers = np.asarray(values, dtype="float64")
    except (TypeError, ValueError):
        return False
    numbers = np.abs(numbers[~np.isnan(numbers)])
    with np.errstate(invalid="ignore"):
        kept = (numbers == 0) | ((numbers >= XPT_MIN_MAGNITUDE) & (numbers < XPT_MAX_MAGNITUDE))
    return bool(kept.all())


def _value_violations(domain: str, col: ColumnMeta, values: list[Any],
                      first_row: int) -> list[XptViolation]:
    if _clean(col, values):
        return []
    out: list[XptViolation] = []
    for row, value in enumerate(values, start=first_row):
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
        out.append(_blank_row_violation(meta.name, index + 1))
    return out[::-1]


def _blank_row_violation(domain: str, row: int) -> XptViolation:
    return XptViolation(domain, None, row,
                        "every value of this final row is blank: XPT cannot tell it "
                        "from padding (row length under 80 bytes) and it would be lost")


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
    ``created`` (ISO 8601 date-time, default now) is the creation/modification stamp in
    the headers, so that the same data written twice with it gives identical bytes.

    pyreadstat writes the headers; the observation records are encoded by
    :class:`XptPieceEncoder`, byte for byte as pyreadstat writes them but a column at a
    time instead of a value at a time (about 5x faster on a 100,000-row DM).
    """
    from fhircdisc.converters.dataset_stream import DatasetWriter, stats_of

    path = Path(path)
    check_frame(df, meta)
    violations = check_xpt_v5(df, meta)
    if violations:
        raise ConversionError(_violation_message(path, violations))
    stamp = created or datetime.now().replace(microsecond=0).isoformat()
    with DatasetWriter(path, meta, "xpt", stats_of(df, meta), creation_datetime=stamp) as writer:
        writer.write(df)


def _pyreadstat_frame(df: pd.DataFrame, meta: DatasetMeta) -> pd.DataFrame:
    """The frame handed to pyreadstat: Char values blank-padded, Num values float64."""
    data: dict[str, pd.Series] = {}
    for col in meta.columns:
        if col.type == "Char":
            values = ["" if v is None else v for v in char_array(df, meta, col).tolist()]
            width = max([col.length or 1, *(len(v) for v in values)])
            # pad so pyreadstat sizes the variable to ColumnMeta.length (blanks are stripped
            # on read); ASCII was checked, so characters == bytes here
            data[col.name] = pd.Series([v.ljust(width) for v in values], dtype=object)
        else:
            data[col.name] = pd.Series(num_array(df, meta, col), dtype="float64")
    return pd.DataFrame(data) if data else pd.DataFrame(index=range(len(df)))


def _pyreadstat_write(frame: pd.DataFrame, tmp: Path, path: Path, meta: DatasetMeta) -> None:
    """Write ``frame`` to ``tmp`` with pyreadstat (errors: ConversionError naming ``path``)."""
    import pyreadstat

    try:
        pyreadstat.write_xport(frame, str(tmp), file_label=meta.label,
                               column_labels=[c.label for c in meta.columns],
                               table_name=meta.name, file_format_version=5)
    except (pyreadstat.ReadstatError, pyreadstat.PyreadstatError) as exc:
        raise ConversionError(f"{path}: pyreadstat could not write XPT: {exc}") from exc


_HEADER_STAMP = re.compile(rb"\d\d[A-Z]{3}\d\d:\d\d:\d\d:\d\d")
_NAMESTR_HEADER = b"HEADER RECORD*******NAMESTR"


def _header_stamp(created: str) -> bytes:
    """``created`` (ISO 8601) as an XPT header date stamp such as ``31JAN25:12:00:00``."""
    try:
        when = datetime.fromisoformat(created)
    except ValueError as exc:
        raise ConversionError(f"creation date-time {created!r} is not ISO 8601") from exc
    month = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV",
             "DEC")[when.month - 1]
    return f"{when:%d}{month}{when:%y}:{when:%H:%M:%S}".encode("ascii")


def _stamped(data: bytes, created: str) -> bytes:
    """``data`` (an XPT file or its headers) with ``created`` in every header date stamp."""
    stamp = _header_stamp(created)
    end = data.find(_NAMESTR_HEADER)
    head = _HEADER_STAMP.sub(stamp, data[:end])
    return head + data[end:]


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


# --------------------------------------------------------------------------- piece by piece

_SIGN_BIT = np.uint64(1 << 63)
_FRACTION_BITS = np.uint64((1 << 52) - 1)
_HIDDEN_BIT = np.uint64(1 << 52)
_MISSING_WORD = np.uint64(0x2E << 56)  # SAS missing value ".", as pyreadstat writes NaN


def ibm_doubles(values: np.ndarray) -> np.ndarray:
    """IEEE doubles as XPT's 8-byte IBM hexadecimal floats, an ``(n, 8)`` uint8 array.

    NaN becomes the SAS missing value ``.``, zero (either sign) all-zero bytes, like
    pyreadstat. Values must be XPT-representable (:func:`xpt_representable`); within that
    range the conversion is exact (53-bit fraction shifted by at most 3 bits into 56).
    """
    values = np.ascontiguousarray(values, dtype=np.float64)
    bits = values.view(np.uint64)
    exponent2 = ((bits >> np.uint64(52)) & np.uint64(0x7FF)).astype(np.int64) - 1022
    exponent16 = -((-exponent2) // 4)  # |x| = m * 2**exponent2, 0.5 <= m < 1
    shift = (exponent2 - 4 * exponent16 + 3).astype(np.uint64)
    fraction = ((bits & _FRACTION_BITS) | _HIDDEN_BIT) << shift
    words = (bits & _SIGN_BIT) | ((exponent16 + 64).astype(np.uint64) << np.uint64(56)) \
        | fraction
    words[values == 0] = 0
    words[np.isnan(values)] = _MISSING_WORD
    return words.astype(">u8").view(np.uint8).reshape(len(values), 8)


class XptPieceEncoder:
    """The bytes of one XPT v5 file whose rows arrive in pieces (see ``dataset_stream``).

    ``longest`` is the longest value (characters) of each Char variable over the whole
    dataset, ``rows`` the total number of rows: together with ``meta`` they fix the
    headers, which pyreadstat writes; observation records are encoded here, byte for
    byte as pyreadstat writes them. Dataset-level violations (names, labels) raise at
    construction, value violations per piece, trailing blank rows at :meth:`tail`.
    """

    def __init__(self, path: Path, meta: DatasetMeta, longest: dict[str, int], rows: int,
                 created: str) -> None:
        violations = _check(None, meta, names=True)
        if violations:
            raise ConversionError(_violation_message(path, violations))
        self.path = path
        self.meta = meta
        _header_stamp(created)  # a bad date-time is refused before any file exists
        self.rows = rows
        self.created = created
        self.widths = [max(c.length or 1, longest.get(c.name, 0)) if c.type == "Char" else 8
                       for c in meta.columns]
        self.row_length = sum(self.widths)
        # final all-blank rows are lost in XPT when every variable is Char and rows are short
        self._watch_blank = bool(meta.columns) and self.row_length < 80 \
            and all(c.type == "Char" for c in meta.columns)
        self._blank_run = 0  # all-blank rows at the end of what was encoded so far

    def head(self, scratch: Path) -> bytes:
        """The headers up to the ``OBS`` record, written by pyreadstat into ``scratch``."""
        meta = self.meta
        if self.rows:  # one placeholder row: pyreadstat sizes Char variables by their values
            sized = DatasetMeta(meta.name, meta.label, tuple(
                ColumnMeta(c.name, c.label, c.type, w) for c, w in zip(meta.columns,
                                                                     self.widths, strict=True)))
            sample = build_frame(sized, [[None] if c.type == "Char" else [math.nan]
                                         for c in meta.columns])
            frame = _pyreadstat_frame(sample if meta.columns
                                      else pd.DataFrame(index=range(1)), sized)
        else:  # no rows: exactly what write_xpt hands pyreadstat
            frame = _pyreadstat_frame(build_frame(meta, [[] for _ in meta.columns]), meta)
        _pyreadstat_write(frame, scratch, self.path, meta)
        data = scratch.read_bytes()
        match = _OBS_HEADER.search(data)
        if match is None:
            raise ConversionError(f"{self.path}: pyreadstat wrote no observation header")
        return _stamped(data[:match.start() + 80], self.created)

    def check_limits(self, piece: pd.DataFrame, first_row: int) -> None:
        """Raise ConversionError listing the piece's value violations (rows from ``first_row``)."""
        violations = _check(piece, self.meta, names=False, first_row=first_row)
        if violations:
            raise ConversionError(_violation_message(self.path, violations))

    def encode(self, piece: pd.DataFrame, arrays: list[np.ndarray], first_row: int,
               coded: Mapping[str, ColumnValues] | None = None
               ) -> tuple[bytes | memoryview, dict[str, int]]:
        """The observation records of a piece and the longest value of each Char column.

        ``arrays`` are the piece's columns (``column_arrays``); ``coded``, columns of the
        piece already made into codes, whose Char values are then encoded once per
        distinct value. Raises ConversionError if the piece breaks an XPT v5 limit; a
        vectorised test decides whether the per-value check (and its messages) is
        needed. A value longer than the width fixed at construction is cut here: the
        caller must refuse the piece then.
        """
        fields, longest, suspect = self._fields(len(piece), arrays, coded)
        if suspect:
            self.check_limits(piece, first_row)
        if self._watch_blank and len(piece):
            self._follow_blank_rows(arrays)
        return self._records(len(piece), fields), longest

    def encode_apart(self, piece: pd.DataFrame, arrays: list[np.ndarray],
                     coded: Mapping[str, ColumnValues] | None = None
                     ) -> tuple[bytes | memoryview, dict[str, int]] | None:
        """:meth:`encode` of a piece encoded before the dataset's widths are known, at
        the widths this encoder was made with (the piece's own longest values; see
        :meth:`widened`): None when it breaks a limit (its rows are not numbered yet,
        :meth:`encode` reports them) or when its dataset may end in blank rows XPT
        loses (those are counted over the whole dataset)."""
        if self._watch_blank:
            return None
        fields, longest, suspect = self._fields(len(piece), arrays, coded)
        return None if suspect else (self._records(len(piece), fields), longest)

    def widened(self, records: bytes | memoryview, widths: list[int]) -> bytes | memoryview:
        """Records encoded with ``widths`` (:meth:`encode_apart`) at this encoder's widths:
        each Char value padded with blanks to its column's width, as :meth:`encode`
        writes it."""
        if widths == self.widths:
            return records
        if len(widths) != len(self.widths) or any(
                narrow > wide for narrow, wide in zip(widths, self.widths, strict=True)):
            raise ConversionError(f"{self.path}: records of widths {widths} do not fit "
                                  f"the dataset's widths {self.widths}")
        size = sum(widths)
        rows = len(records) // size if size else 0
        given = np.frombuffer(records, dtype=np.uint8).reshape(rows, size)
        out = np.full((rows, self.row_length), 0x20, dtype=np.uint8)
        start = place = 0
        for narrow, wide in zip(widths, self.widths, strict=True):
            out[:, place:place + narrow] = given[:, start:start + narrow]
            start += narrow
            place += wide
        return out.data

    def _fields(self, n_rows: int, arrays: list[np.ndarray],
                coded: Mapping[str, ColumnValues] | None
                ) -> tuple[list[np.ndarray], dict[str, int], bool]:
        """Each column's fixed-width field per row, each Char column's longest value, and
        whether some value may break a limit (then the fields are not all made)."""
        longest: dict[str, int] = {}
        fields: list[np.ndarray] = []
        suspect = False
        for col, values, width in zip(self.meta.columns, arrays, self.widths, strict=True):
            if col.type == "Num":
                suspect |= not _representable(values).all()
                fields.append(np.ascontiguousarray(ibm_doubles(values)).view("V8"))
                continue
            known = coded.get(col.name) if coded else None
            uniques = known.texts(n_rows) if known is not None else None
            if uniques is not None and known is not None:
                texts: list[str] = [*uniques, ""]  # "": where the value is missing
                facts = known.text_facts           # (the checks may have found them)
                longest[col.name], ascii, nul = facts.longest, facts.ascii, facts.nul
            else:
                known = None
                filled = values.copy()
                filled[none_mask(values)] = ""
                texts = filled.tolist()
                longest[col.name], ascii, nul = text_facts(set(texts))
            if longest[col.name] > MAX_CHAR_BYTES or not ascii:
                suspect = True
                continue
            if nul:  # readstat copies a value up to its first NUL
                texts = [text.partition("\x00")[0] for text in texts]
            block = None if known is None or nul else (
                _char_rows_block(known.chars, width) if known.chars is not None
                else _full_width_block(texts, width))
            if block is None:
                block = np.array(texts, dtype=f"S{width}")  # NUL-padded ASCII
                padded = block.view(np.uint8)
                np.copyto(padded, 0x20, where=padded == 0)
            if known is not None:
                block = block[known.codes]  # code -1 takes the last: a missing value's blank
            fields.append(block.view(f"V{width}").reshape(n_rows, 1))
        return fields, longest, suspect

    def _records(self, n_rows: int, fields: list[np.ndarray]) -> bytes | memoryview:
        if not n_rows or not self.row_length:
            return b""
        records = np.empty(n_rows, dtype=[(f"f{j}", f"V{w}") for j, w in enumerate(self.widths)])
        for j, field in enumerate(fields):
            records[f"f{j}"] = field.reshape(n_rows)
        return records.view(np.uint8).data

    def _follow_blank_rows(self, arrays: list[np.ndarray]) -> None:
        """Count the all-blank rows at the end of what was encoded so far."""
        n_rows = len(arrays[0])
        blank = np.ones(n_rows, dtype=bool)
        for values in arrays:
            blank &= np.fromiter((v is None or not v.strip(" ") for v in values),
                                 dtype=bool, count=n_rows)
        filled = np.flatnonzero(~blank)
        self._blank_run = (self._blank_run + n_rows if not len(filled)
                           else n_rows - 1 - int(filled[-1]))

    def tail(self, rows: int) -> bytes:
        """Blank padding of the last 80-byte record; raises for final rows XPT would lose."""
        if self._blank_run:
            violations = [_blank_row_violation(self.meta.name, row)
                          for row in range(rows - self._blank_run + 1, rows + 1)]
            raise ConversionError(_violation_message(self.path, violations))
        return b" " * (-(rows * self.row_length) % 80)


def _char_rows_block(chars: np.ndarray, width: int) -> np.ndarray | None:
    """A Char column's distinct ASCII texts given as rows of characters
    (``ColumnValues.chars``), then the empty one, as blank-padded fields of ``width``
    bytes; None when they do not fit."""
    size = chars.shape[1]
    if not width or size > width:
        return None
    rows = np.full((len(chars) + 1, width), 0x20, dtype=np.uint8)
    rows[:-1, :size] = chars
    return rows.view(f"S{width}").reshape(len(rows))


def _full_width_block(texts: list[str], width: int) -> np.ndarray | None:
    """A Char column's distinct ASCII texts (the last the empty one, for a missing
    value) as fields of ``width`` bytes, the empty one blank, when every other one is
    that long (complete dates, a test code of fixed length): joined and read as fields
    at once, not made bytes one by one. None when they are not all that long."""
    joined = "".join(texts)
    if not width or len(joined) != width * (len(texts) - 1) or texts[-1]:
        return None
    return np.frombuffer((joined + " " * width).encode("ascii"), dtype=f"S{width}")


def _representable(values: np.ndarray) -> np.ndarray:
    """:func:`xpt_representable` of every value, vectorised."""
    size = np.abs(values)
    with np.errstate(invalid="ignore"):
        return np.isnan(values) | (values == 0) | (
            (size >= XPT_MIN_MAGNITUDE) & (size < XPT_MAX_MAGNITUDE))
