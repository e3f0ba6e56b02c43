"""Columns of an SDTM dataset as codes into their distinct values (SDTM -> FHIR, fast path).

Most SDTM variables take few distinct values over many rows, so the fast NDJSON path
works on each column's distinct values and broadcasts the results to the rows with
numpy. Factorizing must be exact: two cells share a code only when every step of the
conversion treats them alike. Text columns are factorized on the strings themselves;
numeric columns on the bits of their float64 values (so ``-0.0`` and ``0.0`` stay apart,
as ``str`` keeps them apart); a missing cell (``None``, NaN) is ``None``. A column of
any other kind (integers, mixed objects, dates) is not handled here: ``factorize``
returns ``None`` and the caller takes the reference path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

CODE = np.int32


@dataclass
class Coded:
    """One column as ``codes`` (one per row) into ``values`` (its distinct values)."""

    codes: np.ndarray
    values: list[Any]

    def __len__(self) -> int:
        return len(self.codes)

    def map(self, func: Callable[[Any], Any]) -> list[Any]:
        """``func`` of every distinct value (index by code)."""
        return [func(value) for value in self.values]


def constant(rows: int, value: Any = None) -> Coded:
    """A column that holds ``value`` in every row (e.g. one the dataset does not have)."""
    return Coded(np.zeros(rows, dtype=CODE), [value])


def factorize(series: pd.Series) -> Coded | None:
    """The exact codes of a float64 or text column, or ``None`` for any other column."""
    data = series.to_numpy()
    if data.dtype == np.float64:
        bits = np.ascontiguousarray(data).view(np.int64)
        codes, uniques = pd.factorize(bits)
        values: list[Any] = [None if np.isnan(v) else v
                             for v in np.asarray(uniques).view(np.float64).tolist()]
        return Coded(codes.astype(CODE, copy=False), values)
    if data.dtype != object:
        return None
    codes, uniques = pd.factorize(data, use_na_sentinel=True)
    values = list(uniques)
    if not all(isinstance(v, str) for v in values):
        return None
    codes = codes.astype(CODE, copy=False)
    if len(codes) and codes.min() < 0:
        codes[codes < 0] = len(values)
        values.append(None)
    return Coded(codes, values)


def combine(columns: Sequence[Coded], rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Codes of the distinct tuples of several columns: ``(codes, a row holding each)``."""
    if not columns:
        return np.zeros(rows, dtype=CODE), np.zeros(1 if rows else 0, dtype=np.int64)
    key = columns[0].codes.astype(np.int64)
    width = len(columns[0].values)
    for column in columns[1:]:
        key = key * len(column.values) + column.codes
        width *= len(column.values)
        if width > 2 ** 40:                       # keep the mixed-radix key small
            key, uniques = pd.factorize(key)
            key = key.astype(np.int64)
            width = len(uniques)
    codes, uniques = pd.factorize(key)
    return codes.astype(CODE, copy=False), any_rows(codes, len(uniques))


def any_rows(codes: np.ndarray, count: int) -> np.ndarray:
    """For each of ``count`` codes, one row that holds it."""
    out = np.zeros(count, dtype=np.int64)
    out[codes] = np.arange(len(codes))
    return out


def first_rows(codes: np.ndarray) -> np.ndarray:
    """For codes numbered in order of first appearance: the row where each first appears."""
    if not len(codes):
        return np.zeros(0, dtype=np.int64)
    index = pd.Series(codes).drop_duplicates().index.to_numpy()
    order = np.asarray(codes)[index]
    out = np.empty(len(index), dtype=np.int64)
    out[order] = index
    return out


def pair_codes(left: np.ndarray, right: np.ndarray, right_size: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Codes of the distinct (left, right) pairs, numbered in order of first appearance:
    ``(codes, first row of each)``."""
    codes, _ = pd.factorize(left.astype(np.int64) * right_size + right)
    return codes.astype(CODE, copy=False), first_rows(codes)


#: largest left x right table ``pair_index`` keeps dense
DENSE = 1 << 23


def pair_index(left: np.ndarray, left_size: int, right: np.ndarray, right_size: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Codes of the distinct (left, right) pairs in any order, and one row holding each.

    Faster than ``pair_codes`` (no hashing) when the table of every possible pair is
    small enough to hold.
    """
    if left_size * right_size > DENSE:
        return pair_codes(left, right, right_size)
    key = left.astype(np.int64) * right_size + right
    seen = np.zeros(left_size * right_size, dtype=bool)
    seen[key] = True
    number = np.cumsum(seen) - 1
    codes = number[key].astype(CODE)
    return codes, any_rows(codes, int(seen.sum()))
