"""Required and Expected variables (SDTMIG 3.4 section 4.1.5, core status Req/Exp)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from fhircdisc.schemas.conformance.checks.registry import check, rows
from fhircdisc.schemas.conformance.context import Dataset, Hit, Params, Study


def is_null(ds: Dataset, name: str) -> np.ndarray:
    """Rows where ``name`` is missing: None/NaN, and text that is empty or only blanks."""
    if ds.column(name).dtype.kind in "fiu":                # numbers: no text to be blank
        return ds.missing(name)
    values = ds.values(name)
    return values.missing() | values.text_where(_blank)


def _blank(value: str) -> bool:
    return not value.strip()


def _core(ds: Dataset, core: str) -> list[str]:
    return [v.name for v in ds.ig_variables() if v.core == core]


@check("variables_present", required=("core",))
def variables_present(ds: Dataset, p: Params, study: Study) -> Iterator[Hit]:
    """Every IG variable of core status ``core`` (Req or Exp) is a column of the dataset."""
    for name in _core(ds, p.text("core")):
        if not ds.has(name):
            yield Hit(variable=name)


@check("required_not_null")
def required_not_null(ds: Dataset, p: Params, study: Study) -> Iterator[Hit]:
    """Required variables are populated in every record."""
    for name in _core(ds, "Req"):
        if ds.has(name):
            for row in rows(is_null(ds, name)):
                yield Hit(row=row, variable=name)
