"""Derived values: study days (SDTMIG 3.4 section 4.4.4), standard results, age."""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import pandas as pd

from fhircdisc.column_values import ColumnValues
from fhircdisc.converters.datasets import is_missing
from fhircdisc.mappings.dates import age_in_years
from fhircdisc.schemas.conformance.checks.presence import is_null
from fhircdisc.schemas.conformance.checks.registry import check, rows, text
from fhircdisc.schemas.conformance.checks.terminology import text_numbers
from fhircdisc.schemas.conformance.context import Dataset, Hit, Params, Skip, Study

_STUDY_DAY = re.compile(r"([A-Z]{2}(ST|EN)?|VISIT)DY\Z")


def _dates(values: pd.Series, distinct: ColumnValues | None = None) -> pd.Series:
    """The complete calendar date of each --DTC value (NaT when partial, missing, invalid)."""
    if distinct is None:
        distinct = ColumnValues.of(values)
    days = [v[:10] if isinstance(v, str) and len(v) >= 10 else None for v in distinct.uniques]
    parsed = pd.to_datetime(pd.Series([*days, None], dtype=object), format="%Y-%m-%d",
                            errors="coerce")
    return pd.Series(parsed.to_numpy()[distinct.codes], index=values.index)


@check("study_day", required=("dy", "dtc"), fields=("expected", "dtc_variable", "dtc_value",
                                                    "rfstdtc"))
def study_day(ds: Dataset, p: Params, study: Study) -> Iterator[Hit]:
    """``dy`` = date(``dtc``) - date(DM.RFSTDTC) (+1 on or after RFSTDTC; no day 0).

    Rows where either date is not complete, or the subject is not in DM, are not checked.
    """
    dy_name, dtc_name = p.name("dy"), p.name("dtc")
    dy = pd.to_numeric(ds.column(dy_name), errors="coerce")
    dtc = ds.column(dtc_name)
    rfstdtc = study.subject_values(ds, "RFSTDTC")
    delta = (_dates(dtc, ds.values(dtc_name)) - _dates(rfstdtc)).dt.days
    expected = delta + (delta >= 0)
    bad = dy.notna() & expected.notna() & (dy != expected)
    for row in rows(bad):
        yield Hit(row=row, variable=dy_name, value=dy.iat[row],
                  fields={"expected": text(expected.iat[row]), "dtc_variable": dtc_name,
                          "dtc_value": dtc.iat[row], "rfstdtc": rfstdtc.iat[row]})


@check("no_day_zero")
def no_day_zero(ds: Dataset, p: Params, study: Study) -> Iterator[Hit]:
    """No study day variable (--DY, --STDY, --ENDY, VISITDY) is 0."""
    names = [str(c) for c in ds.df.columns if _STUDY_DAY.match(str(c))]
    if not names:
        raise Skip("no study day variable")
    for name in names:
        values = pd.to_numeric(ds.df[name], errors="coerce")
        for row in rows(values == 0):
            yield Hit(row=row, variable=name, value=0.0)


@check("stresn_matches_stresc", required=("stresc", "stresn"), fields=("stresc_value",))
def stresn_matches_stresc(ds: Dataset, p: Params, study: Study) -> Iterator[Hit]:
    """Where --STRESC is a plain number, --STRESN holds that number.

    Compared with a relative tolerance of 1e-9: XPT stores IBM floats, so the value
    read back from a SAS-written file may differ from ``float(--STRESC)`` in its last bits.
    """
    stresc_name, stresn_name = p.name("stresc"), p.name("stresn")
    stresc = ds.column(stresc_name)
    stresn = pd.to_numeric(ds.column(stresn_name), errors="coerce")
    expected = text_numbers(ds.values(stresc_name))
    numeric = ~np.isnan(expected)
    same = np.isclose(stresn.to_numpy(dtype=float), expected, rtol=1e-9, atol=0.0)
    bad = numeric & ~same
    for row in rows(bad):
        yield Hit(row=row, variable=stresn_name, value=stresn.iat[row],
                  fields={"stresc_value": stresc.iat[row]})


@check("unit_with_result", required=("result", "unit"), optional=("original_unit",),
       fields=("original_unit_value",))
def unit_with_result(ds: Dataset, p: Params, study: Study) -> Iterator[Hit]:
    """Where the numeric result (``result``) is populated, its unit (``unit``) is too.

    With ``original_unit`` (--ORRESU) only records whose original result had a unit are
    checked: a result collected without a unit is dimensionless or ordinal (pH, specific
    gravity, a 0-4 morphology grade) and has no standard unit either.
    """
    bad = ~ds.missing(p.name("result")) & is_null(ds, p.name("unit"))
    original = ds.column(p.name("original_unit")) if "original_unit" in p.raw else None
    if original is not None:
        bad &= ~is_null(ds, p.name("original_unit"))
    for row in rows(bad):
        yield Hit(row=row, variable=p.name("unit"), value=None,
                  fields={"original_unit_value": None if original is None
                          else original.iat[row]})


@check("age_matches_birth_date", required=("ref",), fields=("expected", "ref_value",
                                                           "birth_value"))
def age_matches_birth_date(ds: Dataset, p: Params, study: Study) -> Iterator[Hit]:
    """AGE (in YEARS) equals the completed years from BRTHDTC to ``ref`` (e.g. RFSTDTC).

    Not checked where the age cannot be computed: a partial birth date that spans a
    birthday, a partial reference date, or AGEU other than YEARS.
    """
    ref_name = p.name("ref")
    ages = pd.to_numeric(ds.column("AGE"), errors="coerce").tolist()
    births, refs = ds.column("BRTHDTC").tolist(), ds.column(ref_name).tolist()
    units = ds.df["AGEU"].tolist() if ds.has("AGEU") else ["YEARS"] * len(ds)
    for row, (age, birth, ref, unit) in enumerate(zip(ages, births, refs, units, strict=True)):
        if is_missing(age) or unit != "YEARS" or not isinstance(birth, str):
            continue
        computed = age_in_years(birth, ref if isinstance(ref, str) else None)
        if computed is not None and computed != age:
            yield Hit(row=row, variable="AGE", value=age,
                      fields={"expected": computed, "ref_value": ref, "birth_value": birth})
