"""Write one SDTM dataset file piece by piece, with memory bounded by the largest piece.

A large dataset (millions of LB rows) can be written without ever holding it whole:
the caller hands an ordered sequence of DataFrame pieces (same columns, final row
order) to a writer opened with :func:`open_dataset_writer`. The file is byte for byte
the one :func:`~fhircdisc.converters.datasets.write_dataset` writes for the
concatenated pieces, in every format (xpt, json, ndjson, csv).

Some bytes near the start of a file depend on the whole dataset: the XPT width of each
Char variable (its longest value), the Dataset-JSON ``records`` count and each Num
column's ``dataType`` (``integer`` only if every value is integral). The writer
therefore needs :class:`DatasetStats` of the whole dataset before the first piece;
compute them with :func:`stats_of` per piece (in worker processes if wanted) and
combine them with :meth:`DatasetStats.merge` or :func:`merge_stats`::

    stats = merge_stats(stats_of(piece, meta) for piece in pieces)
    with open_dataset_writer(out_dir, meta, "xpt", stats,
                             creation_datetime="2025-01-31T12:00:00") as writer:
        for piece in pieces:
            writer.write(piece)
    path = writer.path

Statistics that do not describe the data written are a ConversionError: at the piece
that breaks them (too many rows, a Num column holding other values, for XPT a Char
value longer than the given maximum) or on close (any other difference; Char lengths
are compared for XPT only, the one format that depends on them). So are the data
problems the whole-frame writers report, with rows numbered within the whole dataset.
After any error, :meth:`DatasetWriter.abort` or the end of the ``with`` block by an
exception, no file is left: the data goes into a temporary file beside the target
that is renamed only by a successful :meth:`DatasetWriter.close`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, Protocol

import numpy as np
import pandas as pd

from fhircdisc.column_values import ColumnValues
from fhircdisc.converters.atomic import atomic_path
from fhircdisc.converters.datasets import (
    FORMATS,
    char_array,
    check_frame,
    column_arrays,
    is_missing,
    num_array,
)
from fhircdisc.errors import ConversionError
from fhircdisc.schemas.columns import DatasetMeta

NumKind = Literal["none", "integer", "double"]
"""What a Num column holds: no value, only integral values (within +-2**53), or other."""

_KIND_ORDER: dict[str, int] = {"none": 0, "integer": 1, "double": 2}


@dataclass(frozen=True)
class DatasetStats:
    """What a writer must know of a whole dataset before its first row.

    ``rows``: number of rows. ``char_lengths``: per Char variable, the length in
    characters of its longest value (missing values do not count; an empty string
    counts as 0; trailing blanks count, as they are written). ``num_kinds``: per Num
    variable, its :data:`NumKind`. A variable absent from a mapping counts as having
    no value (length 0, kind ``"none"``), so ``DatasetStats()`` describes no rows.
    """

    rows: int = 0
    char_lengths: Mapping[str, int] = field(default_factory=dict)
    num_kinds: Mapping[str, NumKind] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.rows, int) or self.rows < 0:
            raise ValueError(f"rows must be a non-negative integer, got {self.rows!r}")
        for name, length in self.char_lengths.items():
            if not isinstance(length, int) or length < 0:
                raise ValueError(f"length of {name} must be a non-negative integer, "
                                 f"got {length!r}")
        for name, kind in self.num_kinds.items():
            if kind not in _KIND_ORDER:
                raise ValueError(f"kind of {name} must be one of none, integer, double, "
                                 f"got {kind!r}")

    def merge(self, other: DatasetStats) -> DatasetStats:
        """The statistics of this dataset's rows followed by ``other``'s."""
        lengths = dict(self.char_lengths)
        for name, length in other.char_lengths.items():
            lengths[name] = max(lengths.get(name, 0), length)
        kinds = dict(self.num_kinds)
        for name, kind in other.num_kinds.items():
            kinds[name] = _wider(kinds.get(name, "none"), kind)
        return DatasetStats(self.rows + other.rows, lengths, kinds)

    def char_length(self, name: str) -> int:
        """The longest value of Char variable ``name`` (0: none)."""
        return self.char_lengths.get(name, 0)

    def num_kind(self, name: str) -> NumKind:
        """The :data:`NumKind` of Num variable ``name``."""
        return self.num_kinds.get(name, "none")


def _wider(a: NumKind, b: NumKind) -> NumKind:
    return a if _KIND_ORDER[a] >= _KIND_ORDER[b] else b


def merge_stats(stats: Iterable[DatasetStats]) -> DatasetStats:
    """The statistics of the pieces described by ``stats`` taken together (any order)."""
    total = DatasetStats()
    for item in stats:
        total = total.merge(item)
    return total


def stats_of(df: pd.DataFrame, meta: DatasetMeta,
             coded: Mapping[str, ColumnValues] | None = None) -> DatasetStats:
    """The :class:`DatasetStats` of ``df`` (one piece or a whole dataset).

    Values of the wrong type (a number in a Char column, text in a Num column) are left
    out here; the writer reports them with their row number in the whole dataset.
    ``coded``: columns of ``df`` already made into codes, whose distinct values give
    the longest text. Raises ConversionError if the columns of ``df`` are not those of
    ``meta``.
    """
    check_frame(df, meta)
    arrays: list[np.ndarray] = []
    lengths: dict[str, int] = {}
    for col in meta.columns:
        known = coded.get(col.name) if coded and col.type == "Char" else None
        texts = known.texts(len(df)) if known is not None else None
        if texts is not None and known is not None:
            lengths[col.name] = known.text_facts.longest
            arrays.append(_NOTHING)
            continue
        try:
            arrays.append(char_array(df, meta, col) if col.type == "Char"
                          else num_array(df, meta, col))
        except ConversionError:
            arrays.append(_lenient_array(df[col.name].tolist(), col.type == "Char"))
    return _stats_of_arrays(meta, arrays, len(df), lengths)


_NOTHING = np.empty(0, dtype=object)


def _lenient_array(values: list[object], char: bool) -> np.ndarray:
    """A column's valid values (``char_array``/``num_array`` form), other values missing."""
    if char:
        out = np.empty(len(values), dtype=object)
        out[:] = [v if isinstance(v, str) else None for v in values]
        return out
    numbers = [float(v) if isinstance(v, (int, float, np.integer, np.floating))
               and not isinstance(v, bool) and not is_missing(v) else np.nan for v in values]
    return np.array(numbers, dtype=np.float64)


