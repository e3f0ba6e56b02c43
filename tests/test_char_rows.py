"""Dates sorted by their bytes keep their characters as rows: the ISO 8601 check and the
XPT encoder read those instead of each text again, with the same verdicts and bytes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from fhircdisc.column_values import ColumnValues
from fhircdisc.converters.dataset_stream import encode_apart, stats_of
from fhircdisc.mappings.derivations import _ranks_and_facts
from fhircdisc.schemas.columns import ColumnMeta, DatasetMeta
from fhircdisc.schemas.conformance.checks.dates import valid_dtcs, valid_values

META = DatasetMeta("LB", "Laboratory Test Results", (
    ColumnMeta("USUBJID", "Unique Subject Identifier", "Char", 20),
    ColumnMeta("LBSEQ", "Sequence Number", "Num", 8),
    ColumnMeta("LBDTC", "Date/Time of Specimen Collection", "Char", 25),
))


def dates(form: str, count: int, seed: int) -> list[Any]:
    """``count`` texts of ``form`` (digits for 'd'), most valid, some not (month 13,
    February 30, hour 24), rarely repeated."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        text = f"20{rng.integers(10, 30)}-{rng.integers(1, 14):02d}-{rng.integers(1, 31):02d}" \
            f"T{rng.integers(0, 25):02d}:{rng.integers(0, 60):02d}:{rng.integers(0, 60):02d}"
        out.append(text[:len(form)])
    return out


@pytest.mark.parametrize("form", ["dddd-dd-ddTdd:dd:dd", "dddd-dd-ddTdd:dd", "dddd-dd-dd",
                                  "dddd-dd-ddTdd"])
def test_dates_checked_from_their_rows_as_from_their_texts(form: str) -> None:
    values = dates(form, 3000, len(form))
    ranks, found = _ranks_and_facts(values)
    assert found is not None and found.chars is not None
    order = np.random.default_rng(1).permutation(len(values))
    carried = ColumnValues.of_ranks(values, ranks, order, *found)
    assert carried.chars is not None and carried.chars.shape == (len(carried.uniques),
                                                                 len(form))
    assert [bytes(row).decode() for row in carried.chars[:5]] == carried.uniques[:5]
    expected = carried.texts_where(valid_dtcs)
    assert 0 < expected.sum() < len(values)              # some valid, some not
    assert valid_values(carried).tolist() == expected.tolist()


def test_xpt_fields_from_rows_are_those_from_texts() -> None:
    values = dates("dddd-dd-ddTdd:dd:dd", 3000, 7)
    ranks, found = _ranks_and_facts(values)
    assert found is not None
    order = np.arange(len(values))
    carried = ColumnValues.of_ranks(values, ranks, order, *found)
    piece = pd.DataFrame({"USUBJID": pd.Series(["S-1"] * len(values), dtype=object),
                          "LBSEQ": np.arange(1.0, len(values) + 1),
                          "LBDTC": pd.Series(values, dtype=object)})
    plain = {"USUBJID": ColumnValues.of(piece["USUBJID"]),
             "LBDTC": ColumnValues.of(piece["LBDTC"])}
    rows = {**plain, "LBDTC": carried}
    by_texts = encode_apart(piece, META, stats_of(piece, META, plain), plain, ["xpt"])["xpt"]
    by_rows = encode_apart(piece, META, stats_of(piece, META, rows), rows, ["xpt"])["xpt"]
    assert bytes(by_rows.records) == bytes(by_texts.records)
