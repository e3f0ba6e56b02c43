"""CDISC Dataset-JSON 1.1, both the ``.json`` form and the ``.ndjson`` form.

The ``.json`` form is one object holding the metadata and ``rows`` (a list of arrays);
the ``.ndjson`` form has the metadata object (without ``rows``) on line 1 and one row
array per following line. Top-level keys are written in the order CDISC's own example
files use (datasetJSONCreationDateTime, datasetJSONVersion, fileOID, originator,
sourceSystem, studyOID, itemGroupOID, records, name, label, columns, rows).

Use of odmlib: its Dataset-JSON 1.1 model (``odmlib.dataset_json_1_1.model``) is used
to validate the metadata part (required keys, key types, the ``dataType`` enumeration,
positive ``length``/``keySequence``) on both read and write. It is not used for the
rows or for serialising: it stops at the first problem, knows nothing of cell types,
serialises with the standard ``json`` module (slow, NaN written as the invalid token
``NaN``) and its key order follows constructor arguments. Rows are therefore checked
here (collecting up to 20 problems) and files are written with ``orjson``, which is
fast and byte-deterministic (fixed key order, shortest round-trip float text).

Types: Char columns are written as ``"string"``; a Num column is ``"integer"`` when it
has at least one value and every value is integral (and within +-2**53), otherwise
``"double"``. On read ``string``/``date``/``datetime``/``time``/``URI`` are Char and
``integer``/``decimal``/``float``/``double``/``boolean`` are Num (booleans as 1/0;
decimals may be numbers or numeric strings). A ``targetDataType`` (``integer`` or
``decimal``) makes the column Num. Unknown top-level keys are ignored on read.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from fhircdisc.converters.atomic import write_bytes_atomic
from fhircdisc.converters.datasets import (
    build_frame,
    check_frame,
    column_arrays,
    normalize_char,
)
from fhircdisc.errors import ConversionError, InputError
from fhircdisc.schemas.columns import ColumnMeta, DatasetMeta

DATASET_JSON_VERSION = "1.1.0"
REQUIRED_KEYS = ("datasetJSONCreationDateTime", "datasetJSONVersion", "itemGroupOID",
                 "records", "name", "label", "columns")
MAX_PROBLEMS = 20
_MAX_INT = 2**53

_KNOWN_KEYS = ("datasetJSONCreationDateTime", "datasetJSONVersion", "fileOID",
               "dbLastModifiedDateTime", "originator", "sourceSystem", "studyOID",
               "metaDataVersionOID", "metaDataRef", "itemGroupOID", "records", "name",
               "label", "columns")
_CHAR_TYPES = frozenset({"string", "date", "datetime", "time", "URI"})
_NUM_TYPES = frozenset({"integer", "decimal", "float", "double", "boolean"})
_DATETIME = re.compile(
    r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?"
    r"(([+-]([01]\d|2[0-3]):[0-5]\d)|Z)?\Z")
_NUMERIC_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z")


# --------------------------------------------------------------------------- writing


def _odmlib_check(header: dict[str, Any]) -> str | None:
    """Validate the metadata object with odmlib's Dataset-JSON 1.1 model; the problem or None."""
    from odmlib.dataset_json_1_1.model import DatasetJSON

    known = {k: v for k, v in header.items() if k in _KNOWN_KEYS}
    try:
        DatasetJSON.from_dict(known)
    except Exception as exc:  # odmlib raises its own exception types (and TypeError)
        return str(exc).splitlines()[0]
    return None


def num_kind(values: np.ndarray) -> str:
    """``"none"`` (no value), ``"integer"`` (all integral within +-2**53) or ``"double"``."""
    present = values[~np.isnan(values)]
    if not len(present):
        return "none"
    with np.errstate(invalid="ignore"):
        integral = (np.floor(present) == present) & (np.abs(present) <= _MAX_INT)
    return "integer" if bool(integral.all()) else "double"


def num_data_type(kind: str) -> str:
    """The ``dataType`` of a Num column of this :func:`num_kind`."""
    return "integer" if kind == "integer" else "double"