def _stats_of_arrays(meta: DatasetMeta, arrays: list[np.ndarray], n_rows: int,
                     known: Mapping[str, int] | None = None) -> DatasetStats:
    """The statistics of the columns ``arrays``; ``known``: Char lengths already found."""
    lengths = {col.name: known[col.name] if known and col.name in known else _longest(values)
               for col, values in zip(meta.columns, arrays, strict=True) if col.type == "Char"}
    return DatasetStats(n_rows, lengths, _num_kinds(meta, arrays))


def _longest(values: np.ndarray) -> int:
    """The length of the longest text of a ``char_array`` (each distinct text once)."""
    distinct = set(values.tolist())
    distinct.discard(None)
    return max(map(len, distinct), default=0)


def _num_kinds(meta: DatasetMeta, arrays: list[np.ndarray]) -> dict[str, NumKind]:
    from fhircdisc.converters.dataset_json import num_kind

    return {col.name: num_kind(values)  # type: ignore[misc]
            for col, values in zip(meta.columns, arrays, strict=True) if col.type == "Num"}


class _PieceEncoder(Protocol):
    """The format-specific part of a writer (see the ``*PieceEncoder`` classes)."""

    def head(self, scratch: Path) -> bytes:
        """The bytes before the first row (``scratch``: a file it may use)."""

    def check_limits(self, piece: pd.DataFrame, first_row: int) -> None:
        """Raise if values of ``piece`` break a limit of the format (called on type errors)."""

    def encode(self, piece: pd.DataFrame, arrays: list[np.ndarray], first_row: int,
               coded: Mapping[str, ColumnValues]) -> tuple[bytes | memoryview, dict[str, int]]:
        """The bytes of the rows and, if the format depends on it, each Char's longest
        value (``coded``: columns of the piece already made into codes, if any)."""

    def tail(self, rows: int) -> bytes:
        """The bytes after the last row."""


