"""Provenance rows of a bucket written from tables: the bytes pandas writes for them."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from fhircdisc.column_values import ColumnValues
from fhircdisc.converters.provenance_rows import tabled_provenance

_SUBJECT = st.one_of(st.none(), st.sampled_from(["S-1", "S-2", "STUDY-0001", "é-3"]))
_SEQ = st.one_of(st.just(float("nan")), st.integers(-3, 400).map(float),
                 st.integers(10**12, 10**12 + 5).map(float))
_LINE = st.one_of(st.integers(1, 30_000), st.integers(0, 10**9))
_FILE = st.sampled_from(["a.ndjson", "../in/Observation.000.ndjson", "x y.ndjson"])


def _pandas(domain: str, subjects: list[Any], seqs: list[float], sources: list[str],
            files: list[str], lines: list[int]) -> bytes:
    frame = pd.DataFrame({"DOMAIN": domain, "USUBJID": pd.Series(subjects, dtype=object),
                          "SEQ": pd.Series(seqs, dtype=np.float64), "SOURCE": sources,
                          "FILE": files, "LOCATION": [f"line {n}" for n in lines]})
    out = io.StringIO()
    frame.to_csv(out, index=False, header=False)
    return out.getvalue().encode("utf-8")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_SUBJECT, _SEQ, st.text("abc/0123", min_size=1, max_size=6),
                          st.integers(0, 2), _LINE), max_size=30),
       st.lists(_FILE, min_size=1, max_size=3, unique=True))
def test_rows_are_those_pandas_writes(rows: list[tuple[Any, ...]], names: list[str]) -> None:
    subjects = [row[0] for row in rows]
    seqs = np.array([row[1] for row in rows], dtype=np.float64)
    sources = [row[2] for row in rows]
    origins = np.array([min(row[3], len(names) - 1) for row in rows], dtype=np.int32)
    lines = np.array([row[4] for row in rows], dtype=np.int64)
    got = tabled_provenance("LB", ColumnValues.of(pd.Series(subjects, dtype=object)), seqs,
                            sources, names, origins if len(names) > 1 else None, lines)
    want = _pandas("LB", subjects, seqs.tolist(), sources,
                   [names[i] for i in origins.tolist()], lines.tolist())
    assert got == want


def test_fields_needing_quotes_or_numbers_not_whole_are_left_to_pandas() -> None:
    codes = ColumnValues.of(pd.Series(["S-1", "S-2"], dtype=object))
    lines = np.array([1, 2])
    seqs = np.array([1.0, 2.0])
    assert tabled_provenance("VS", codes, seqs, ["O/1", "O/2"], ["a.ndjson"], None, lines) \
        == b"VS,S-1,1.0,O/1,a.ndjson,line 1\nVS,S-2,2.0,O/2,a.ndjson,line 2\n"
    assert tabled_provenance("VS", codes, seqs, ["O/1", 'O/"2'], ["a.ndjson"], None,
                             lines) is None
    assert tabled_provenance("VS", codes, seqs, ["O/1", "O/2"], ["a,b.ndjson"], None,
                             lines) is None
    assert tabled_provenance("VS", codes, np.array([1.5, 2.0]), ["O/1", "O/2"],
                             ["a.ndjson"], None, lines) is None
    numbers = ColumnValues.of(pd.Series([1, 2], dtype=object))
    assert tabled_provenance("VS", numbers, seqs, ["O/1", "O/2"], ["a.ndjson"], None,
                             lines) is None
