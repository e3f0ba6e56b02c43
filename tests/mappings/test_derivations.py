"""--SEQ numbering and study days against their row-by-row definitions."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhircdisc.mappings import derivations
from fhircdisc.mappings.dates import study_day

KEYS = ("LBDTC", "LBTESTCD")
PAIRS = (("LBDTC", "LBDY"), ("LBENDTC", "LBENDY"))


def reference_sequence(rows: list[dict[str, Any]], seq_var: str, keys: tuple[str, ...]) -> None:
    """The definition: a stable sort on one key tuple per row, then a counter per subject."""
    rows.sort(key=lambda row: (row.get("USUBJID") or "",
                               *[(row.get(k) is None, str(row.get(k) or "")) for k in keys],
                               row.get("_order", 0), row.get("_location", "")))
    counters: dict[str, int] = {}
    for row in rows:
        subject = row.get("USUBJID") or ""
        counters[subject] = counters.get(subject, 0) + 1
        row[seq_var] = float(counters[subject])


def reference_study_days(rows: list[dict[str, Any]], reference: dict[str, str | None],
                         pairs: tuple[tuple[str, str], ...]) -> None:
    for row in rows:
        ref = reference.get(row.get("USUBJID") or "")
        for dtc_var, dy_var in pairs:
            if dy_var in row and dy_var not in row.get("_fixed", ()):
                day = study_day(row.get(dtc_var), ref)
                row[dy_var] = float(day) if day is not None else None


DATES = st.sampled_from([None, "", "2020", "2020-02", "2020-02-29", "2020-03-01T08:00",
                         "2019-12-31", "2020-02-30", "2021-01-01T00:00:00"])
KEY_VALUES = st.one_of(st.none(), st.sampled_from(["", "A", "B", "a", "ALB", "Z9"]),
                       st.sampled_from([0, 0.0, 1.5, 2, math.nan]), st.text(max_size=3))
ORDERS = st.one_of(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)),
                   st.integers(0, 5))


@st.composite
def lab_rows(draw: st.DrawFn, orders: st.SearchStrategy[Any] = ORDERS
             ) -> list[dict[str, Any]]:
    rows = []
    order_kind = draw(st.sampled_from(["tuple", "int", "mixed"]))
    for number in range(draw(st.integers(0, 30))):
        row: dict[str, Any] = {"USUBJID": draw(st.sampled_from(["S-1", "S-2", "S-10", None, 7,
                                                                ""])),
                               "_location": draw(st.sampled_from(["", "line 1", "line 2"]))}
        for key in KEYS:
            if draw(st.booleans()):
                row[key] = draw(KEY_VALUES)
        order = draw(orders)
        if order_kind == "tuple":
            row["_order"] = (number % 3, number % 2, 1)
        elif order_kind == "int":
            row["_order"] = number % 4
        else:
            row["_order"] = order
        rows.append(row)
    return rows


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lab_rows())
def test_sequence_matches_its_definition(rows: list[dict[str, Any]]) -> None:
    expected = copy.deepcopy(rows)
    try:
        reference_sequence(expected, "LBSEQ", KEYS)
    except TypeError:
        with pytest.raises(TypeError):
            derivations.sequence(rows, "LBSEQ", KEYS, fixed=False)
        return
    derivations.sequence(rows, "LBSEQ", KEYS, fixed=False)
    assert [repr(row) for row in rows] == [repr(row) for row in expected]


def test_sequence_keeps_read_order_of_ties_and_puts_missing_keys_last() -> None:
    rows = [{"USUBJID": "S2", "LBTESTCD": None, "_order": (0, 1, 1), "n": 0},
            {"USUBJID": "S1", "LBTESTCD": "B", "_order": (0, 2, 1), "n": 1},
            {"USUBJID": "S1", "LBTESTCD": None, "_order": (0, 0, 1), "n": 2},
            {"USUBJID": "S1", "LBTESTCD": "A", "_order": (0, 3, 1), "n": 3},
            {"USUBJID": "S1", "LBTESTCD": "A", "_order": (0, 3, 1), "n": 4}]
    derivations.sequence(rows, "LBSEQ", ("LBTESTCD",), fixed=False)
    assert [(row["n"], row["LBSEQ"]) for row in rows] == [
        (3, 1.0), (4, 2.0), (1, 3.0), (2, 4.0), (0, 1.0)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.fixed_dictionaries(
    {"USUBJID": st.sampled_from(["S-1", "S-2", "S-3", ""]), "LBDTC": DATES},
    optional={"LBDY": st.none(), "LBENDTC": DATES, "LBENDY": st.none(),
              "_fixed": st.sets(st.sampled_from(["LBDY", "LBENDY"]))}), max_size=20),
    st.dictionaries(st.sampled_from(["S-1", "S-2", ""]), DATES))
def test_study_days_match_their_definition(rows: list[dict[str, Any]],
                                           reference: dict[str, str | None]) -> None:
    expected = copy.deepcopy(rows)
    reference_study_days(expected, reference, PAIRS)
    derivations.study_days(rows, reference, PAIRS)
    assert rows == expected


# sorted with the row place as a key (3, 2**21), stably (2**29), by lexsort (2**40)
@pytest.mark.parametrize("size", [3, 2**21, 2**29, 2**40])
def test_stable_order_of_codes_is_lexsort(size: int) -> None:
    rng = np.random.default_rng(size)
    codes = [rng.integers(0, size, 500), rng.integers(0, 3, 500), rng.integers(0, size, 500)]
    assert derivations._stable_order(codes).tolist() == np.lexsort(codes[::-1]).tolist()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(
    st.sampled_from(["S-1", "S-2", "S-3", "", None, float("nan")]),
    st.one_of(st.none(), st.sampled_from(
        ["2020-01-10", "2020-01-09T08:00", "2019-12-31T23:59:59+01:00", "2020-02",
         "2020-02-30", "", "x", "2020-01-10T10:00"]))), max_size=40))
def test_study_days_on_columns_are_those_of_each_row(pairs: list[tuple[Any, Any]]) -> None:
    reference = {"S-1": "2020-01-10", "S-2": "2020-01", "S-3": None, "": "2020-01-01"}
    subjects, dtcs = [p[0] for p in pairs], [p[1] for p in pairs]
    expected = [derivations._StudyDay(reference)(s, d) for s, d in pairs]
    got = derivations.days_of(subjects, dtcs, reference).tolist()
    assert [repr(v) for v in got] == [repr(v) for v in expected]
    assert all(v is None or type(v) is float for v in got)
    # the subjects as a table and each row's place in it (a lane block's way)
    table = list(dict.fromkeys(map(repr, subjects)))
    places = np.asarray([table.index(repr(s)) for s in subjects], dtype=np.intp)
    values = [next(s for s in subjects if repr(s) == text) for text in table]
    tabled = derivations.days_of(values, dtcs, reference, places).tolist()
    assert [repr(v) for v in tabled] == [repr(v) for v in expected]
    # each subject's start read from a table made once (a streaming worker's way)
    starts = derivations.start_ordinals(reference)
    for table, at in ((subjects, None), (values, places)):
        found = derivations.days_of(table, dtcs, reference, at, starts).tolist()
        assert [repr(v) for v in found] == [repr(v) for v in expected]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=6),
                          st.sampled_from(["a\x00", "a", "a\x00b", "\ud800", "", "é"])),
                max_size=60))
def test_text_ranks_order_texts_as_python_does(texts: list[Any]) -> None:
    distinct = sorted({text for text in texts if text is not None})
    expected = [len(distinct) if text is None else distinct.index(text) for text in texts]
    assert derivations._text_ranks(texts).tolist() == expected


TEXTS = st.one_of(st.none(), st.text(alphabet="ab09-:T \x00é", max_size=8),
                  st.sampled_from(["\ud800", "2020-01-10T08:00", "2020-01-10"]))


@settings(max_examples=600, deadline=None)
@given(st.one_of(st.lists(TEXTS, max_size=60),
                 st.lists(st.text(alphabet="abz09~-:T", max_size=30), max_size=40),
                 st.integers(0, 20).flatmap(lambda size: st.lists(
                     st.text(alphabet="ab09-:T\x00é", min_size=size, max_size=size),
                     max_size=40))))
def test_byte_ranks_order_texts_as_python_does_or_decline(texts: list[Any]) -> None:
    """Texts of many lengths, or all of one (read as rows of bytes); few enough kinds
    of byte at each place to be sorted as one number each, or too many."""
    found = derivations._byte_ranks(texts)
    plain = all(text is not None and text.isascii() and "\x00" not in text for text in texts)
    assert (found is not None) == plain
    if found is not None:
        ranks, longest, chars = found
        distinct = sorted(set(texts))
        assert ranks.tolist() == [distinct.index(text) for text in texts]
        assert longest == max(map(len, texts), default=0)
        # the characters as rows exactly when every text is of that length
        assert (chars is not None) == (bool(texts) and len(set(map(len, texts))) == 1)
        assert chars is None or [bytes(row).decode() for row in chars] == texts


@pytest.mark.parametrize("alphabet", ["0123456789-T:", "0123456789é", "01\x00"])
def test_text_ranks_of_a_long_column_of_rare_repeats(alphabet: str) -> None:
    # long enough, and varied enough, to be sorted as bytes where that is exact
    rng = np.random.default_rng(len(alphabet))
    texts: list[Any] = ["".join(rng.choice(list(alphabet), size=int(rng.integers(0, 12))))
                        for _ in range(3000)]
    distinct = sorted(set(texts))
    expected = [distinct.index(text) for text in texts]
    assert derivations._text_ranks(texts).tolist() == expected
    texts[7] = None                                   # None: after every text
    assert derivations._text_ranks(texts)[7] == len(set(texts) - {None})


def _tabled(values: list[Any]) -> derivations.Tabled:
    """``values`` as a table of their distinct values (told apart by repr, as 1 and 1.0
    and None and NaN are) and each row's place in it."""
    table = list(dict.fromkeys(map(repr, values)))
    places = np.asarray([table.index(repr(value)) for value in values], dtype=np.intp)
    return derivations.Tabled([next(v for v in values if repr(v) == text) for text in table],
                              places)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["S-1", "S-2", "S-10", "", None, 0]),
                          TEXTS, st.sampled_from(["GLUC", "ALB", None, 3.5])), max_size=40),
       st.booleans())