class _Xpt:
    def __init__(self, path: Path, meta: DatasetMeta, stats: DatasetStats,
                 creation_datetime: str) -> None:
        from fhircdisc.converters.xpt import XptPieceEncoder

        longest = {c.name: stats.char_length(c.name) for c in meta.columns}
        self.encoder = XptPieceEncoder(path, meta, longest, stats.rows, creation_datetime)

    def head(self, scratch: Path) -> bytes:
        return self.encoder.head(scratch)

    def check_limits(self, piece: pd.DataFrame, first_row: int) -> None:
        self.encoder.check_limits(piece, first_row)

    def encode(self, piece: pd.DataFrame, arrays: list[np.ndarray], first_row: int,
               coded: Mapping[str, ColumnValues]) -> tuple[bytes | memoryview, dict[str, int]]:
        return self.encoder.encode(piece, arrays, first_row, coded)

    def tail(self, rows: int) -> bytes:
        return self.encoder.tail(rows)


class _Json:
    def __init__(self, path: Path, meta: DatasetMeta, stats: DatasetStats,
                 creation_datetime: str, ndjson: bool) -> None:
        from fhircdisc.converters.dataset_json import JsonPieceEncoder

        kinds: dict[str, str] = {c.name: stats.num_kind(c.name) for c in meta.columns}
        self.encoder = JsonPieceEncoder(path, meta, kinds, stats.rows, ndjson=ndjson,
                                        creation_datetime=creation_datetime)

    def head(self, scratch: Path) -> bytes:
        return self.encoder.head()

    def check_limits(self, piece: pd.DataFrame, first_row: int) -> None:
        pass  # infinities are found while encoding

    def encode(self, piece: pd.DataFrame, arrays: list[np.ndarray], first_row: int,
               coded: Mapping[str, ColumnValues]) -> tuple[bytes | memoryview, dict[str, int]]:
        return self.encoder.encode(arrays, len(piece), first_row), {}

    def tail(self, rows: int) -> bytes:
        return self.encoder.tail()


class _Csv:
    def __init__(self, meta: DatasetMeta) -> None:
        from fhircdisc.converters.csv_io import CsvPieceEncoder

        self.encoder = CsvPieceEncoder(meta)

    def head(self, scratch: Path) -> bytes:
        return self.encoder.head()

    def check_limits(self, piece: pd.DataFrame, first_row: int) -> None:
        pass  # CSV holds any value

    def encode(self, piece: pd.DataFrame, arrays: list[np.ndarray], first_row: int,
               coded: Mapping[str, ColumnValues]) -> tuple[bytes | memoryview, dict[str, int]]:
        return self.encoder.encode(arrays), {}

    def tail(self, rows: int) -> bytes:
        return b""


