"""Report items kept on disk in sorted runs: merged back they are the items a stable sort
of them all would give, and the report file written from them has the bytes of the one
written from lists."""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import asdict
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fhircdisc import report_runs, streamed_json
from fhircdisc.mappings.spec import Unmapped
from fhircdisc.report import (
    ConversionReport,
    FailedLines,
    UnmappedItem,
    ValueIssueItem,
    issue_order,
    unmapped_item_text,
    unmapped_order,
)
from fhircdisc.report_runs import ItemRuns
from fhircdisc.streamed_json import write_streamed

# few files, places and reasons: many items tie on their sort key
_UNMAPPED = st.builds(
    UnmappedItem, st.sampled_from(["Observation", "Patient"]),
    st.sampled_from(["Observation/o1", "Observation/o2", "Patient/p\u00e9"]),
    st.sampled_from(["a.ndjson", "b.ndjson", "b10.json", "b9.json"]),
    st.sampled_from(["line 2", "line 10", "line 9", "$.entry[3]", "$.entry[12]"]),
    st.sampled_from(["unknown-code", "missing-subject", "invalid-element"]),
    st.text(max_size=12), st.none() | st.text(max_size=5))
_ISSUES = st.builds(
    ValueIssueItem, st.sampled_from(["LB", "VS", "DM", "QS"]),
    st.sampled_from(["Observation/o2", "Observation/o10", "Observation@a [line 3]"]),
    st.sampled_from(["LBORRESU", "VSORRESU"]), st.just("unknown-unit"),
    st.text(max_size=12))
_NUMBERS = st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
_SHARES = st.lists(st.tuples(st.lists(_UNMAPPED, max_size=12), st.lists(_ISSUES, max_size=8)),
                   max_size=8)


def _in_memory(shares: list[tuple[list[Any], list[Any]]]) -> ConversionReport:
    rep = ConversionReport(sources=["a.ndjson"], enrolment="all")
    for unmapped, issues in shares:
        rep.add_items(unmapped, issues)
    rep.sort_items()
    return rep


@settings(max_examples=60, deadline=None)
@given(_SHARES)
def test_runs_merge_into_the_order_and_counts_of_a_stable_sort(
        tmp_path_factory: pytest.TempPathFactory,
        shares: list[tuple[list[UnmappedItem], list[ValueIssueItem]]]) -> None:
    runs = ItemRuns(tmp_path_factory.mktemp("runs"), unmapped_order, issue_order)
    for unmapped, issues in shares:
        runs.add(unmapped, issues)
    _assert_as_in_memory(runs, shares)


def _assert_as_in_memory(runs: ItemRuns,
                         shares: list[tuple[list[UnmappedItem], list[ValueIssueItem]]]
                         ) -> None:
    """The runs give the items, order and counts of a report that held every share."""
    memory = _in_memory(shares)
    assert list(runs.unmapped()) == [asdict(item) for item in memory.unmapped]
    assert list(runs.value_issues()) == [asdict(item) for item in memory.value_issues]
    assert runs.issues == len(memory.value_issues)
    # the reasons in the order the report lists them: ties by their first item
    assert list(runs.reasons.most_common()) == Counter(
        item.reason_code for item in memory.unmapped).most_common()


@settings(max_examples=40, deadline=None)
@given(_SHARES, st.booleans())
def test_a_report_kept_on_disk_writes_the_same_file(
        tmp_path_factory: pytest.TempPathFactory,
        shares: list[tuple[list[UnmappedItem], list[ValueIssueItem]]], validation: bool
        ) -> None:
    memory = _in_memory(shares)
    on_disk = ConversionReport(sources=["a.ndjson"], enrolment="all")
    on_disk.keep_items_on_disk(tmp_path_factory.mktemp("items"))
    for unmapped, issues in shares:
        on_disk.add_items(unmapped, issues)
    assert on_disk.unmapped == [] and on_disk.value_issues == []
    assert on_disk.reasons() == memory.reasons()
    assert on_disk.issue_count == len(memory.value_issues)
    expected = memory.to_dict(objects=True)
    document = on_disk.to_dict(objects=True, lazy=True)
    if validation:                              # a key after the streamed ones
        expected["validation"] = document["validation"] = {"findings": [{"row": 1}]}
    written = io.BytesIO()
    write_streamed(written, document, {key: document[key]
                                       for key in ("unmapped", "value_issues")})
    assert written.getvalue() == orjson.dumps(expected, option=orjson.OPT_INDENT_2)