def test_sequence_order_of_tabled_columns_is_that_of_the_rows(
        rows: list[tuple[Any, Any, Any]], tabled_subjects: bool) -> None:
    subjects = [row[0] for row in rows]
    dates, codes = [row[1] for row in rows], [row[2] for row in rows]
    expected = derivations.sequence_order(subjects, [dates, codes], None, lambda i: i)
    got = derivations.sequence_order(
        _tabled(subjects) if tabled_subjects else subjects, [dates, _tabled(codes)], None,
        lambda i: i)
    assert got == expected


def test_dates_sorted_as_one_number_each() -> None:
    """The dates of an export (one length, a few digits that vary) are ranked through a
    number a date; a column of too many kinds of byte through its words."""
    dates = [f"20{20 + n % 5}-0{1 + n % 9}-{10 + n % 19}T0{n % 10}:{10 + n % 50}:00"
             for n in range(2000)]
    rows = np.frombuffer("".join(dates).encode(), dtype=np.uint8).reshape(2000, 19)
    assert derivations._packed_key(rows) is not None
    distinct = sorted(set(dates))
    ranks, longest, _ = derivations._byte_ranks(dates) or (None, None, None)
    assert ranks is not None and ranks.tolist() == [distinct.index(d) for d in dates]
    assert longest == 19
    wide = np.arange(256, dtype=np.uint8).repeat(9).reshape(256, 9)
    assert derivations._packed_key(wide) is None              # 9 places of 8 bits each