def _check_arguments(path: Path, creation_datetime: object,
                     source_system: dict[str, str] | None) -> None:
    if not isinstance(creation_datetime, str) or not _DATETIME.match(creation_datetime):
        raise ConversionError(f"{path}: creation_datetime {creation_datetime!r} is not an ISO "
                              "8601 date-time such as 2025-01-31T12:00:00")
    if source_system is not None and not (
            set(source_system) == {"name", "version"}
            and all(isinstance(v, str) for v in source_system.values())):
        raise ConversionError(f"{path}: source_system must have exactly the text keys "
                              "'name' and 'version'")


def _header(path: Path, meta: DatasetMeta, records: int, data_types: list[str], *,
            creation_datetime: str, study_oid: str | None, originator: str,
            source_system: dict[str, str] | None) -> dict[str, Any]:
    """The metadata object, checked with odmlib (ConversionError naming ``path``)."""
    columns: list[dict[str, Any]] = []
    for col, data_type in zip(meta.columns, data_types, strict=True):
        entry: dict[str, Any] = {"itemOID": f"IT.{meta.name}.{col.name}", "name": col.name,
                                 "label": col.label, "dataType": data_type}
        if col.type == "Char" and col.length:
            entry["length"] = col.length
        columns.append(entry)
    header: dict[str, Any] = {
        "datasetJSONCreationDateTime": creation_datetime,
        "datasetJSONVersion": DATASET_JSON_VERSION,
        "fileOID": f"{study_oid or originator}/{meta.name}/{creation_datetime}",
        "originator": originator,
    }
    if source_system is not None:
        header["sourceSystem"] = {"name": source_system["name"],
                                  "version": source_system["version"]}
    if study_oid is not None:
        header["studyOID"] = study_oid
    header["itemGroupOID"] = f"IG.{meta.name}"
    header["records"] = records
    header["name"] = meta.name
    header["label"] = meta.label
    header["columns"] = columns
    problem = _odmlib_check(header)
    if problem:
        raise ConversionError(f"{path}: metadata is not valid Dataset-JSON 1.1: {problem}")
    return header


def _rows(path: Path, meta: DatasetMeta, arrays: list[np.ndarray], data_types: list[str],
          n_rows: int, first_row: int = 1, *, marked: bool = False) -> list[tuple[Any, ...]]:
    """The JSON rows of ``arrays`` (``column_arrays``); infinities raise a ConversionError.

    ``data_types`` is the ``dataType`` of each column: integer columns are written as
    JSON integers, missing values as null. Rows are tuples (orjson writes them as arrays).
    ``marked``: each row (of at least one column) ends with an extra empty string, see
    :func:`_ndjson_lines`.
    """
    problems: list[str] = []
    columns: list[list[Any]] = []
    for col, values, data_type in zip(meta.columns, arrays, data_types, strict=True):
        if col.type == "Char":
            columns.append(values.tolist())
            continue
        missing = np.isnan(values)
        infinite = np.isinf(values)
        for row in np.flatnonzero(infinite).tolist():
            problems.append(f"{meta.name}.{col.name} row {row + first_row}: value "
                            f"{float(values[row])!r} cannot be written in JSON")
        if data_type == "integer":
            cells = np.where(missing, 0, values).astype(np.int64).astype(object)
        else:
            cells = values.astype(object)
        cells[missing | infinite] = None
        columns.append(cells.tolist())
    if problems:
        listed = problems[:MAX_PROBLEMS]
        if len(problems) > MAX_PROBLEMS:
            listed.append(f"... and {len(problems) - MAX_PROBLEMS} more")
        raise ConversionError(f"{path}: cannot write Dataset-JSON:\n  " + "\n  ".join(listed))
    if marked and columns:
        columns.append([""] * n_rows)
    return list(zip(*columns, strict=True)) if columns else [()] * n_rows


_ROW_END = b',""]'  # a marked row's end: no string can hold a raw '""' (quotes are escaped)


def _ndjson_lines(marked_rows: list[tuple[Any, ...]]) -> bytes:
    """One line per row, serialised in a single orjson call (``_rows(..., marked=True)``).

    (A call per row is slower and orjson gives each result a 4 KiB buffer.)

    In the array of arrays orjson writes, ``,""],[`` occurs exactly between two rows: a
    quote inside a string is always escaped, so a raw ``,""`` is an empty string value,
    and one followed by ``]`` is the final (marker) value of a row.
    """
    if not marked_rows:
        return b""
    if not marked_rows[0]:  # no columns: no marker
        return b"[]\n" * len(marked_rows)
    text = orjson.dumps(marked_rows)[1:-1].replace(_ROW_END + b",[", b"]\n[")
    return text[:-len(_ROW_END)] + b"]\n"