def test_items_already_in_the_report_go_first(tmp_path: Path) -> None:
    first = UnmappedItem("Patient", "Patient/p", "a.ndjson", "line 2", "unknown-code", "m")
    tied = UnmappedItem("Patient", "Patient/q", "a.ndjson", "line 2", "missing-subject", "m")
    rep = ConversionReport()
    rep.unmapped.append(first)
    rep.keep_items_on_disk(tmp_path / "items")
    rep.add_items([tied], [])
    assert [item["resource"] for item in rep.to_dict(objects=True)["unmapped"]] == \
        ["Patient/p", "Patient/q"]
    assert list(rep.reasons()) == ["unknown-code", "missing-subject"]


def test_many_runs_are_merged_without_holding_their_files_open(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_runs, "BATCH", 3)
    runs = ItemRuns(tmp_path, unmapped_order, issue_order)
    for share in range(1200):                  # more runs than a process may open files
        runs.add([UnmappedItem("Observation", f"Observation/o{share}-{n}", "a.ndjson",
                               f"line {share * 10 + n}", "unknown-code", "m")
                  for n in range(7)], [])
    merged = list(runs.unmapped())
    assert len(merged) == 8400
    assert [item["location"] for item in merged[:3]] == ["line 0", "line 1", "line 2"]
    assert merged[-1]["location"] == "line 11996"


def test_items_written_out_are_only_counted(tmp_path: Path) -> None:
    rep = ConversionReport()
    rep.keep_items_on_disk(tmp_path)
    rep.add_items([UnmappedItem("Observation", "Observation/o", "a", "line 1",
                                "unknown-code", "m")],
                  [ValueIssueItem("LB", "Observation/p", "LBORRESU", "unknown-unit", "m")])
    rep.items_written()
    assert rep.reasons() == {"unknown-code": 1} and rep.issue_count == 1
    with pytest.raises(RuntimeError, match="written to its file"):
        rep.to_dict()


@settings(max_examples=30, deadline=None)
@given(st.lists(st.dictionaries(st.text(max_size=4), _NUMBERS | st.text(max_size=6)
                                | st.lists(_NUMBERS, max_size=3), max_size=3),
                max_size=9),
       st.integers(min_value=1, max_value=4))
def test_streamed_lists_are_orjsons_bytes_whatever_the_batches(
        items: list[dict[str, Any]], batch: int) -> None:
    document = {"head": {"a": [1, 2]}, "items": items, "empty": [], "tail": "x\ny"}
    written = io.BytesIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(streamed_json, "_BATCH", batch)
        write_streamed(written, {**document, "items": iter(items), "empty": iter(())},
                       {"items": iter(items), "empty": iter(())})
    assert written.getvalue() == orjson.dumps(document, option=orjson.OPT_INDENT_2)


def test_a_streamed_key_must_name_a_key_of_the_document() -> None:
    with pytest.raises(ValueError, match="'items' is not a key"):
        write_streamed(io.BytesIO(), {"outer": {"items": []}}, {"items": iter(())})
    with pytest.raises(ValueError, match="'outer' is not an object"):
        write_streamed(io.BytesIO(), {"outer": []}, {("outer", "items"): iter(())})


_JSON = st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
                     | st.text(max_size=6),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=8)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=4), min_size=1, max_size=4, unique=True),
       st.lists(_JSON, max_size=7), st.dictionaries(st.text(max_size=3), _JSON, max_size=3),
       st.integers(1, 3))
def test_a_nested_list_streams_into_the_bytes_orjson_writes(
        path: list[str], items: list[Any], beside: dict[str, Any], batch: int) -> None:
    document: dict[str, Any] = dict(beside)
    at = document
    for name in path[:-1]:
        at[name] = at = {}
    at[path[-1]] = items
    streamed_json._BATCH = batch
    try:
        written = io.BytesIO()
        write_streamed(written, document, {tuple(path): iter(items)})
    finally:
        streamed_json._BATCH = 2_000
    assert written.getvalue() == orjson.dumps(document, option=orjson.OPT_INDENT_2)


@given(st.lists(_UNMAPPED, max_size=5), st.lists(_ISSUES, max_size=5))
def test_items_pickle_as_their_values(unmapped: list[UnmappedItem],
                                      issues: list[ValueIssueItem]) -> None:
    """Items travel between processes pickled as their values: they come back equal."""
    import pickle

    back = pickle.loads(pickle.dumps((unmapped, issues), protocol=pickle.HIGHEST_PROTOCOL))
    assert back == (unmapped, issues)
    assert [hash(item) for item in back[0]] == [hash(item) for item in unmapped]


