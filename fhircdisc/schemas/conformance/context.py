"""What a check sees: the dataset under test, the whole study, its parameters; what it yields.

A check yields :class:`Hit` records (a row, a variable, a value, extra message fields);
the engine turns them into findings. A check that cannot apply raises :class:`Skip`
with the reason ("variable LBSTRESN absent"); any other exception is an execution error.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from fhircdisc.schemas import sdtmig
from fhircdisc.schemas.columns import DatasetMeta


class Skip(Exception):
    """The check does not apply here; the message is the reason."""


@dataclass(frozen=True)
class Hit:
    """One place a check found a problem. ``row`` is 0-based (None: the dataset as a whole)."""

    row: int | None = None
    variable: str | None = None
    value: object = None
    dataset: str | None = None  # set by study-level checks; the dataset under test otherwise
    fields: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Params:
    """A rule's parameters for one dataset: a leading ``--`` becomes the domain prefix."""

    raw: Mapping[str, str]
    prefix: str = ""

    def _expand(self, name: str) -> str:
        name = name.strip()
        return self.prefix + name[2:] if name.startswith("--") else name

    def name(self, key: str) -> str:
        return self._expand(self.raw[key])

    def names(self, key: str) -> list[str]:
        return [self._expand(n) for n in self.raw.get(key, "").split(",") if n.strip()]

    def text(self, key: str, default: str = "") -> str:
        return self.raw.get(key, default)


@dataclass(frozen=True)
class ColumnValues:
    """A column as codes into its distinct values, so that a check asks about each
    distinct value once and spreads the answer over the rows.

    ``codes[row]`` is the place of the row's value in ``uniques``, -1 where it is missing
    (None, NaN, NaT, NA: what ``isna`` calls missing).
    """

    codes: np.ndarray
    uniques: list[Any]

    @classmethod
    def of(cls, series: pd.Series) -> ColumnValues:
        try:
            codes, uniques = pd.factorize(series)
        except TypeError:  # unhashable cells: each cell its own value
            values = series.tolist()
            missing = np.asarray(pd.isna(series), dtype=bool)
            return cls(np.where(missing, -1, np.arange(len(values))), values)
        return cls(np.asarray(codes, dtype=np.intp), uniques.tolist())

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
        if pd.api.types.infer_dtype(self.uniques, skipna=False) == "string":
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

    def isin(self, allowed: Collection[Any]) -> np.ndarray:
        """Where the value is one of ``allowed`` (False where missing)."""
        return self.spread([_member(value, allowed) for value in self.uniques])


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
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return np.asarray(first[inverse.reshape(-1)], dtype=np.intp)


@dataclass
class Dataset:
    """One dataset under validation (``name`` upper case, e.g. ``LB`` or ``SUPPDM``)."""

    name: str
    df: pd.DataFrame
    meta: DatasetMeta | None = None
    _cells: dict[str, list[object]] = field(default_factory=dict, init=False, repr=False,
                                            compare=False)
    _values: dict[str, ColumnValues] = field(default_factory=dict, init=False, repr=False,
                                             compare=False)

    @cached_property
    def prefix(self) -> str:
        """The domain prefix that replaces ``--``: the DOMAIN value, else the name's start."""
        if "DOMAIN" in self.df.columns:
            values = self.df["DOMAIN"].dropna().unique()
            if len(values) == 1 and isinstance(values[0], str) and values[0]:
                return values[0]
        return self.name[:2]

    @cached_property
    def ig_name(self) -> str | None:
        """The SDTMIG 3.4 dataset this one follows (SUPPxx -> SUPPQUAL, LBCH -> LB)."""
        known = sdtmig.variables()
        for candidate in (self.name, "SUPPQUAL" if self.name.startswith("SUPP") else "",
                          self.name[:2]):
            if candidate in known:
                return candidate
        return None

    def ig_variables(self) -> list[sdtmig.VariableSpec]:
        if self.ig_name is None:
            raise Skip(f"no SDTMIG 3.4 metadata for {self.name}")
        return sdtmig.variables()[self.ig_name]

    def has(self, name: str) -> bool:
        return name in self.df.columns

    def column(self, name: str) -> pd.Series:
        if name not in self.df.columns:
            raise Skip(f"variable {name} absent")
        return self.df[name]

    def cell(self, name: str, row: int) -> object:
        """The value of ``name`` at 0-based ``row`` (each column is read out once)."""
        values = self._cells.get(name)
        if values is None:
            values = self._cells[name] = self.df[name].tolist()
        return values[row]

    def values(self, name: str) -> ColumnValues:
        """The column ``name`` as codes into its distinct values (made once, shared by
        every check); :class:`Skip` when the dataset has no such variable."""
        found = self._values.get(name)
        if found is None:
            found = self._values[name] = ColumnValues.of(self.column(name))
        return found

    def require(self, *names: str) -> None:
        for name in names:
            self.column(name)

    def __len__(self) -> int:
        return len(self.df)


@dataclass
class Study:
    """Every dataset under validation, by name, for checks that look across datasets."""

    datasets: dict[str, Dataset]
    notes: list[str] = field(default_factory=list)  # what a rule run could not check

    def dm(self) -> Dataset:
        dm = self.datasets.get("DM")
        if dm is None:
            raise Skip("no DM dataset")
        return dm

    @cached_property
    def dm_by_subject(self) -> pd.DataFrame:
        """DM indexed by USUBJID (first record of each subject)."""
        dm = self.dm()
        frame = dm.df[dm.column("USUBJID").notna()]
        return frame.drop_duplicates("USUBJID").set_index("USUBJID")

    def subject_values(self, dataset: Dataset, variable: str) -> pd.Series:
        """DM.``variable`` for each row of ``dataset`` (aligned to its index; NaN if unknown)."""
        lookup = self.dm_by_subject
        if variable not in lookup.columns:
            raise Skip(f"variable DM.{variable} absent")
        values = dataset.column("USUBJID").map(lookup[variable])
        values.index = dataset.df.index
        return values
