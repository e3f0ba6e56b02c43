"""The fast lane's rows kept as columns (``LaneBlock``) are the rows it would make as
dicts: every column, the column facts, a bucket's share, and the finished dataset piece
(sorted, --SEQ numbered, typed, provenance) are the same either way."""

from __future__ import annotations

import math
import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhircdisc.column_values import ColumnValues, first_rows
from fhircdisc.converters import chunk, observation_batch, streaming
from fhircdisc.converters.chunk import StudyContext, block_stats, column_stats, convert_lines
from fhircdisc.converters.fhir_to_sdtm import COMPILED
from fhircdisc.converters.lane_block import (
    ABSENT,
    DERIVED_TEXT,
    Floats,
    JoinedTexts,
    LaneBlock,
    OneValue,
    derived_texts,
    gathered,
    joined,
    object_array,
)
from fhircdisc.converters.observation_lane import LineFailure, ObservationLane
from fhircdisc.mappings import derivations
from fhircdisc.mappings.compiled import PlainTemplate
from fhircdisc.study import tidy_columns, typed_frame
from tests.converters.test_observation_lines import (
    PULSE,
    dumps,
    lines,
    new_context,
    new_lane,
    panels,
    typical,
    usual_lines,
)

HIDDEN = ("_source", "_file", "_location", "_order")


@pytest.fixture(scope="module")
def lane(tmp_path_factory: pytest.TempPathFactory) -> ObservationLane:
    return new_lane(tmp_path_factory.mktemp("export"))   # visits of their own for some rows


def both_ways(lane: ObservationLane, batch: list[bytes], file: str = "f.ndjson",
              rank: int = 2, freeze: bool = True
              ) -> dict[str, tuple[LaneBlock, list[dict[str, Any]]]]:
    """Per domain: the lines the lane reads from text as a block (frozen unless told),
    and as row dicts (the lines of ``file``, the ``rank``-th file read)."""
    made: dict[str, tuple[LaneBlock, list[dict[str, Any]]]] = {}
    for number, line in enumerate(batch, 1):
        parts = lane.read_line(line)
        if parts is None or isinstance(parts, LineFailure):
            continue
        domain, template, subject, own, rid, visit = parts
        if domain not in made:
            made[domain] = (LaneBlock(COMPILED[domain], file, rank), [])
        block, rows = made[domain]
        source = lane.note(domain, rid, file, number, template.issues, [])
        block.add(template, subject, own, source, number, visit)
        row = COMPILED[domain].row_of(template, subject, own, visit)
        row.update(_source=source, _file=file, _location=f"line {number}",
                   _order=(rank, number, 0))
        rows.append(row)
    for block, _ in made.values():
        if freeze:
            block.freeze()
    return made


def same(a: Any, b: Any) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float)
                      and math.isnan(a) and math.isnan(b))


def assert_columns(block: LaneBlock, rows: list[dict[str, Any]]) -> None:
    assert len(block) == len(rows)
    for name in (*block.names, *HIDDEN):
        got = block.column(name).tolist()
        want = [row[name] for row in rows]
        assert all(map(same, got, want)), name
        assert block.has(name) and not any(value is ABSENT for value in got), name
    assert block.column("NOT_A_VARIABLE").tolist() == [ABSENT] * len(rows)
    assert not block.has("NOT_A_VARIABLE")
    assert [block.read_place(i) for i in range(len(rows))] == [
        (row["_order"], row["_location"]) for row in rows]


@settings(max_examples=200, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(lines(), min_size=1, max_size=30), st.randoms(use_true_random=False))
def test_block_columns_are_the_rows(lane: ObservationLane, batch: list[bytes],
                                    rng: Any) -> None:
    for block, rows in both_ways(lane, batch).values():
        assert_columns(block, rows)
        assert block_stats(block) == column_stats(rows)
        picked = sorted(rng.sample(range(len(rows)), rng.randint(0, len(rows))))
        part = block.take(np.asarray(picked, dtype=np.intp))
        assert_columns(part, [rows[i] for i in picked])
        assert block_stats(part) == column_stats([rows[i] for i in picked])
        assert_columns(pickle.loads(pickle.dumps(part)), [rows[i] for i in picked])