@settings(max_examples=40, deadline=None)
@given(_SHARES)
def test_shares_written_elsewhere_and_adopted_in_order_merge_the_same(
        tmp_path_factory: pytest.TempPathFactory,
        shares: list[tuple[list[UnmappedItem], list[ValueIssueItem]]]) -> None:
    """Worker processes write their shares' runs (in any order); the report adopts them
    in share order, between shares it writes itself: the same items, order and counts."""
    runs = ItemRuns(tmp_path_factory.mktemp("runs"), unmapped_order, issue_order)
    written = {number: runs.write_share(f"t{number}", *share)
               for number, share in reversed(list(enumerate(shares))) if number % 2}
    for number, (unmapped, issues) in enumerate(shares):
        if number % 2:
            runs.adopt(written[number])
        else:
            runs.add(unmapped, issues)
    _assert_as_in_memory(runs, shares)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.tuples(st.integers(0, 9), st.sampled_from(
    ["unknown-code", "missing-subject"])), max_size=6), max_size=6),
    st.lists(_UNMAPPED, max_size=4), st.booleans())
def test_runs_of_consecutive_line_ranges_chain_and_merge_the_same(
        tmp_path_factory: pytest.TempPathFactory, chunks: list[list[tuple[int, str]]],
        early: list[UnmappedItem], touching: bool) -> None:
    """Chunks of one file read in order give runs that follow each other: they are read
    as one chain, not merged item by item, with the order and ties a merge gives; an
    earlier share that overlaps them (pass 1's items) still merges in."""
    from fhircdisc.report_runs import _chains

    shares: list[tuple[list[UnmappedItem], list[ValueIssueItem]]] = [(early, [])]
    for number, chunk in enumerate(chunks):
        base = number * (9 if touching else 10)        # touching: a line in two chunks
        shares.append(([UnmappedItem("Observation", f"Observation/o{base + line}",
                                     "b.ndjson", f"line {base + line}", reason, "m")
                        for line, reason in chunk], []))
    runs = ItemRuns(tmp_path_factory.mktemp("runs"), unmapped_order, issue_order)
    for unmapped, issues in shares:
        runs.add(unmapped, issues)
    _assert_as_in_memory(runs, shares)
    chunk_runs = sum(1 for chunk in chunks if chunk)
    if not early and chunk_runs:
        assert len(_chains(runs.paths["unmapped"], runs.bounds["unmapped"])) == 1


@given(st.text(max_size=12), st.one_of(
    st.text(max_size=12), st.builds(lambda tail: "line " + tail, st.text(max_size=6)),
    st.builds(lambda n: f"line {n}", st.integers(0, 10**12)),
    st.sampled_from(["line 007", "line \u0661\u0662", "line 1\u00b2", "line ",
                     "line 3.component[0]"])))
def test_the_unmapped_order_is_the_natural_order_of_file_and_place(file: str, place: str
                                                                   ) -> None:
    """The key sorting unmapped items (with its shortcuts for a chunk's file and for
    ``line N``) is the natural order of their file, then of their place."""
    from fhircdisc.report import _natural

    item = UnmappedItem("Observation", "Observation/o", file, place, "unknown-code", "m")
    assert unmapped_order(item) == (_natural(file), _natural(place))


def test_a_digit_the_pattern_does_not_take_sorts_as_text() -> None:
    from fhircdisc.report import _natural

    assert _natural("note²") == ("note²",)
    assert _natural("line 12.component[3]") == ("line ", 12, ".component[", 3, "]")


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(st.integers(0, 12), max_size=5).map(sorted), min_size=1,
                max_size=7))
def test_runs_read_in_groups_are_the_stable_merge(
        tmp_path_factory: pytest.TempPathFactory, runs: list[list[int]]) -> None:
    """Runs (sorted keys, in arrival order) read group by group, merging only inside a
    group, give a stable sort of all their rows: ties in arrival order."""
    from fhircdisc.report_runs import _chains, _groups, _merge, write_run

    folder = tmp_path_factory.mktemp("runs")
    paths, bounds = [], []
    for number, keys in enumerate(run for run in runs if run):
        path = folder / f"{number}.pkl"
        write_run(path, [(key, (number, place)) for place, key in enumerate(keys)])
        paths.append(path)
        bounds.append((keys[0], keys[-1]))
    groups = _groups(_chains(paths, bounds))
    read = [row for group in groups for row in _merge(group)]
    rows = [(key, (number, place)) for number, keys in enumerate(run for run in runs if run)
            for place, key in enumerate(keys)]
    assert read == sorted(rows, key=lambda row: row[0])
    for before, after in pairwise(groups):         # groups do not overlap
        assert max(link.last for link in before) <= min(link.first for link in after)