def write_dataset_json(df: pd.DataFrame, path: Path | str, meta: DatasetMeta, *,
                       ndjson: bool = False, creation_datetime: str,
                       study_oid: str | None = None, originator: str = "fhircdisc",
                       source_system: dict[str, str] | None = None) -> None:
    """Write ``df`` as Dataset-JSON 1.1 (``ndjson=True``: the NDJSON form).

    Output bytes depend only on the arguments: ``creation_datetime`` (ISO 8601, e.g.
    ``2025-01-31T12:00:00``) is written as given. Missing values are written as null.
    """
    path = Path(path)
    check_frame(df, meta)
    _check_arguments(path, creation_datetime, source_system)
    arrays = column_arrays(df, meta)
    data_types = ["string" if col.type == "Char" else num_data_type(num_kind(values))
                  for col, values in zip(meta.columns, arrays, strict=True)]
    rows = _rows(path, meta, arrays, data_types, len(df), marked=ndjson)
    header = _header(path, meta, len(df), data_types, creation_datetime=creation_datetime,
                     study_oid=study_oid, originator=originator, source_system=source_system)
    if ndjson:
        data = orjson.dumps(header, option=orjson.OPT_APPEND_NEWLINE) + _ndjson_lines(rows)
    else:
        data = orjson.dumps({**header, "rows": rows})
    write_bytes_atomic(path, data)


def json_rows(path: Path, meta: DatasetMeta, arrays: list[np.ndarray], data_types: list[str],
              n_rows: int, first_row: int = 1, *, ndjson: bool) -> bytes:
    """The rows of ``arrays`` (``column_arrays``) as Dataset-JSON writes them, with the
    ``dataType`` of each column: NDJSON lines, or the rows of the ``rows`` array without
    its brackets, none before or after them (``first_row``: the number of the first row
    in messages)."""
    rows = _rows(path, meta, arrays, data_types, n_rows, first_row, marked=ndjson)
    if ndjson:
        return _ndjson_lines(rows)
    return orjson.dumps(rows)[1:-1] if rows else b""


def column_data_types(meta: DatasetMeta, kinds: Mapping[str, str]) -> list[str]:
    """The ``dataType`` of each column of ``meta``, its Num columns of these
    :func:`num_kind` s (a column absent from ``kinds`` holds no value)."""
    return ["string" if col.type == "Char" else num_data_type(kinds.get(col.name, "none"))
            for col in meta.columns]


class JsonPieceEncoder:
    """The bytes of one Dataset-JSON file whose rows arrive in pieces (see ``dataset_stream``).

    ``kinds`` is the :func:`num_kind` of each Num column over the whole dataset and
    ``records`` its number of rows: both go into the metadata, written first.
    """

    def __init__(self, path: Path, meta: DatasetMeta, kinds: dict[str, str], records: int, *,
                 ndjson: bool, creation_datetime: str, study_oid: str | None = None,
                 originator: str = "fhircdisc",
                 source_system: dict[str, str] | None = None) -> None:
        _check_arguments(path, creation_datetime, source_system)
        self.path = path
        self.meta = meta
        self.ndjson = ndjson
        self.data_types = column_data_types(meta, kinds)
        self.header = _header(path, meta, records, self.data_types,
                              creation_datetime=creation_datetime, study_oid=study_oid,
                              originator=originator, source_system=source_system)
        self._rows_written = False

    def head(self) -> bytes:
        """The metadata: its own line (NDJSON), or the object up to the ``[`` of ``rows``."""
        if self.ndjson:
            return orjson.dumps(self.header, option=orjson.OPT_APPEND_NEWLINE)
        return orjson.dumps({**self.header, "rows": []})[:-2]  # without the closing "]}"

    def encode(self, arrays: list[np.ndarray], n_rows: int, first_row: int) -> bytes:
        """The rows of one piece (``column_arrays``), numbered from ``first_row`` in messages."""
        return self.joined(json_rows(self.path, self.meta, arrays, self.data_types, n_rows,
                                     first_row, ndjson=self.ndjson))

    def joined(self, body: bytes) -> bytes:
        """The bytes that add the rows ``body`` (:func:`json_rows` with this file's data
        types) to those before them."""
        if self.ndjson or not body:
            return body
        if self._rows_written:
            return b"," + body
        self._rows_written = True
        return body

    def tail(self) -> bytes:
        """What closes the file."""
        return b"" if self.ndjson else b"]}"