@settings(max_examples=150, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(lines(), max_size=12), min_size=1, max_size=4),
       st.randoms(use_true_random=False))
def test_blocks_gathered_are_their_rows_one_after_the_other(lane: ObservationLane,
                                                            batches: list[list[bytes]],
                                                            rng: Any) -> None:
    """The blocks of several files as one, frozen once: every column (file and read
    order per row), the column facts, any rows taken from it, pickled."""
    made = [both_ways(lane, batch, f"f{n % 3}.ndjson", n % 3, freeze=False)
            for n, batch in enumerate(batches)]
    for domain in sorted({domain for found in made for domain in found}):
        pieces = [found[domain] for found in made if domain in found]
        block = gathered([piece for piece, _ in pieces]).freeze()
        rows = [row for _, found in pieces for row in found]
        assert_columns(block, rows)
        assert block_stats(block) == column_stats(rows)
        picked = sorted(rng.sample(range(len(rows)), rng.randint(0, len(rows))))
        part = block.take(np.asarray(picked, dtype=np.intp))
        assert_columns(pickle.loads(pickle.dumps(part)), [rows[i] for i in picked])


@settings(max_examples=150, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(lines(), max_size=12), min_size=1, max_size=4),
       st.randoms(use_true_random=False))
def test_frozen_blocks_joined_are_their_rows_one_after_the_other(
        lane: ObservationLane, batches: list[list[bytes]], rng: Any) -> None:
    """A bucket's parts from several jobs (frozen, some of several files, some taken,
    some pickled) joined into one block: every column, read place and column fact of
    their rows in order; variables sharing an array of own values still share one."""
    parts, rows = [], []
    for n, batch in enumerate(batches):
        made = both_ways(lane, batch, f"f{n % 3}.ndjson", n % 3, freeze=n % 2 == 0)
        for block, found in made.values():
            if found and found[0]["DOMAIN"] == "LB":
                if n % 2:                    # a job of two files, gathered, then frozen
                    other = both_ways(lane, batch, "g.ndjson", 7, freeze=False)
                    extra = [o for o in other.values() if o[1][0]["DOMAIN"] == "LB"]
                    block = gathered([block, *(b for b, _ in extra)]).freeze()
                    found = found + [r for _, f in extra for r in f]
                picked = sorted(rng.sample(range(len(found)), rng.randint(0, len(found))))
                part = block.take(np.asarray(picked, dtype=np.intp))
                parts.append(pickle.loads(pickle.dumps(part)) if rng.random() < 0.5
                             else part)
                rows += [found[i] for i in picked]
    if not parts:
        return
    block = joined(parts)
    assert_columns(block, rows)
    if rows:
        assert block_stats(block) == column_stats(rows)
        assert block.own["LBORRES"] is block.own["LBSTRESC"]
    assert_columns(block.take(np.arange(len(rows))[::-1].copy()), rows[::-1])


def test_joined_blocks_keep_each_rows_visit_file_and_subject(lane: ObservationLane) -> None:
    """Parts whose tables differ (other visits, files, subjects, templates): each row of
    the joined block keeps its own."""
    first = [dumps(typical(n, encounter={"reference": "Encounter/e1"})) for n in (0, 1)]
    [(one, rows_one)] = both_ways(lane, first, "a.ndjson", 0).values()
    second = [dumps(typical(n, encounter={"reference": "Encounter/e2"}
                            if n % 2 else None)) for n in (2, 3, 4)]
    [(two, rows_two)] = both_ways(lane, second, "b.ndjson", 1, freeze=False).values()
    third = [dumps(typical(n, encounter={"reference": "Encounter/e1"})) for n in (5, 6)]
    [(three, rows_three)] = both_ways(lane, third, "c.ndjson", 2, freeze=False).values()
    block = joined([one, gathered([two, three]).freeze()])
    assert_columns(block, rows_one + rows_two + rows_three)
    assert block.column("VISITNUM").tolist() == [1.0, 1.0, None, 2.5, None, 1.0, 1.0]
    assert block.column("_file").tolist() == ["a.ndjson"] * 2 + ["b.ndjson"] * 3 + \
        ["c.ndjson"] * 2
    assert block.column("USUBJID").tolist() == [row["USUBJID"] for row in
                                                rows_one + rows_two + rows_three]