def test_files_read_in_any_order_are_not_merged_item_by_item(tmp_path: Path) -> None:
    """Items of a later file that arrived first (pass 1's, of the Patients) and the chunks
    of earlier files: each is a group of its own, read straight through."""
    from fhircdisc.report_runs import _chains, _groups

    def item(file: str, line: int) -> UnmappedItem:
        return UnmappedItem("Observation", f"Observation/{file}{line}", file, f"line {line}",
                            "subject-not-enrolled", "m")

    shares = [([item("Patient.ndjson", line) for line in (2, 5)], [])]
    shares += [([item(file, line) for line in range(start, start + 3)], [])
               for file in ("Observation.000.ndjson", "Observation.001.ndjson")
               for start in (1, 4, 7)]
    runs = ItemRuns(tmp_path, unmapped_order, issue_order)
    for unmapped, issues in shares:
        runs.add(unmapped, issues)
    groups = _groups(_chains(runs.paths["unmapped"], runs.bounds["unmapped"]))
    assert [len(group) for group in groups] == [1, 1]      # a chain for the Observations
    _assert_as_in_memory(runs, shares)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=4), min_size=1, max_size=3, unique=True),
       st.lists(_JSON, max_size=6))
def test_items_written_ahead_stream_into_the_bytes_orjson_writes(path: list[str],
                                                                 items: list[Any]) -> None:
    """Items given as fragments of their ``list_item_text`` (written by a worker) come
    out as orjson writes the items themselves, however deep the list is."""
    document: dict[str, Any] = {"before": 1}
    at = document
    for name in path[:-1]:
        at[name] = at = {"x": [1]}
    at[path[-1]] = items
    written = io.BytesIO()
    fragments = (orjson.Fragment(streamed_json.list_item_text(item)) for item in items)
    write_streamed(written, document, {tuple(path): fragments})
    assert written.getvalue() == orjson.dumps(document, option=orjson.OPT_INDENT_2)


# lines the fast lane reports itself: a file, a line number, a report key and an error
_ERRORS = st.builds(Unmapped, st.sampled_from(["subject-not-enrolled", "unknown-code"]),
                    st.text(max_size=12), st.none() | st.text(max_size=6),
                    st.none() | st.sampled_from(["http://loinc.org", "urn:x\u00e9"]),
                    st.none() | st.text(max_size=4))
_LINES = st.lists(st.tuples(st.sampled_from(["a.ndjson", "b10.ndjson", 'q"\u00e9.ndjson']),
                            st.integers(1, 10**7), st.text(max_size=10), _ERRORS),
                  max_size=12)


def _failed(lines: list[tuple[str, int, str, Unmapped]]) -> FailedLines:
    failed = FailedLines("Observation")
    for file, number, resource, error in lines:
        failed.add(file, number, resource, error)
    return failed


@settings(max_examples=60, deadline=None)
@given(_LINES)
def test_failed_lines_give_the_keys_and_texts_of_their_items(
        lines: list[tuple[str, int, str, Unmapped]]) -> None:
    failed = _failed(lines)
    items = failed.items()
    assert [(item.file, item.location, item.resource, item.reason_code, item.message,
             item.element, item.system, item.code) for item in items] == [
        (file, f"line {number}", resource, error.reason_code, error.message, error.element,
         error.system, error.code) for file, number, resource, error in lines]
    assert failed.keys() == [unmapped_order(item) for item in items]
    assert failed.reason_codes() == [item.reason_code for item in items]
    assert failed.texts() == [streamed_json.list_item_text(item) for item in items]
    assert [unmapped_item_text(item) for item in items] == failed.texts()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.lists(_UNMAPPED, max_size=6), _LINES), max_size=5))
def test_runs_of_failed_lines_are_those_of_their_items(
        tmp_path_factory: pytest.TempPathFactory,
        shares: list[tuple[list[UnmappedItem], list[tuple[str, int, str, Unmapped]]]]
        ) -> None:
    """A share's lines go into its runs as the items they stand for would (after the
    share's items), and a report without runs takes them in as those items."""
    folder = tmp_path_factory.mktemp("runs")
    runs = ItemRuns(folder, unmapped_order, issue_order, unmapped_item_text)
    as_items = [(unmapped + _failed(lines).items(), []) for unmapped, lines in shares]
    for unmapped, lines in shares:
        runs.add(unmapped, [], _failed(lines))
    _assert_as_in_memory(runs, as_items)
    memory = ConversionReport(sources=["a.ndjson"], enrolment="all")
    for unmapped, lines in shares:
        memory.add_items(unmapped, [], _failed(lines))
    memory.sort_items()
    assert memory.unmapped == _in_memory(as_items).unmapped
