"""Typed dataset columns: SDTMIG Num variables as float64, Char variables as objects with
None for missing cells, whatever the column held (the quick ways for plain float and
text columns give what the general conversion gives)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhircdisc.column_values import ColumnValues
from fhircdisc.study import char_column, num_column, typed_frame

cells = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True),
                  st.text(alphabet="0123456789.-e aZ", max_size=5), st.integers(-9, 9),
                  st.booleans(), st.just(np.float32(1.5)), st.just(pd.NA), st.just(pd.NaT))
columns = st.one_of(
    st.lists(cells, max_size=8),
    st.lists(st.one_of(st.none(), st.floats(allow_nan=True)), max_size=8),
    st.lists(st.one_of(st.none(), st.text(max_size=3)), max_size=8),
    st.lists(st.text(max_size=3), max_size=8))
dtypes = st.sampled_from([object, None, "str"])


def column(values: list[Any], dtype: Any) -> pd.Series:
    try:
        return pd.Series(values, dtype=dtype)
    except (TypeError, ValueError):
        return pd.Series(values, dtype=object)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(columns, dtypes)
def test_columns_typed_as_the_general_conversion(values: list[Any], dtype: Any) -> None:
    series = column(values, dtype)
    number = pd.to_numeric(series, errors="coerce").astype("float64")
    pd.testing.assert_series_equal(num_column(series), number)
    text = series.astype(object).where(series.notna(), None)
    pd.testing.assert_series_equal(char_column(series), text)


def test_typed_frame_values() -> None:
    raw = pd.DataFrame({"USUBJID": ["S-1", "S-2", None],
                        "LBSTRESN": np.array([1.5, None, 2.0], dtype=object),
                        "LBORRES": ["1.5", "x", "2"], "LBSEQ": ["1", "2", "three"]})
    typed = typed_frame("LB", raw, ["USUBJID", "LBSEQ", "LBORRES", "LBSTRESN", "LBDY"])
    assert typed["USUBJID"].tolist() == ["S-1", "S-2", None]
    assert typed["LBSTRESN"].dtype == np.float64
    assert typed["LBSTRESN"].tolist()[::2] == [1.5, 2.0]
    assert np.isnan(typed["LBSTRESN"].iat[1])
    assert typed["LBSEQ"].tolist()[:2] == [1.0, 2.0] and np.isnan(typed["LBSEQ"].iat[2])
    assert typed["LBORRES"].tolist() == ["1.5", "x", "2"]
    assert typed["LBDY"].isna().all()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.none(), st.just(float("nan")), st.text(max_size=3)),
                max_size=10))
def test_char_columns_typed_from_their_codes_as_from_their_values(values: list[Any]) -> None:
    """A Char column whose codes are known is typed from them: texts as they are, None
    and NaN as None, exactly as from its values; a column holding something else than
    text is typed from its values."""
    raw = pd.DataFrame({"LBORRES": pd.Series(values, dtype=object),
                        "LBTESTCD": pd.Series([*values[:-1], 7] if values else [],
                                              dtype=object)})
    known = {name: ColumnValues.of(raw[name]) for name in raw.columns}
    names = ["LBORRES", "LBTESTCD"]
    from_codes = typed_frame("LB", raw, names, known)
    pd.testing.assert_frame_equal(from_codes, typed_frame("LB", raw, names))
    missing = [value is None or value != value for value in values]
    assert [value is None for value in from_codes["LBORRES"]] == missing
    # given as its columns, by name (one absent): the same frame
    given = {name: raw[name] for name in names}
    for columns in (names, ["LBTESTCD", "LBDY", "LBORRES"]):
        pd.testing.assert_frame_equal(typed_frame("LB", given, columns, known),
                                      typed_frame("LB", raw, columns, known))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True),
                          st.integers(-10**20, 10**20), st.just("2.5"), st.booleans()),
                max_size=10))
def test_num_columns_typed_from_their_codes_as_from_their_values(values: list[Any]) -> None:
    """A Num column whose codes are known is typed from its distinct numbers when they
    are all numbers; from its values otherwise; the same floats either way."""
    raw = pd.DataFrame({"LBSTNRLO": pd.Series(values, dtype=object)})
    known = {"LBSTNRLO": ColumnValues.of(raw["LBSTNRLO"])}
    pd.testing.assert_frame_equal(typed_frame("LB", raw, ["LBSTNRLO"], known),
                                  typed_frame("LB", raw, ["LBSTNRLO"]))
