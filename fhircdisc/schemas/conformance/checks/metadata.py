"""Dataset metadata against SDTMIG 3.4: variable types; DOMAIN against the dataset name."""

from __future__ import annotations

from collections.abc import Iterator
from numbers import Real

import numpy as np
import pandas as pd

from fhircdisc.schemas.conformance.checks.registry import check, rows
from fhircdisc.schemas.conformance.context import Dataset, Hit, Params, Study


def actual_type(ds: Dataset, name: str) -> str | None:
    """``Char``/``Num`` as declared by the dataset metadata, else as the values show."""
    if ds.meta is not None:
        col = ds.meta.column(name)
        if col is not None:
            return col.type
    series = ds.df[name]
    if pd.api.types.is_bool_dtype(series):
        return "Char"
    if pd.api.types.is_numeric_dtype(series):
        return "Num"
    values = series.dropna()
    if values.empty:
        return None  # all missing: nothing shows the type
    numeric = values.map(lambda v: isinstance(v, Real) and not isinstance(v, (bool, np.bool_)))
    return "Num" if bool(numeric.all()) else "Char"


@check("variable_type", fields=("expected", "actual"))
def variable_type(ds: Dataset, p: Params, study: Study) -> Iterator[Hit]:
    """Each IG variable present has the IG's type (Char or Num)."""
    for spec in ds.ig_variables():
        if ds.has(spec.name):
            actual = actual_type(ds, spec.name)
            if actual is not None and actual != spec.type:
                yield Hit(variable=spec.name, fields={"expected": spec.type, "actual": actual})


@check("domain_matches_dataset")
def domain_matches_dataset(ds: Dataset, p: Params, study: Study) -> Iterator[Hit]:
    """DOMAIN equals the dataset name, or begins it for a split dataset (LBCH: LB)."""
    values = ds.values("DOMAIN")
    name = ds.name
    split = len(name) in (3, 4) and not name.startswith("SUPP")
    ok = values.missing() | values.isin({name, name[:2]} if split else {name})
    for row in rows(~ok):
        yield Hit(row=row, variable="DOMAIN", value=ds.cell("DOMAIN", row))