class DatasetWriter:
    """Writes one dataset file from consecutive pieces; see :func:`open_dataset_writer`.

    Use as a context manager (closed on normal exit, aborted on an exception) or call
    :meth:`close` / :meth:`abort` yourself. Any error in :meth:`write` or :meth:`close`
    aborts the writer before it propagates.
    """

    def __init__(self, path: Path, meta: DatasetMeta, fmt: str, stats: DatasetStats, *,
                 creation_datetime: str) -> None:
        self.path = path
        self.meta = meta
        self.fmt = fmt
        self.stats = stats
        self.rows_written = 0
        self._seen = DatasetStats()
        self._state: Literal["open", "closed", "aborted"] = "open"
        encoder: _PieceEncoder
        if fmt == "xpt":
            encoder = _Xpt(path, meta, stats, creation_datetime)
        elif fmt in ("json", "ndjson"):
            encoder = _Json(path, meta, stats, creation_datetime, fmt == "ndjson")
        else:
            encoder = _Csv(meta)
        self._encoder = encoder
        self._atomic = atomic_path(path)
        tmp = self._atomic.__enter__()
        self._file: IO[bytes] | None = None
        try:
            head = encoder.head(tmp)
            self._file = open(tmp, "wb")  # noqa: SIM115 - kept open until close()/abort()
            self._file.write(head)
        except BaseException as exc:
            self._discard(exc)
            raise

    def write(self, piece: pd.DataFrame) -> None:
        """Append the rows of ``piece`` (the columns of the metadata, in any order)."""
        self._append(piece, None, {})

    def _append(self, piece: pd.DataFrame, arrays: list[np.ndarray] | None,
                coded: Mapping[str, ColumnValues]) -> None:
        """:meth:`write`; ``arrays``: the piece's ``column_arrays`` if already read;
        ``coded``: columns of the piece already made into codes."""
        self._guarded(self._write, piece, arrays, coded)

    def _guarded(self, write: Callable[..., None], *args: Any) -> None:
        """``write(*args)`` on an open writer, which any error aborts."""
        self._require_open()
        try:
            write(*args)
        except BaseException as exc:
            self._discard(exc)
            raise

    def _write(self, piece: pd.DataFrame, arrays: list[np.ndarray] | None,
               coded: Mapping[str, ColumnValues]) -> None:
        check_frame(piece, self.meta)
        n_rows = len(piece)
        first_row = self.rows_written + 1
        self._check_room(n_rows)
        if arrays is None:
            try:
                arrays = column_arrays(piece, self.meta, first_row)
            except ConversionError:
                self._encoder.check_limits(piece, first_row)  # reported before wrong types
                raise
        kinds = _num_kinds(self.meta, arrays)
        self._check_kinds(kinds, first_row, n_rows)
        data, longest = self._encoder.encode(piece, arrays, first_row, coded)
        self._check_lengths(longest, first_row, n_rows)
        self._put(data, DatasetStats(n_rows, longest, kinds))

    def takes(self, piece: EncodedXpt | EncodedRows | None) -> bool:
        """Whether :meth:`append_encoded` writes ``piece`` as :meth:`write` writes its
        rows: a piece of this format, and for Dataset-JSON one whose Num columns with a
        value are of this dataset's data types."""
        if isinstance(piece, EncodedXpt):
            return isinstance(self._encoder, _Xpt)
        if piece is None or piece.fmt != self.fmt:
            return False
        if self.fmt not in ("json", "ndjson"):
            return True
        from fhircdisc.converters.dataset_json import num_data_type

        return all(kind == "none"
                   or num_data_type(kind) == num_data_type(self.stats.num_kind(name))
                   for name, kind in piece.stats.num_kinds.items())

    def append_encoded(self, piece: EncodedXpt | EncodedRows) -> None:
        """Append a piece encoded before the rest of the dataset was known
        (:func:`encode_apart`), XPT records widened to the dataset's widths: the bytes
        :meth:`write` writes for the piece's rows. ConversionError for a piece the
        writer does not :meth:`take <takes>`."""
        self._guarded(self._write_encoded, piece)

    def _write_encoded(self, piece: EncodedXpt | EncodedRows) -> None:
        if not self.takes(piece):
            what = "XPT records" if isinstance(piece, EncodedXpt) \
                else f"rows encoded as {piece.fmt}" if piece.fmt != self.fmt \
                else f"{piece.fmt} rows of other data types"
            raise ConversionError(f"{self.path}: {what} cannot be written as {self.fmt}")
        n_rows, first_row = piece.stats.rows, self.rows_written + 1
        self._check_room(n_rows)
        self._check_kinds(dict(piece.stats.num_kinds), first_row, n_rows)
        if isinstance(piece, EncodedXpt):
            assert isinstance(self._encoder, _Xpt)
            self._check_lengths(piece.stats.char_lengths, first_row, n_rows)
            data = self._encoder.encoder.widened(piece.records, piece.widths)
        else:
            data = piece.data
            if isinstance(self._encoder, _Json):
                data = self._encoder.encoder.joined(data)
        self._put(data, piece.stats)

    def _check_room(self, n_rows: int) -> None:
        """Raise if ``n_rows`` more rows would pass the rows the statistics give."""
        if self.rows_written + n_rows > self.stats.rows:
            raise ConversionError(f"{self.path}: more rows written ({self.rows_written + n_rows})"
                                  f" than the dataset statistics give ({self.stats.rows})")

    def _put(self, data: bytes | memoryview, seen: DatasetStats) -> None:
        """Write the encoded rows of a piece whose statistics are ``seen``."""
        assert self._file is not None
        self._file.write(data)
        self.rows_written += seen.rows
        self._seen = self._seen.merge(seen)

    def _check_lengths(self, longest: Mapping[str, int], first_row: int, n_rows: int) -> None:
        """Raise if a Char column of a piece holds a value longer than the statistics give."""
        for name, length in longest.items():
            if length > self.stats.char_length(name):
                raise ConversionError(
                    f"{self.path}: {self.meta.name}.{name} rows {first_row}-"
                    f"{first_row + n_rows - 1} hold a value of {length} characters, the "
                    f"dataset statistics give at most {self.stats.char_length(name)}")

    def _check_kinds(self, kinds: dict[str, NumKind], first_row: int, n_rows: int) -> None:
        """Raise if the Num columns of a piece break the dataset statistics."""
        for name, kind in kinds.items():
            given = self.stats.num_kind(name)
            if _wider(given, kind) != given:
                raise ConversionError(
                    f"{self.path}: {self.meta.name}.{name} rows {first_row}-"
                    f"{first_row + n_rows - 1} are {kind}, the dataset statistics say {given}")

    def close(self) -> Path:
        """Finish the file, move it into place and return its path.

        Raises ConversionError (and leaves no file) if the rows written do not match the
        dataset statistics or break a limit only visible at the end (XPT: final blank rows).
        """
        if self._state == "closed":
            return self.path
        self._require_open()
        try:
            self._check_complete()
            assert self._file is not None
            self._file.write(self._encoder.tail(self.rows_written))
            self._file.close()
            self._atomic.__exit__(None, None, None)
        except BaseException as exc:
            self._discard(exc)
            raise
        self._state = "closed"
        return self.path

    def _check_complete(self) -> None:
        given, seen = self.stats, self._seen
        problems = []
        if seen.rows != given.rows:
            problems.append(f"{seen.rows} rows written, {given.rows} expected")
        for col in self.meta.columns:
            if col.type == "Char" and col.name in seen.char_lengths \
                    and seen.char_length(col.name) != given.char_length(col.name):
                problems.append(f"longest {col.name} is {seen.char_length(col.name)} "
                                f"characters, {given.char_length(col.name)} expected")
            if col.type == "Num" and seen.num_kind(col.name) != given.num_kind(col.name):
                problems.append(f"{col.name} values are {seen.num_kind(col.name)}, "
                                f"{given.num_kind(col.name)} expected")
        if problems:
            raise ConversionError(f"{self.path}: the data written does not match the dataset "
                                  "statistics given: " + "; ".join(problems))

    def abort(self) -> None:
        """Stop writing and remove the temporary file; no target file is written."""
        if self._state == "open":
            self._discard(None)

    def _require_open(self) -> None:
        if self._state != "open":
            raise ConversionError(f"{self.path}: the dataset writer is {self._state}")

    def _discard(self, exc: BaseException | None) -> None:
        """Close and delete the temporary file (``exc``: the error that stopped writing)."""
        self._state = "aborted"
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
        reason = exc if exc is not None else ConversionError(f"{self.path}: aborted")
        self._atomic.__exit__(type(reason), reason, reason.__traceback__)

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_piece(writers: Sequence[DatasetWriter], piece: pd.DataFrame,
                coded: Mapping[str, ColumnValues] | None = None) -> None:
    """:meth:`DatasetWriter.write` of ``piece`` to each of ``writers`` in turn, its columns
    read once when the writers are of the same dataset and have written as many rows.

    ``coded``: columns of ``piece`` already made into codes (``ColumnValues`` of exactly
    these rows); an encoder that can use them works per distinct value."""
    arrays = _shared_arrays(writers, piece)
    for writer in writers:
        writer._append(piece, arrays, coded or {})