def test_gathered_blocks_keep_each_rows_visit_and_subject(lane: ObservationLane) -> None:
    """Files whose rows are at different encounters and of different subjects: each row
    of the gathered block keeps its own visit and subject."""
    first = [dumps(typical(n, encounter={"reference": "Encounter/e1"})) for n in (0, 1)]
    second = [dumps(typical(n, encounter={"reference": f"Encounter/e{3 - n % 2}"}))
              for n in (2, 3, 4)]
    [(one, rows_one)] = both_ways(lane, first, "a.ndjson", 0, freeze=False).values()
    [(two, rows_two)] = both_ways(lane, second, "b.ndjson", 1, freeze=False).values()
    block = gathered([one, two]).freeze()
    assert_columns(block, rows_one + rows_two)
    assert block.column("VISITNUM").tolist() == [1.0, 1.0, None, 2.5, None]
    assert block.column("_file").tolist() == ["a.ndjson"] * 2 + ["b.ndjson"] * 3


def test_block_of_typical_lines(lane: ObservationLane) -> None:
    batch = [dumps(typical(n)) for n in range(10)]
    batch[4] = dumps(typical(4, status="cancelled"))
    [(block, _)] = both_ways(lane, batch).values()
    assert len(block) == 10
    assert len(block.templates) == 1            # one test, unit, range and flag
    assert len(block.subjects["USUBJID"]) == 5
    assert block.column("LBSTAT").tolist() == [None] * 4 + ["NOT DONE"] + [None] * 5
    assert block.column("USUBJID").tolist()[:2] == ["S-p0000000", "S-p0000001"]
    assert block.column("_location").tolist()[-1] == "line 10"
    assert block.column("LBORRES").tolist() == ["101.5"] * 10


def test_finished_piece_is_the_same_from_block_or_rows(lane: ObservationLane) -> None:
    """``finish_bucket`` of a block (split over buckets) and of the same rows as dicts."""
    batch = [dumps(typical(n, effectiveDateTime=f"2021-05-{1 + n % 3:02d}T07:08:00Z"))
             for n in range(40)]
    batch += [dumps(typical(n, code={"coding": [{"system": "http://loinc.org",
                                                 "code": "8867-4"}]}))
              for n in range(7)]
    made = both_ways(lane, batch)
    for domain, (block, rows) in made.items():
        stats = column_stats(rows)
        present = {name for name, column in stats.items() if column.present}
        plan = streaming.DatasetPlan(
            columns={domain: tidy_columns(domain, list(stats), present)},
            all_columns={domain: [*stats, *derivations.HIDDEN]},
            numeric={domain: {n for n, c in stats.items() if c.present and c.numeric}},
            fixed_seq={domain: False}, validate=False)
        half = len(rows) // 2
        split = [block.take(np.arange(half)), block.take(np.arange(half, len(rows)))]
        from_block = streaming.finish_bucket(domain, split, plan)
        from_rows = streaming.finish_bucket(domain, [rows[:half], rows[half:]], plan)
        pd.testing.assert_frame_equal(from_block.frame, from_rows.frame)
        assert from_block.provenance == from_rows.provenance
        assert from_block.stats == from_rows.stats
        frame = from_block.frame
        for _, subject in frame.groupby("USUBJID", sort=False):
            assert subject[f"{domain}SEQ"].tolist() == [float(n) for n in
                                                        range(1, len(subject) + 1)]
        assert frame["USUBJID"].is_monotonic_increasing