# --------------------------------------------------------------------------- reading


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _strict_integers(doc: dict[str, Any]) -> str | None:
    """odmlib accepts "3" where the schema wants an integer; the schema does not."""
    if not _is_int(doc["records"]):
        return f"records must be an integer, got {_describe(doc['records'])}"
    for col in doc["columns"]:
        for key in ("length", "keySequence"):
            if key in col and not _is_int(col[key]):
                return f"column {col.get('name')}: {key} must be an integer, got " \
                       f"{_describe(col[key])}"
    return None


def _describe(value: object) -> str:
    """A JSON value for a message: its JSON type and a short rendering."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string {shown!r}"
    if isinstance(value, list):
        return "an array"
    return "an object"


class _Problems:
    """Collects problems of one file; raises once ``MAX_PROBLEMS`` are gathered or at the end."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[tuple[str | None, str]] = []

    def add(self, location: str | None, message: str) -> None:
        self.items.append((location, message))
        if len(self.items) >= MAX_PROBLEMS:
            self.raise_if_any(more=True)

    def raise_if_any(self, more: bool = False) -> None:
        if not self.items:
            return
        if len(self.items) == 1 and not more:
            location, message = self.items[0]
            raise InputError(message, source=self.source, location=location)
        lines = [f"{loc}: {msg}" if loc else msg for loc, msg in self.items]
        head = (f"first {len(lines)} problems (stopped looking)" if more
                else f"{len(lines)} problems")
        raise InputError(head + ":\n  " + "\n  ".join(lines), source=self.source)


