"""Hypothesis strategies shared by the dataset format tests."""

from __future__ import annotations

import math

import pandas as pd
from hypothesis import strategies as st

from fhircdisc.converters.datasets import build_frame
from fhircdisc.schemas.columns import ColumnMeta, DatasetMeta

PRINTABLE = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=200)


def numbers(*, allow_infinity: bool) -> st.SearchStrategy[float]:
    """NaN, any float (with or without infinities), plain values and integral floats."""
    return st.one_of(
        st.just(math.nan),
        st.floats(allow_nan=False, allow_infinity=allow_infinity),
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
        st.integers(min_value=-(2**53), max_value=2**53).map(float),
    )


@st.composite
def datasets(draw: st.DrawFn, numbers: st.SearchStrategy[float]
             ) -> tuple[pd.DataFrame, DatasetMeta]:
    """A small random dataset: up to 5 Char/Num variables and up to 8 rows."""
    types = draw(st.lists(st.sampled_from(["Char", "Num"]), min_size=1, max_size=5))
    meta = DatasetMeta("RT", "Random", tuple(
        ColumnMeta(f"V{i}", f"Variable {i}", t) for i, t in enumerate(types)))  # type: ignore[arg-type]
    n_rows = draw(st.integers(min_value=0, max_value=8))
    columns: list[list[object]] = []
    for t in types:
        cells = st.one_of(st.none(), PRINTABLE) if t == "Char" else numbers
        columns.append(draw(st.lists(cells, min_size=n_rows, max_size=n_rows)))
    return build_frame(meta, columns), meta