@settings(max_examples=100, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(lines(), min_size=1, max_size=30), st.randoms(use_true_random=False))
def test_ordered_columns_and_their_codes_from_the_tables(lane: ObservationLane,
                                                         batch: list[bytes], rng: Any) -> None:
    """A column taken in sort order is the gathered column reordered; when every part
    holds it in a table, its codes group the rows exactly as coding the values would,
    and name only values some row takes."""
    for block, rows in both_ways(lane, batch).values():
        size = len(rows)
        half = rng.randint(0, size)
        at = np.asarray(rng.sample(range(size), size), dtype=np.intp)
        blocks = [block.take(np.arange(half)), block.take(np.arange(half, size))]
        for parts in (blocks, [blocks[0], rows[half:]]):
            all_blocks = all(isinstance(part, LaneBlock) for part in parts)
            for name in (*block.names, *HIDDEN):
                values, coded = streaming.ordered_column(parts, name, at)
                expected = streaming.gather(parts, [name])[name][at]
                assert all(map(same, values.tolist(), expected.tolist())), name
                tabled = all_blocks and name not in block.own and not name.startswith("_")
                assert (coded is not None) == tabled, name
                if coded is None:
                    continue
                reference = ColumnValues.of(pd.Series(values, dtype=object))
                assert coded.missing().tolist() == reference.missing().tolist()
                assert first_rows([coded], size).tolist() == \
                    first_rows([reference], size).tolist()
                assert sorted(set(coded.codes[coded.codes >= 0].tolist())) == \
                    list(range(len(coded.uniques)))


cells = st.one_of(st.none(), st.text(max_size=3), st.floats(allow_nan=True),
                  st.integers(-5, 5), st.booleans(), st.just(float("nan")))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.dictionaries(st.sampled_from(
    ["USUBJID", "LBTESTCD", "LBSTRESN", "LBORRES", "LBSEQ", "XXCUSTOM", "_source"]),
    cells, max_size=7), min_size=1, max_size=12))
def test_raw_columns_type_as_records_do(rows: list[dict[str, Any]]) -> None:
    """Columns gathered from rows and typed give what ``DataFrame.from_records`` of the
    rows gives: the typed frame, and the untyped columns exactly."""
    names = ["USUBJID", "LBTESTCD", "LBSTRESN", "LBORRES", "LBSEQ", "XXCUSTOM", "_source"]
    columns = streaming.gather([rows], names)
    exact = ("USUBJID", "LBSEQ", "_source")
    raw = streaming.raw_columns("LB", names, columns, exact=exact)
    records = pd.DataFrame.from_records(rows, columns=names)
    for name in (*exact, "XXCUSTOM"):
        pd.testing.assert_series_equal(raw[name], records[name])
    keep = names[:-1]
    pd.testing.assert_frame_equal(typed_frame("LB", raw, keep), typed_frame("LB", records, keep))


def test_templates_are_told_apart_after_the_lane_forgets_them(lane: ObservationLane) -> None:
    """A template the lane's cache lets go of while the block is built keeps its own
    number: a new template made at the same address is not taken for it."""
    domain, template, subject, own, _, _ = lane.read_line(dumps(typical(1)))
    block = LaneBlock(COMPILED[domain], "f.ndjson", 0)
    for n in range(50):
        made = PlainTemplate({**template.row, "LBTESTCD": f"T{n}"}, ())
        block.add(made, subject, own, f"Observation/o{n}", n + 1)
        del made
    block.freeze()
    assert block.column("LBTESTCD").tolist() == [f"T{n}" for n in range(50)]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(allow_nan=True), st.text(max_size=2),
                          st.integers(-3, 3), st.booleans(), st.just(np.float64(2.5)),
                          st.just(float("nan"))), max_size=8))
def test_facts_of_an_own_column_as_of_its_values(values: list[Any]) -> None:
    """A column of own values (texts, floats, anything) has the facts its values give."""
    column = object_array(values, len(values))
    assert chunk._own_stats(column) == chunk._column_stats(tuple(values))


def test_provenance_of_files_whose_names_need_quotes(lane: ObservationLane) -> None:
    """A bucket's provenance rows from one block are those of its rows as dicts, when the
    file names are plain and when one needs quotes in CSV."""
    batch = [dumps(typical(n)) for n in range(12)]
    for file in ("export/a.ndjson", 'export/b,"c".ndjson'):
        [(block, rows)] = both_ways(lane, batch, file).values()
        at = np.arange(len(rows))[::-1].copy()
        ordered = [rows[i] for i in at.tolist()]
        subjects = pd.Series([row["USUBJID"] for row in ordered], dtype=object)
        seqs = pd.Series([float(n) for n in range(len(rows))])
        sources = pd.Series([row["_source"] for row in ordered], dtype=object)
        got = streaming._provenance("LB", [block], at, subjects, seqs, sources, None)
        want = streaming._provenance("LB", [ordered], np.arange(len(rows)), subjects,
                                     seqs, sources, None)
        assert got == want
        assert got.decode().splitlines()[0].endswith(f"line {len(rows)}")