def _shared_arrays(writers: Sequence[DatasetWriter], piece: pd.DataFrame
                   ) -> list[np.ndarray] | None:
    """The ``column_arrays`` of ``piece`` that every one of ``writers`` would read; None
    when they differ or cannot be read (each writer then reports the problem itself)."""
    if len(writers) < 2:
        return None
    first = writers[0]
    if any(writer.meta != first.meta or writer.rows_written != first.rows_written
           for writer in writers):
        return None
    try:
        check_frame(piece, first.meta)
        return column_arrays(piece, first.meta, first.rows_written + 1)
    except ConversionError:
        return None


@dataclass
class EncodedXpt:
    """A piece's XPT records encoded before its dataset's widths are known, at the
    piece's own (:func:`encode_xpt_apart`), and the piece's statistics."""

    records: bytes
    widths: list[int]
    stats: DatasetStats


#: a valid header date-time for pieces encoded apart (their records hold no header)
_APART_STAMP = "2000-01-01T00:00:00"


def encode_xpt_apart(piece: pd.DataFrame, meta: DatasetMeta, stats: DatasetStats,
                     coded: Mapping[str, ColumnValues] | None = None) -> EncodedXpt | None:
    """The XPT records of ``piece`` at its own widths (from ``stats``, the piece's
    :func:`stats_of`), for a writer to widen
    (:meth:`DatasetWriter.append_encoded`): a piece finished in a worker process is
    encoded there, and what it carries to the writer is bytes, not a frame. None when
    the piece needs the writer's own pass (a value breaking a limit or of the wrong
    type, which the writer reports at its row; a dataset that may end in blank rows)."""
    from fhircdisc.converters.xpt import XptPieceEncoder

    rows = len(piece)
    try:
        check_frame(piece, meta)
        # a Char column made into codes of texts is encoded from its codes alone
        arrays = [num_array(piece, meta, col) if col.type == "Num"
                  else _NOTHING if coded and col.name in coded
                  and coded[col.name].texts(rows) is not None
                  else char_array(piece, meta, col) for col in meta.columns]
        kinds = _num_kinds(meta, arrays)
        encoder = XptPieceEncoder(Path(f"{meta.name.lower()}.xpt"), meta,
                                  dict(stats.char_lengths), rows, _APART_STAMP)
        encoded = encoder.encode_apart(piece, arrays, coded)
    except ConversionError:
        return None
    if encoded is None:
        return None
    records, longest = encoded
    return EncodedXpt(bytes(records), list(encoder.widths), DatasetStats(rows, longest, kinds))


