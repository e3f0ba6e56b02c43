"""Column codes: packing a finished frame for another process gives the same frame back."""

from __future__ import annotations

import math
import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fhircdisc.column_values import ColumnValues, PackedFrame, pack_frame

_TEXT = st.one_of(st.sampled_from(["GLUC", "mg/dL", "", " ", "N"]), st.text(max_size=4))


def _same_cells(left: pd.Series, right: pd.Series) -> bool:
    for a, b in zip(left.tolist(), right.tolist(), strict=True):
        if isinstance(a, float) and math.isnan(a):
            if not (isinstance(b, float) and math.isnan(b)):
                return False
        elif a is None:
            if b is not None:
                return False
        elif type(a) is not type(b) or a != b:
            return False
    return True


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_TEXT | st.none(), _TEXT | st.just(math.nan),
                          st.floats(allow_nan=True), _TEXT | st.none() | st.just(math.nan)),
                max_size=40))
def test_a_packed_frame_unpacks_to_the_same_cells_and_types(rows: list[tuple[Any, ...]]
                                                            ) -> None:
    frame = pd.DataFrame({"TESTCD": pd.Series([r[0] for r in rows], dtype=object),
                          "ORRES": pd.Series([r[1] for r in rows], dtype=object),
                          "STRESN": pd.Series([r[2] for r in rows], dtype="float64"),
                          "MIXED": pd.Series([r[3] for r in rows], dtype=object)})
    coded = {name: ColumnValues.of(frame[name]) for name in frame.columns}
    packed = pack_frame(frame, coded)
    assert packed is not None
    back = pickle.loads(pickle.dumps(packed)).frame()
    assert list(back.columns) == list(frame.columns)
    assert back.dtypes.tolist() == frame.dtypes.tolist()
    for name in frame.columns:
        assert _same_cells(frame[name], back[name]), name
    mixed = frame["MIXED"].tolist()
    both_missing = any(v is None for v in mixed) and any(
        isinstance(v, float) and math.isnan(v) for v in mixed)
    # a column holding both None and NaN is kept as it is, not coded
    assert isinstance(packed.columns[3], pd.Series) == both_missing


def test_codes_are_as_narrow_as_the_distinct_values_allow() -> None:
    frame = pd.DataFrame({"FEW": pd.Series(["A", "B"] * 500, dtype=object),
                          "MANY": pd.Series([f"v{i}" for i in range(1000)], dtype=object)})
    packed = pack_frame(frame, {name: ColumnValues.of(frame[name]) for name in frame})
    assert packed is not None
    assert [column.codes.dtype for column in packed.columns] == [np.int8, np.int16]
    assert len(pickle.dumps(packed.columns[0])) < len(pickle.dumps(frame["FEW"])) / 2


def test_frames_that_do_not_lend_themselves_are_not_packed() -> None:
    frame = pd.DataFrame({"A": pd.Series(["x", "y"], dtype=object)}, index=[5, 6])
    assert pack_frame(frame, {"A": ColumnValues.of(frame["A"])}) is None
    assert isinstance(pack_frame(frame.reset_index(drop=True), {}), PackedFrame)


def test_unpacked_codes_are_the_packed_ones_at_full_width() -> None:
    frame = pd.DataFrame({"A": pd.Series(["x", None, "y", "x"], dtype=object),
                          "N": pd.Series([1.0, 2.0, 1.0, math.nan])})
    coded = {name: ColumnValues.of(frame[name]) for name in frame.columns}
    packed = pickle.loads(pickle.dumps(pack_frame(frame, coded)))
    back = packed.column_values()
    for name in frame.columns:
        assert back[name].codes.dtype == np.intp
        assert back[name].codes.tolist() == coded[name].codes.tolist()
        assert back[name].uniques == coded[name].uniques


def test_unhashable_cells_are_each_a_value_and_missing_ones_none() -> None:
    values = ColumnValues.of(pd.Series([["a"], None, ["a"], math.nan], dtype=object))
    assert values.codes.tolist() == [0, -1, 1, -1]
    assert values.uniques == [["a"], ["a"]]


