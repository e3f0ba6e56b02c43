"""What a check sees: the dataset under test, the whole study, its parameters; what it yields.

A check yields :class:`Hit` records (a row, a variable, a value, extra message fields);
the engine turns them into findings. A check that cannot apply raises :class:`Skip`
with the reason ("variable LBSTRESN absent"); any other exception is an execution error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from fhircdisc.column_values import ColumnValues
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
            values = self.values("DOMAIN").uniques         # the codes: often made already
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

    @cached_property
    def _names(self) -> frozenset[str]:
        return frozenset(self.df.columns)

    def has(self, name: str) -> bool:
        return name in self._names    # a pandas Index look-up costs 2 µs, asked per finding

    def column(self, name: str) -> pd.Series:
        if name not in self.df.columns:
            raise Skip(f"variable {name} absent")
        return self.df[name]

    def cell(self, name: str, row: int) -> object:
        """The value of ``name`` at 0-based ``row``: from the column's codes when they are
        made and their values are texts (a few findings then read no column out; equal
        texts are the same value, where 0.0 and -0.0 would not be), else from the column
        read out once."""
        values = self._cells.get(name)
        if values is None:
            coded = self._values.get(name)
            if coded is not None and len(coded.codes) == len(self.df) and coded.all_text:
                code = int(coded.codes[row])
                if code >= 0:
                    return coded.uniques[code]
            values = self._cells[name] = self.df[name].tolist()
        return values[row]

    def values(self, name: str) -> ColumnValues:
        """The column ``name`` as codes into its distinct values (made once, shared by
        every check); :class:`Skip` when the dataset has no such variable."""
        found = self._values.get(name)
        if found is None:
            found = self._values[name] = ColumnValues.of(self.column(name))
        return found

    def missing(self, name: str) -> np.ndarray:
        """Rows where ``name`` is missing (None, NaN, NaT, NA), from its codes when they
        are made, and for a column of numbers from the column itself (no codes made)."""
        found = self._values.get(name)
        if found is None:
            column = self.column(name)
            if column.dtype.kind in "fiu":
                return np.asarray(column.isna(), dtype=bool)
            found = self.values(name)
        return found.missing()

    def adopt(self, values: Mapping[str, ColumnValues]) -> None:
        """Take columns already made into codes (by whoever built the frame), so that the
        checks do not make them again; each must describe this frame's column exactly."""
        for name, found in values.items():
            if len(found.codes) != len(self.df):
                raise ValueError(f"codes of {name} are for {len(found.codes)} rows, "
                                 f"the dataset has {len(self.df)}")
            self._values[name] = found

    def known_values(self) -> dict[str, ColumnValues]:
        """The columns made into :class:`ColumnValues` so far, by name."""
        return dict(self._values)

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