def test_a_pickled_block_keeps_its_texts_as_they_were(lane: ObservationLane) -> None:
    """Columns of texts travel joined into one text; one holding the separator, or
    something else than text, travels as it is; columns sharing an array still do."""
    [(block, rows)] = both_ways(lane, [dumps(typical(n)) for n in range(6)]).values()
    block.own["LBSTAT"] = object_array(["a\x00b", "", "c", "d", "e", "f"], 6)
    block.own["LBDTC"] = object_array(["x", None, "z", "", "", ""], 6)
    copy = pickle.loads(pickle.dumps(block))
    for name in ("LBSTAT", "LBDTC", "LBORRES", "_source"):
        assert copy.column(name).tolist() == block.column(name).tolist(), name
    # result numbers travel as float64 when none is missing (-0.0 kept), else as they are
    for numbers in ([1.5, -0.0, 3.0, 1e300, 2.0, 0.5], [1.5, None, 3.0, 4.0, 5.0, 6.0]):
        block.own["LBSTRESN"] = object_array(numbers, 6)
        state = block.__getstate__()
        assert isinstance(state["own"]["LBSTRESN"], Floats) == (None not in numbers)
        column = pickle.loads(pickle.dumps(block)).column("LBSTRESN")
        assert column.dtype == (np.float64 if None not in numbers else object)
        got = column.tolist()
        assert [(type(n), repr(n)) for n in got] == [(type(n), repr(n)) for n in numbers]
    assert copy.column("LBORRES").tolist() == [row["LBORRES"] for row in rows]
    assert copy.own["LBORRES"] is copy.own["LBSTRESC"]
    state = block.__getstate__()
    assert isinstance(state["own"]["LBORRES"], JoinedTexts)
    assert isinstance(state["sources"], JoinedTexts)
    assert state["own"]["LBSTAT"] is block.own["LBSTAT"]


def test_codes_leave_out_the_values_no_row_takes() -> None:
    # table entries coded a, c, missing, c, b: the last one taken by no row
    taken = np.array([True, True, True, True, False])
    codes, uniques = streaming._used(np.array([0, 2, -1, 2, 1]), ["a", "b", "c"], taken)
    assert codes[taken].tolist() == [0, 1, -1, 1]     # an entry no row takes: any code
    assert uniques == ["a", "c"]
    codes, uniques = streaming._used(np.array([1, 0]), ["a", "b"], np.array([True, True]))
    assert (codes.tolist(), uniques) == ([1, 0], ["a", "b"])


def test_only_unfrozen_blocks_of_one_file_are_gathered(lane: ObservationLane) -> None:
    [(frozen, _)] = both_ways(lane, [dumps(typical(0))]).values()
    [(fresh, _)] = both_ways(lane, [dumps(typical(1))], freeze=False).values()
    with pytest.raises(ValueError, match="not frozen"):
        gathered([fresh, frozen])


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> StudyContext:
    return new_context(tmp_path_factory.mktemp("chunk"))


def read_one_by_one(lane: ObservationLane, lines_read: list[bytes]
                    ) -> dict[str, list[dict[str, Any]]]:
    """Per domain, in the order their first rows come: the rows ``read_line`` or
    ``read_panel`` reads of each line (of "f.ndjson", the third file read)."""
    expected: dict[str, list[dict[str, Any]]] = {}
    for number, line in enumerate(lines_read, 1):
        parts = lane.read_line(line)
        if parts is None and b'"component"' in line:
            panel = lane.read_panel(line)
            found = [] if panel is None or isinstance(panel, LineFailure) else panel
        else:
            found = [] if parts is None or isinstance(parts, LineFailure) \
                else [(*parts, -1)]
        for domain, template, subject, own, rid, visit, part in found:
            row = COMPILED[domain].row_of(template, subject, own, visit)
            row.update(_source=lane.note(domain, rid, "f.ndjson", number, template.issues,
                                         []),
                       _file="f.ndjson", _order=(2, number, 0),
                       _location=f"line {number}" + (f".component[{part}]" if part >= 0
                                                     else ""))
            expected.setdefault(domain, []).append(row)
    return expected


