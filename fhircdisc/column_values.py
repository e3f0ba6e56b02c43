"""A column as codes into its distinct values.

Columns of SDTM datasets repeat their values: a test code, a unit, a category take a
handful of values over thousands of rows. Made once, the codes let a conformance check
ask about each distinct value once, let duplicate keys be found by comparing integers,
and let a finished dataset piece travel between processes as small integer arrays
instead of one pickled object per cell.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np
import pandas as pd


def text_or_none(values: Iterable[Any]) -> bool:
    """Whether every value is a ``str`` or None (then a column needs no conversion)."""
    return set(map(type, values)) <= _TEXT_OR_NONE


_TEXT_OR_NONE = {str, type(None)}


class TextFacts(NamedTuple):
    """What the writers and checks ask of a column's distinct texts."""

    longest: int
    ascii: bool
    nul: bool


def text_facts(texts: Collection[str]) -> TextFacts:
    """Of ``texts``: the length of the longest, and whether they are all ASCII and
    whether one holds a NUL."""
    joined = "".join(texts)
    return TextFacts(max(map(len, texts), default=0), joined.isascii(), "\x00" in joined)


@dataclass(frozen=True)
class ColumnValues:
    """A column as codes into its distinct values, so that a check asks about each
    distinct value once and spreads the answer over the rows.

    ``codes[row]`` is the place of the row's value in ``uniques``, -1 where it is missing
    (None, NaN, NaT, NA: what ``isna`` calls missing). Every value of ``uniques`` is some
    row's, in no promised order. Cells that cannot be hashed (lists) are each a value of
    their own.
    """

    codes: np.ndarray
    uniques: list[Any]
    #: when the distinct values are texts made from numbers (results written from their
    #: float): the number each writes, as a float64 array beside ``uniques``
    numbers: np.ndarray | None = field(default=None, compare=False, repr=False)
    #: when the distinct values are ASCII texts of one length (dates) and their bytes were
    #: at hand: their characters as rows of ``uint8`` codes beside ``uniques``
    chars: np.ndarray | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, series: pd.Series) -> ColumnValues:
        try:
            codes, uniques = pd.factorize(series)
        except TypeError:  # unhashable cells: each cell its own value
            missing = np.asarray(pd.isna(series), dtype=bool)
            values = [value for value, gap in zip(series.tolist(), missing.tolist(),
                                                  strict=True) if not gap]
            return cls(np.where(missing, -1, np.cumsum(~missing) - 1), values)
        return cls(np.asarray(codes, dtype=np.intp), uniques.tolist())

    @classmethod
    def of_ranks(cls, values: list[Any], ranks: np.ndarray, order: np.ndarray,
                 facts: TextFacts | None = None, chars: np.ndarray | None = None
                 ) -> ColumnValues:
        """The column ``values`` (texts or None) takes in the row ``order``, from each
        value's rank among them (``ranks``, beside ``values``: dense from 0, equal for
        equal texts, None's above every text's), without hashing a value. ``facts``:
        the values' :attr:`text_facts` when known (every value a text then); ``chars``:
        their characters as rows (:attr:`chars`), a value a row beside ``values``."""
        firsts = np.empty(int(ranks.max(initial=-1)) + 1, dtype=np.intp)
        firsts[ranks[::-1]] = np.arange(len(ranks) - 1, -1, -1)  # each rank's first row
        uniques = [values[i] for i in firsts.tolist()]
        codes = ranks[order].astype(np.intp)
        if uniques and uniques[-1] is None:                      # missing: -1
            uniques.pop()
            codes[codes == len(uniques)] = -1
        if facts is None:
            return cls(codes, uniques)
        made = cls(codes, uniques, chars=None if chars is None else chars[firsts])
        # what the cached properties would find, found
        made.__dict__.update(all_text=True, text_facts=facts)
        return made

    @cached_property
    def text_facts(self) -> TextFacts:
        """:func:`text_facts` of distinct values that are all text (:attr:`all_text`),
        found once for the XPT check, the column statistics and the XPT encoder."""
        return text_facts(self.uniques)

    def texts(self, rows: int) -> list[str] | None:
        """The distinct values when these are codes of ``rows`` rows and every distinct
        value is text (then a missing cell is the only other kind); None otherwise."""
        if len(self.codes) != rows or not self.all_text:
            return None
        return self.uniques

    @cached_property
    def all_text(self) -> bool:
        """Whether every distinct value is text (asked of a column by the checks, the
        column facts and each writer: found once)."""
        return pd.api.types.infer_dtype(self.uniques, skipna=False) in ("string", "empty")

    def missing(self) -> np.ndarray:
        return self.codes < 0

    def present(self) -> np.ndarray:
        return self.codes >= 0

    def spread(self, verdicts: Any) -> np.ndarray:
        """Per row, the verdict on its value (``verdicts``: one per distinct value);
        False where the value is missing."""
        table = np.zeros(len(self.uniques) + 1, dtype=bool)
        table[:-1] = np.asarray(verdicts, dtype=bool).reshape(len(self.uniques))
        return table[self.codes]

    def texts_where(self, test: Callable[[list[str]], Any]) -> np.ndarray:
        """Where the value is text that passes ``test``, which is given every distinct
        text at once and answers with a verdict each."""
        if self.all_text:
            return self.spread(test(self.uniques)) if self.uniques else self.spread([])
        places = [place for place, value in enumerate(self.uniques) if isinstance(value, str)]
        verdicts = np.zeros(len(self.uniques), dtype=bool)
        if places:
            verdicts[places] = np.asarray(test([self.uniques[place] for place in places]),
                                          dtype=bool)
        return self.spread(verdicts)

    def text_where(self, test: Callable[[str], bool]) -> np.ndarray:
        """Where the value is text that passes ``test`` (asked once per distinct text)."""
        return self.texts_where(lambda texts: [test(text) for text in texts])

    @cached_property
    def value_set(self) -> frozenset[Any]:
        """The distinct values that can be hashed, as a set (made once: a column held for
        a whole conversion, such as DM's USUBJID, is asked again for every dataset piece)."""
        try:
            return frozenset(self.uniques)
        except TypeError:
            return frozenset(value for value in self.uniques if _hashable(value))

    def isin(self, allowed: Collection[Any]) -> np.ndarray:
        """Where the value is one of ``allowed`` (False where missing)."""
        return self.spread([_member(value, allowed) for value in self.uniques])


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _member(value: Any, allowed: Collection[Any]) -> bool:
    try:
        return value in allowed
    except TypeError:  # an unhashable value is in no set
        return False