@dataclass
class EncodedRows:
    """A piece's rows encoded before the rest of its dataset is known
    (:func:`encode_rows_apart`), in a format whose bytes of a row depend on the row
    alone (CSV) or also on the ``dataType`` of the Num columns (Dataset-JSON, NDJSON:
    the piece's own, from ``stats.num_kinds``); and the piece's statistics."""

    fmt: str
    data: bytes
    stats: DatasetStats


def encode_rows_apart(piece: pd.DataFrame, meta: DatasetMeta, fmt: str,
                      arrays: list[np.ndarray] | None = None) -> EncodedRows | None:
    """The rows of ``piece`` as a ``fmt`` writer (csv, json, ndjson) writes them, the
    Num columns of Dataset-JSON with the piece's own data types (``arrays``: the piece's
    ``column_arrays`` if already read). None when the piece needs the writer's own pass:
    a value of the wrong type or that the format cannot hold, which the writer reports
    at its row."""
    from fhircdisc.converters.csv_io import CsvPieceEncoder
    from fhircdisc.converters.dataset_json import column_data_types, json_rows

    rows = len(piece)
    try:
        if arrays is None:
            check_frame(piece, meta)
            arrays = column_arrays(piece, meta)
        kinds = _num_kinds(meta, arrays)
        if fmt == "csv":
            data = CsvPieceEncoder(meta).encode(arrays)
        else:
            data = json_rows(Path(f"{meta.name.lower()}.{fmt}"), meta, arrays,
                             column_data_types(meta, kinds), rows, ndjson=fmt == "ndjson")
    except ConversionError:
        return None
    return EncodedRows(fmt, data, DatasetStats(rows, {}, kinds))