def assert_chunk_blocks(context: StudyContext, lines_read: list[bytes]) -> None:
    """The blocks ``convert_lines`` makes of ``lines_read`` hold the rows read one by one,
    in order, the blocks made in the order their first rows come."""
    result = convert_lines(list(enumerate(lines_read, 1)), "f.ndjson", 2, context,
                           finish=False)
    assert context.lane is not None
    expected = read_one_by_one(context.lane, lines_read)
    assert list(result.blocks) == list(expected)
    for domain, block in result.blocks.items():
        rows = expected[domain]
        block.freeze()
        # the facts before the result texts are made (DERIVED_TEXT), a pickled copy (the
        # spill's), and the texts as codes in another order
        assert block_stats(block) == column_stats(rows)
        copy = pickle.loads(pickle.dumps(block))
        assert_columns(block, rows)
        assert_columns(copy, rows)
        backwards = np.arange(len(rows))[::-1]
        for name in copy.text_vars:
            coded = copy.coded_texts(name, backwards)
            if coded is not None:
                assert [coded.uniques[code] for code in coded.codes.tolist()] == [
                    rows[at][name] for at in backwards.tolist()]
                assert len(set(coded.uniques)) == len(coded.uniques)


@settings(max_examples=150, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(lines() | usual_lines() | usual_lines() | panels(), min_size=1,
                max_size=30), st.integers(1, 8), st.integers(1, 8))
def test_a_chunk_s_blocks_are_its_lines_read_one_by_one(
        monkeypatch: pytest.MonkeyPatch, context: StudyContext, batch: list[bytes],
        size: int, decoded: int) -> None:
    """The blocks ``convert_lines`` makes, a batch of lines at a time (a line of a batch
    either read with the others or, in its place, on its own), hold the rows of every
    line ``read_line`` or ``read_panel`` reads, in order: each line twice, the second
    time from warm caches, in batches of any size, decoded in parts of any size."""
    monkeypatch.setattr(observation_batch, "BATCH_LINES", size)
    monkeypatch.setattr(observation_batch, "DECODE_LINES", decoded)
    assert_chunk_blocks(context, batch + batch)


def test_a_batch_s_result_texts_are_made_once_per_number(context: StudyContext) -> None:
    """Typical lines read as a batch leave their result texts to make: the block holds
    :data:`DERIVED_TEXT` until a column is asked for, then each distinct number's text
    (whole numbers without ``.0``; 0 and -0 alike), the column as codes into them."""
    values = [101.5, 7.0, 101.5, 0.0, -0.0, 1e-05, 7]
    batch = [dumps(typical(n, id=f"t{n}", valueQuantity={
        "value": value, "unit": "mg/dL", "system": "http://unitsofmeasure.org",
        "code": "mg/dL"})) for n, value in enumerate(values)]
    result = convert_lines(list(enumerate(batch * 2, 1)), "f.ndjson", 2, context)
    block = result.blocks["LB"]
    assert block.derived and block.own["LBORRES"].tolist()[-7:] == [DERIVED_TEXT] * 7
    state = block.__getstate__()
    assert state["own"]["LBORRES"] == OneValue(DERIVED_TEXT, 14)
    assert isinstance(state["own"]["LBSTRESN"], Floats)
    assert state["own"]["LBSTAT"] == OneValue(None, 14)
    copy = pickle.loads(pickle.dumps(block))
    texts = ["101.5", "7", "101.5", "0", "0", "1e-05", "7"] * 2
    assert copy.column("LBSTRESC").tolist() == texts
    assert copy.own["LBORRES"] is copy.own["LBSTRESC"] and not copy.derived
    coded = copy.coded_texts("LBORRES", np.arange(14))
    assert coded is not None and sorted(coded.uniques) == ["0", "101.5", "1e-05", "7"]
    # a bucket of this block alone gets the column in order and its codes together
    backwards = np.arange(14)[::-1]
    values, in_order = streaming.ordered_column([copy], "LBSTRESC", backwards)
    assert values.tolist() == texts[::-1] and in_order is not None
    assert [in_order.uniques[c] for c in in_order.codes.tolist()] == texts[::-1]
    assert [coded.uniques[code] for code in coded.codes.tolist()] == texts
    # a part taken from it keeps no codes of other rows; parts joined (as a bucket's,
    # from the spills) make them for all their rows; with texts made before, for none
    part = copy.take(np.array([1, 0]))
    assert part.coded_texts("LBORRES", np.arange(2)) is None
    assert part.column("LBORRES").tolist() == ["7", "101.5"]
    both = joined([pickle.loads(pickle.dumps(block)) for _ in range(2)])
    coded = both.coded_texts("LBSTRESC", np.array([27, 0]))
    assert coded is not None and [coded.uniques[c] for c in coded.codes] == ["7", "101.5"]
    mixed = joined([pickle.loads(pickle.dumps(block)), copy])
    assert mixed.coded_texts("LBSTRESC", np.arange(28)) is None
    assert mixed.column("LBSTRESC").tolist() == texts * 2


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.floats(allow_nan=False, allow_infinity=False),
                          st.integers(-10**6, 10**6).map(float),
                          st.sampled_from([0.0, -0.0, 1e15, 1e16, 1e-05, 0.1])),
                min_size=2, max_size=30))
