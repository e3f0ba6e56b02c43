"""study.csv_rows: the bytes pandas' ``to_csv`` appends to a file, for any frame."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhircdisc.study import _whole_number_texts, csv_rows

TEXTS = st.one_of(st.none(), st.text(max_size=6),
                  st.sampled_from(["", "LB", "line 12", "Observation/a,b", 'say "x"', "a\nb",
                                   "a\rb", "é", "  "]))
FLOATS = st.one_of(st.just(math.nan), st.floats(allow_nan=False),
                   st.integers(-10**6, 10**17).map(float))
OTHER = st.one_of(st.integers(-5, 5), st.booleans(), st.floats(), st.none())


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    n_rows = draw(st.integers(0, 6))
    data: dict[str, object] = {}
    for number in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["text", "float", "object", "str"]))
        if kind == "float":
            data[f"c{number}"] = pd.Series(draw(st.lists(FLOATS, min_size=n_rows,
                                                         max_size=n_rows)), dtype="float64")
        elif kind == "object":
            values = draw(st.lists(st.one_of(TEXTS, OTHER), min_size=n_rows, max_size=n_rows))
            data[f"c{number}"] = pd.Series(values, dtype=object)
        else:
            values = draw(st.lists(TEXTS, min_size=n_rows, max_size=n_rows))
            data[f"c{number}"] = pd.Series(values, dtype=object if kind == "text" else "str")
    return pd.DataFrame(data)


def expected_and_got(frame: pd.DataFrame, folder: Path) -> tuple[bytes, bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    expected, got = folder / "expected.csv", folder / "got.csv"
    for path in (expected, got):
        path.write_bytes(b"DOMAIN,SEQ\n")
    frame.to_csv(expected, index=False, header=False, mode="a")
    with got.open("ab") as handle:
        handle.write(csv_rows(frame))
    return expected.read_bytes(), got.read_bytes()


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(frames())
def test_csv_rows_are_what_pandas_appends(tmp_path: Path, frame: pd.DataFrame) -> None:
    expected, got = expected_and_got(frame, tmp_path)
    assert got == expected


@pytest.mark.parametrize("n_rows", [0, 1, 1000])
def test_provenance_like_rows(tmp_path: Path, n_rows: int) -> None:
    frame = pd.DataFrame({
        "DOMAIN": "LB",
        "USUBJID": pd.Series([f"S-{i % 7}" if i % 11 else None for i in range(n_rows)],
                             dtype="str"),
        "SEQ": np.arange(n_rows, dtype=np.float64) + 1,
        "SOURCE": [f"Observation/{i}" for i in range(n_rows)],
        "FILE": pd.Series(["../in/Observation.ndjson"] * n_rows, dtype=object),
        "LOCATION": [f"line {i + 1}" for i in range(n_rows)]})
    expected, got = expected_and_got(frame, tmp_path)
    assert got == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(FLOATS, st.integers(-10**15, 10**15).map(float),
                          st.sampled_from([0.0, -0.0, 1e15, -1e15 + 1, 2.5])), max_size=20))
def test_whole_numbers_are_written_as_numpy_writes_them(values: list[float]) -> None:
    array = np.array(values, dtype=np.float64)
    texts = _whole_number_texts(array)
    if texts is not None:
        expected = array.astype(str).astype(object)
        expected[np.isnan(array)] = ""
        assert texts == expected.tolist()
    else:
        present = array[~np.isnan(array)]
        assert not (np.all(present == np.floor(present)) and np.all(np.abs(present) < 1e15)
                    and not np.any(np.signbit(present) & (present == 0)))