def encode_apart(piece: pd.DataFrame, meta: DatasetMeta, stats: DatasetStats,
                 coded: Mapping[str, ColumnValues], formats: Iterable[str]
                 ) -> dict[str, EncodedXpt | EncodedRows]:
    """The rows of ``piece`` encoded for each of ``formats`` that can take them before the
    rest of the dataset is known (:func:`encode_xpt_apart`, :func:`encode_rows_apart`;
    ``stats``: the piece's :func:`stats_of`, ``coded``: its columns made into codes): a
    piece finished in a worker process is encoded there, and what it carries to the
    writers is bytes. A format missing from the result needs the piece's frame."""
    found: dict[str, EncodedXpt | EncodedRows] = {}
    arrays: list[np.ndarray] | None = None
    readable = True
    for fmt in formats:
        encoded: EncodedXpt | EncodedRows | None = None
        if fmt == "xpt":
            encoded = encode_xpt_apart(piece, meta, stats, coded)
        elif readable:
            if arrays is None:
                try:
                    check_frame(piece, meta)
                    arrays = column_arrays(piece, meta)
                except ConversionError:      # a value of the wrong type: each writer's
                    readable = False         # own pass reports it at its row
            if arrays is not None:
                encoded = encode_rows_apart(piece, meta, fmt, arrays)
        if encoded is not None:
            found[fmt] = encoded
    return found


def open_dataset_writer(out_dir: Path | str, meta: DatasetMeta, fmt: str,
                        stats: DatasetStats, *, creation_datetime: str) -> DatasetWriter:
    """A writer of ``<out_dir>/<domain lower-case>.<fmt>`` for a dataset described by ``stats``.

    Writing every piece with :meth:`DatasetWriter.write` and then :meth:`DatasetWriter.close`
    gives the file :func:`~fhircdisc.converters.datasets.write_dataset` writes for the
    concatenated pieces with the same ``creation_datetime``. Problems visible before any
    row (unknown format, XPT names and labels, Dataset-JSON metadata, a bad date-time)
    raise ConversionError here, without creating a file.
    """
    if fmt not in FORMATS:
        raise ConversionError(f"unknown dataset format {fmt!r}; choose one of {', '.join(FORMATS)}")
    path = Path(out_dir) / f"{meta.name.lower()}.{fmt}"
    return DatasetWriter(path, meta, fmt, stats, creation_datetime=creation_datetime)