def _parse_json(data: bytes, source: str) -> Any:
    """Parse JSON; on error an InputError with orjson's line and column."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        reason = str(exc).split(": line ")[0]
        raise InputError(f"malformed JSON: {reason}", source=source,
                         location=f"line {exc.lineno}, column {exc.colno}") from exc


def _column_kind(col: dict[str, Any]) -> str:
    """How cells of a column are checked: string, integer, number, decimal or boolean."""
    target = col.get("targetDataType")
    data_type = col.get("dataType")
    if target == "integer" and data_type != "string":
        return "integer"
    if target in ("integer", "decimal"):
        return "decimal"  # numbers carried as text
    if data_type in _CHAR_TYPES:
        return "string"
    if data_type == "integer":
        return "integer"
    if data_type == "decimal":
        return "decimal"
    if data_type == "boolean":
        return "boolean"
    return "number"


def _convert_cell(kind: str, value: object) -> tuple[object, str | None]:
    """The in-memory value of one cell, or an error text (expected ..., got ...)."""
    if value is None:
        return (None if kind == "string" else math.nan), None
    if kind == "string":
        if isinstance(value, str):
            return normalize_char(value), None
        return None, f"expected a string, got {_describe(value)}"
    if kind == "boolean":
        if isinstance(value, bool):
            return float(value), None
        return None, f"expected a boolean, got {_describe(value)}"
    what = "an integer" if kind == "integer" else "a number"
    if isinstance(value, bool):  # JSON true/false is no number (bool is an int in Python)
        return None, f"expected {what}, got {_describe(value)}"
    if kind == "integer":
        if isinstance(value, int):
            return float(value), None
    elif isinstance(value, (int, float)):
        return float(value), None
    elif kind == "decimal" and isinstance(value, str):
        text = value.strip()
        if text == "":
            return math.nan, None
        if _NUMERIC_TEXT.match(text):
            return float(text), None
        return None, f"expected a decimal number, got {_describe(value)}"
    return None, f"expected {what}, got {_describe(value)}"


def _load(path: Path, ndjson: bool) -> tuple[Any, list[Any], list[int] | None]:
    """(metadata object, raw rows, line number of each row for NDJSON or None for .json)."""
    source = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise InputError("file not found", source=source) from exc
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", source=source) from exc
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data.strip():
        raise InputError("empty file", source=source)
    if not ndjson:
        doc = _parse_json(data, source)
        doc_rows = doc.get("rows", []) if isinstance(doc, dict) else []
        return doc, doc_rows, None
    lines = data.split(b"\n")
    header = _parse_json(lines[0], source)
    rows: list[Any] = []
    line_numbers: list[int] = []
    problems = _Problems(source)
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue  # blank lines (e.g. the final newline) carry no row
        try:
            rows.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            reason = str(exc).split(": line ")[0]
            problems.add(f"line {number}, column {exc.colno}", f"malformed JSON: {reason}")
            rows.append(None)
        line_numbers.append(number)
    problems.raise_if_any()
    return header, rows, line_numbers


def read_dataset_json(path: Path | str) -> tuple[pd.DataFrame, DatasetMeta]:
    """Read a Dataset-JSON 1.1 file (``.ndjson`` extension: the NDJSON form).

    Checks the metadata (required keys, version 1.1, column definitions), that
    ``records`` matches the rows, that every row is an array as long as ``columns`` and
    that every cell fits its column's ``dataType``. Problems raise one InputError naming
    the file and listing up to 20 places, e.g. ``row 17 (line 18), column LBSTRESN:
    expected a number, got string 'abc'``.
    """
    path = Path(path)
    source = str(path)
    ndjson = path.suffix.lower() == ".ndjson"
    doc, raw_rows, line_numbers = _load(path, ndjson)

    if not isinstance(doc, dict):
        where = "line 1" if ndjson else None
        raise InputError("the metadata is not a JSON object", source=source, location=where)
    meta_where = "line 1" if ndjson else "metadata"
    if "clinicalData" in doc or "referenceData" in doc:
        raise InputError("this is Dataset-JSON 1.0, only version 1.1 is supported",
                         source=source, location=meta_where)
    missing = [k for k in REQUIRED_KEYS if k not in doc]
    if missing:
        raise InputError(f"required key(s) missing: {', '.join(missing)}", source=source,
                         location=meta_where)
    version = doc["datasetJSONVersion"]
    if not isinstance(version, str) or not re.match(r"1\.1(\.\d+)?\Z", version):
        raise InputError(f"datasetJSONVersion {version!r} is not supported (need 1.1.x)",
                         source=source, location=meta_where)
    if ndjson and "rows" in doc:
        raise InputError("the metadata line must not hold rows", source=source,
                         location="line 1")
    if not ndjson and "rows" in doc and not isinstance(doc["rows"], list):
        raise InputError("rows is not an array", source=source, location="rows")
    problem = _odmlib_check(doc)
    if problem:
        raise InputError(f"invalid metadata: {problem}", source=source, location=meta_where)

    strict = _strict_integers(doc)
    if strict:
        raise InputError(f"invalid metadata: {strict}", source=source, location=meta_where)

    col_defs: list[dict[str, Any]] = doc["columns"]
    names = [c["name"] for c in col_defs]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise InputError(f"column(s) defined twice: {', '.join(dups)}", source=source,
                         location=meta_where)
    if doc["records"] != len(raw_rows):
        raise InputError(f"records says {doc['records']} but the file has {len(raw_rows)} "
                         "rows", source=source, location=meta_where)

    kinds = [_column_kind(c) for c in col_defs]
    n_cols = len(col_defs)
    values: list[list[object]] = [[] for _ in range(n_cols)]
    problems = _Problems(source)
    for index, row in enumerate(raw_rows):
        where = f"row {index + 1}"
        if line_numbers is not None:
            where += f" (line {line_numbers[index]})"
        if not isinstance(row, list):
            problems.add(where, f"expected an array of {n_cols} values, got {_describe(row)}")
            continue
        if len(row) != n_cols:
            problems.add(where, f"has {len(row)} values, the dataset has {n_cols} columns")
            continue
        for j, (kind, cell) in enumerate(zip(kinds, row, strict=True)):
            value, error = _convert_cell(kind, cell)
            if error:
                problems.add(f"{where}, column {names[j]}", error)
            values[j].append(value)
    problems.raise_if_any()

    columns = []
    for col, kind in zip(col_defs, kinds, strict=True):
        is_char = kind == "string"
        length = col.get("length") if is_char else None
        columns.append(ColumnMeta(name=col["name"], label=col["label"],
                                  type="Char" if is_char else "Num", length=length))
    meta = DatasetMeta(name=doc["name"], label=doc["label"], columns=tuple(columns))
    return build_frame(meta, values), meta
