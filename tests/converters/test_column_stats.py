"""The column facts a chunk reports (has a value; every value a number) decide which
variables a dataset keeps and their XPT types: checked value by value against a plain
reading of the definition."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhircdisc.converters.chunk import ColumnStats, column_stats


def by_definition(rows: list[dict[str, Any]]) -> dict[str, ColumnStats]:
    stats: dict[str, ColumnStats] = {}
    for row in rows:
        for name in row:
            if not name.startswith("_"):
                stats.setdefault(name, ColumnStats())
    for name, column in stats.items():
        values = [row.get(name) for row in rows]
        present = [v for v in values if v is not None and v == v]
        column.present = bool(present)
        column.numeric = all(isinstance(v, int | float) and not isinstance(v, bool)
                             for v in present)
    return stats


values = st.one_of(st.none(), st.integers(), st.floats(allow_nan=True), st.text(max_size=2),
                   st.booleans(), st.just(np.float64(2.0)), st.just(float("nan")))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.dictionaries(st.sampled_from(["A", "B", "C", "_order"]), values),
                max_size=6))
def test_column_stats_follow_the_definition(rows: list[dict[str, Any]]) -> None:
    assert column_stats(rows) == by_definition(rows)


def test_typical_columns() -> None:
    rows = [{"USUBJID": "S-1", "LBSTRESN": 1.5, "LBSTAT": None, "LBDY": 3, "_source": "x"},
            {"USUBJID": "S-2", "LBSTRESN": float("nan"), "LBSTAT": None, "LBDY": None,
             "_source": "y"}]
    assert column_stats(rows) == {"USUBJID": ColumnStats(True, False),
                                  "LBSTRESN": ColumnStats(True, True),
                                  "LBSTAT": ColumnStats(False, True),
                                  "LBDY": ColumnStats(True, True)}
