"""Values of variables with a CDISC codelist (SDTMIG 3.4 metadata) against CT 2025-03-28."""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import pandas as pd

from fhircdisc.column_values import ColumnValues
from fhircdisc.schemas.conformance.checks.registry import check, rows
from fhircdisc.schemas.conformance.context import Dataset, Hit, Params, Study
from fhircdisc.schemas.ct import codelists

_RESULT_NUMBER = re.compile(r"(<=|>=|<|>|=)?\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\Z")


def _is_result_number(value: str) -> bool:
    if value.replace(".", "", 1).isdecimal():  # the usual result, without the pattern
        return True
    return bool(_RESULT_NUMBER.match(value.strip()))


def text_numbers(values: ColumnValues) -> np.ndarray:
    """Per row, the number its text is when that text is a plain number (``39``,
    ``-1.5``, ``.94``), else NaN (also for values that are not text); for texts made from
    numbers (:attr:`ColumnValues.numbers`), those numbers."""
    if values.numbers is not None:
        return np.append(values.numbers, np.nan)[values.codes]
    texts = [value if isinstance(value, str) else None for value in values.uniques]
    numbers = pd.to_numeric(pd.Series(texts, dtype=object), errors="coerce")
    table = np.append(numbers.to_numpy(dtype=float, na_value=np.nan), np.nan)
    return table[values.codes]


@check("codelist_values", required=("extensible",), optional=("skip", "numeric_ok", "allow"),
       fields=("codelist", "codelist_name"))
def codelist_values(ds: Dataset, p: Params, study: Study) -> Iterator[Hit]:
    """Values are submission values of the variable's codelist(s).

    ``extensible=No`` checks variables whose codelists are all non-extensible,
    ``extensible=Yes`` those with an extensible one. A variable with several codelists
    (``C66741;C67153``) accepts a term of any. Variables in ``skip`` are not checked;
    in ``numeric_ok`` variables a number (also ``<2.2``, ``>=10``) is a result, not a term;
    ``allow`` lists values the SDTMIG itself prescribes beyond the codelist
    (``RACE:MULTIPLE``).
    """
    want_extensible = p.text("extensible") == "Yes"
    skip, numeric_ok = set(p.names("skip")), set(p.names("numeric_ok"))
    allow: dict[str, set[str]] = {}
    for item in p.names("allow"):
        variable, _, value = item.partition(":")
        allow.setdefault(variable, set()).add(value)
    known = codelists()
    for spec in ds.ig_variables():
        if not spec.codelist or spec.name in skip or not ds.has(spec.name):
            continue
        codes = [c.strip() for c in spec.codelist.split(";") if c.strip()]
        lists = [known[c] for c in codes if c in known]
        missing = [c for c in codes if c not in known]
        if missing:
            study.notes.append(f"{ds.name}.{spec.name}: codelist {', '.join(missing)} "
                               "not in the CT subset, not checked")
        if not lists or any(cl.extensible for cl in lists) != want_extensible:
            continue
        allowed = frozenset().union(*(cl.values for cl in lists), allow.get(spec.name, ()))
        values = ds.values(spec.name)
        bad = values.present() & ~values.isin(allowed)
        if spec.name in numeric_ok and bad.any():
            bad &= ~values.text_where(_is_result_number)
        for row in rows(bad):
            yield Hit(row=row, variable=spec.name, value=ds.cell(spec.name, row),
                      fields={"codelist": ";".join(c.code for c in lists),
                              "codelist_name": " / ".join(c.name for c in lists)})