def test_the_value_set_holds_the_hashable_values_and_is_made_once() -> None:
    values = ColumnValues.of(pd.Series(["S-2", None, "S-1", "S-2", math.nan], dtype=object))
    assert values.value_set == {"S-1", "S-2"}
    assert values.value_set is values.value_set
    mixed = ColumnValues.of(pd.Series([["a"], "S-1", None], dtype=object))
    assert mixed.value_set == {"S-1"}
    assert mixed.isin(mixed.value_set).tolist() == [False, True, False]


def test_texts_are_given_only_for_all_text_columns_of_that_length() -> None:
    text = ColumnValues.of(pd.Series(["b", None, "a", "b"], dtype=object))
    assert text.texts(4) == ["b", "a"]
    assert text.texts(3) is None
    assert ColumnValues.of(pd.Series(["a", 1], dtype=object)).texts(2) is None
    assert ColumnValues.of(pd.Series([None, None], dtype=object)).texts(2) == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), _TEXT), max_size=40), st.randoms())
def test_codes_from_sort_ranks_describe_the_column_in_that_order(values: list[Any],
                                                                  rng: Any) -> None:
    from fhircdisc.mappings.derivations import _text_ranks

    order = np.arange(len(values))
    rng.shuffle(order)
    found = ColumnValues.of_ranks(values, _text_ranks(values), order)
    column = [values[i] for i in order.tolist()]
    assert [None if code < 0 else found.uniques[code] for code in found.codes.tolist()] \
        == column
    assert sorted(found.uniques) == sorted({value for value in values if value is not None})
    assert len(found.codes) == len(column)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), _TEXT, st.sampled_from(["é", "a\x00b", "x" * 201])),
                max_size=12))
def test_the_facts_of_the_distinct_texts_are_those_of_the_values(values: list[Any]) -> None:
    """The longest text, ASCII-ness and NUL of a column, found once from its distinct
    values, are those of its values."""
    texts = [value for value in values if value is not None]
    facts = ColumnValues.of(pd.Series(values, dtype=object)).text_facts
    assert facts.longest == max(map(len, texts), default=0)
    assert facts.ascii == all(text.isascii() for text in texts)
    assert facts.nul == any("\x00" in text for text in texts)


@pytest.mark.parametrize(("alphabet", "lengths", "missing"), [
    ("0123456789-T:", (19, 20), False),      # dates: one length
    ("0123456789-T:", (4, 19), False),       # partial and full dates
    ("0123456789-T:", (19, 20), True),       # a None among them: not ranked by bytes
    ("0123456789é", (3, 9), False),          # not ASCII: not ranked by bytes
    ("01\x00", (5, 9), False),               # a NUL: not ranked by bytes
])
def test_codes_from_byte_ranks_carry_the_facts_of_their_texts(
        alphabet: str, lengths: tuple[int, int], missing: bool) -> None:
    """A long column of rarely repeated texts is ranked by its bytes; the codes made
    from those ranks carry the texts' facts found on the way, equal to what finding them
    from the distinct texts gives."""
    from fhircdisc.mappings.derivations import _ranks_and_facts

    rng = np.random.default_rng(lengths[0])
    values: list[Any] = ["".join(rng.choice(list(alphabet), size=int(rng.integers(*lengths))))
                         for _ in range(3000)]
    if missing:
        values[11] = None
    ranks, found = _ranks_and_facts(values)
    order = rng.permutation(len(values))
    carried = ColumnValues.of_ranks(values, ranks, order, *(found or (None, None)))
    fresh = ColumnValues.of_ranks(values, ranks, order)
    assert (found is not None) == (alphabet.isascii() and "\x00" not in alphabet
                                   and not missing)
    assert carried.all_text == fresh.all_text
    assert carried.text_facts == fresh.text_facts
    if found is not None:
        assert found.facts.longest == max(map(len, values))
        # the characters as rows beside the distinct texts, when all are of one length
        one_length = len(set(map(len, values))) == 1
        assert (carried.chars is not None) == one_length
        assert carried.chars is None or \
            [bytes(row).decode() for row in carried.chars] == carried.uniques