def first_rows(columns: list[ColumnValues], size: int) -> np.ndarray:
    """For each row, the position of the first row with the same values in every one of
    ``columns`` (missing values equal to each other)."""
    key = np.zeros(size, dtype=np.int64)
    span = 1
    for column in columns:
        width = len(column.uniques) + 1
        if span * width >= 2**62:  # renumber the combined key densely before it overflows
            _, key = np.unique(key, return_inverse=True)
            span = int(key.max()) + 1 if size else 1
        key = key * width + (column.codes + 1)
        span *= width
    # pandas numbers the keys in the order they first come (by hashing, not sorting):
    # the code reached so far grows by one exactly at each key's first row
    codes, _ = pd.factorize(key)
    firsts = np.flatnonzero(np.diff(np.maximum.accumulate(codes), prepend=-1) > 0)
    return np.asarray(firsts[codes], dtype=np.intp)


@dataclass(frozen=True)
class _Coded:
    """An ``object`` column as codes into its distinct values and the one missing value
    (None or NaN) it holds where the code is -1."""

    codes: np.ndarray
    uniques: list[Any]
    missing: Any

    def column(self) -> np.ndarray:
        table = np.empty(len(self.uniques) + 1, dtype=object)
        table[:-1] = self.uniques
        table[-1] = self.missing
        return table[self.codes]


@dataclass(frozen=True)
class PackedFrame:
    """A frame made small to pickle (:func:`pack_frame`); :meth:`frame` gives it back."""

    names: list[Any]
    columns: list[Any]  # a _Coded, or the column as it was
    coded: dict[Any, ColumnValues]  # of the columns kept as they were

    def column_values(self) -> dict[Any, ColumnValues]:
        """The codes the frame was packed with, by column name."""
        found = dict(self.coded)
        for name, column in zip(self.names, self.columns, strict=True):
            if isinstance(column, _Coded):
                found[name] = ColumnValues(column.codes.astype(np.intp), column.uniques)
        return found

    def frame(self) -> pd.DataFrame:
        data = {name: pd.Series(column.column(), dtype=object, copy=False)
                if isinstance(column, _Coded) else column
                for name, column in zip(self.names, self.columns, strict=True)}
        return pd.DataFrame(data, columns=self.names, copy=False)  # (its own columns)


def pack_frame(frame: pd.DataFrame, coded: Mapping[Any, ColumnValues]) -> PackedFrame | None:
    """``frame`` with each ``object`` column that ``coded`` describes kept as narrow
    integer codes and its distinct values; None when the frame does not lend itself
    (an index other than 0..n-1, repeated column names)."""
    index = frame.index
    if not (isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1) \
            or not frame.columns.is_unique:
        return None
    names = list(frame.columns)
    columns: list[Any] = []
    kept: dict[Any, ColumnValues] = {}
    for name in names:
        series = frame[name]
        values = coded.get(name)
        packed = None if values is None or series.dtype != object else _code(series, values)
        columns.append(series if packed is None else packed)
        if values is not None and packed is None:
            kept[name] = values
    return PackedFrame(names, columns, kept)


def _code(series: pd.Series, values: ColumnValues) -> _Coded | None:
    if len(values.codes) != len(series):
        return None
    absent = series.to_numpy()[values.codes < 0]
    missing: Any = None
    if len(absent):
        if all(value is None for value in absent):
            missing = None
        elif all(isinstance(value, float) and value != value for value in absent):
            missing = math.nan
        else:
            return None  # None and NaN both: the codes cannot tell them apart
    size = len(values.uniques)
    width = np.int8 if size < 2**7 else np.int16 if size < 2**15 else np.int32
    return _Coded(values.codes.astype(width), values.uniques, missing)