def test_result_texts_made_from_numbers_read_back_as_them(numbers: list[float]) -> None:
    """The texts a block makes from its numbers are distinct per distinct number, and the
    number each writes (what the conformance check reads: ``text_numbers``) is the one it
    was made from, as parsing the text gives it."""
    from fhircdisc.schemas.conformance.checks.terminology import text_numbers

    texts = object_array([DERIVED_TEXT] * len(numbers), len(numbers))
    made, coded = derived_texts(texts, object_array(numbers, len(numbers)))
    assert coded is not None and coded.numbers is not None
    assert len(set(coded.uniques)) == len(coded.uniques)
    parsed = text_numbers(ColumnValues(coded.codes, coded.uniques))
    assert text_numbers(coded).tolist() == parsed.tolist() == [n + 0.0 for n in numbers]
    assert made.tolist() == [coded.uniques[c] for c in coded.codes.tolist()]


@pytest.mark.parametrize(("size", "decoded"), [(1, 1), (3, 2), (4, 4), (1024, 3),
                                               (1024, 256)])
def test_panels_among_a_batch_keep_their_places(monkeypatch: pytest.MonkeyPatch,
                                                context: StudyContext, size: int,
                                                decoded: int) -> None:
    """Panels (read on their own) among lab results and pulses (read as a batch): each
    domain's rows in line order, a panel's components in order."""
    from tests.converters.test_streaming import _panel

    monkeypatch.setattr(observation_batch, "BATCH_LINES", size)
    monkeypatch.setattr(observation_batch, "DECODE_LINES", decoded)
    lab = [dumps(typical(n, id=f"l{n}")) for n in range(3)]
    pulse = dumps(typical(4, id="v4", **PULSE))
    panel = dumps(_panel("bp1", subject={"reference": "Patient/p0000002"}))
    assert_chunk_blocks(context, [lab[0], panel, lab[1], pulse, panel, lab[2]] * 2)
    assert_chunk_blocks(context, [panel, lab[0], lab[1], panel])


def test_a_num_column_of_floats_goes_into_the_frame_as_float64() -> None:
    """The result numbers come out of a spill as float64: the bucket's frame keeps them
    so for a Num variable (typed as the object column of the same floats would be), and
    a Char variable or a column of other values is an object column as before."""
    from fhircdisc.study import typed_frame

    floats = np.array([1.5, -0.0, 3.0])
    columns = {"LBSTRESN": floats, "LBORRES": floats.copy(),
               "LBSTNRLO": object_array([1.0, None, 2.5], 3)}
    frame = streaming.raw_columns("LB", list(columns), columns, exact=())
    assert [str(frame[name].dtype) for name in columns] == ["float64", "object", "object"]
    typed = typed_frame("LB", frame, list(columns))
    as_objects = typed_frame("LB", pd.DataFrame(
        {name: pd.Series(values, dtype=object) for name, values in columns.items()}),
        list(columns))
    pd.testing.assert_frame_equal(typed, as_objects)
    assert [repr(v) for v in typed["LBSTRESN"].tolist()] == ["1.5", "-0.0", "3.0"]
