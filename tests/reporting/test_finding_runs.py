"""Row findings kept on disk a bucket at a time: merged back, they are the findings a
stable sort of them all gives, rows renumbered from the dataset's start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fhircdisc.finding_runs import FindingRuns, StreamedValidation, bank
from fhircdisc.schemas.findings import Finding, RuleRun, ValidationResult

RULES = ("R1", "R2", "R3")
RANK = {name: rank for rank, name in enumerate(("DM", "LB", "VS"))}


def _order(f: Finding) -> Any:
    return (RULES.index(f.rule_id), RANK[f.dataset], f.row is not None, f.row or 0)


def _finding(rule: str, dataset: str, row: int | None, text: str) -> Finding:
    return Finding(rule, "warning" if rule != "R2" else "error", dataset,
                   f"row {row}: {text}", row=row, value=text,
                   wording=("row {row}: {text}", ("row", "text"), (row, text)))


_ROW = st.tuples(st.sampled_from(RULES), st.integers(1, 6), st.text(max_size=3))


@st.composite
def _bucket(draw: st.DrawFn, dataset: str) -> tuple[int, list[Finding]]:
    """A bucket's rows and its findings as the rule engine gives them: rule by rule,
    a rule's dataset-level findings before its rows, rows in order (several a row)."""
    rows = draw(st.integers(1, 6))
    found = draw(st.lists(_ROW, max_size=10))
    findings = [_finding(rule, dataset, min(row, rows), text) for rule, row, text in found]
    findings += [_finding(rule, dataset, None, "whole")
                 for rule in draw(st.lists(st.sampled_from(RULES), max_size=2, unique=True))]
    return rows, sorted(findings, key=_order)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(RULES), st.integers(1, 4), st.text(max_size=3)),
                max_size=6),
       st.lists(_bucket("LB"), max_size=5), st.lists(_bucket("VS"), max_size=4))
def test_merged_runs_are_a_stable_sort_of_every_finding(
        tmp_path_factory: pytest.TempPathFactory, small: list[tuple[str, int, str]],
        lb: list[tuple[int, list[Finding]]], vs: list[tuple[int, list[Finding]]]) -> None:
    folder = tmp_path_factory.mktemp("findings")
    memory = sorted((_finding(rule, "DM", row, text) for rule, row, text in small),
                    key=_order)
    everything = list(memory)
    runs = FindingRuns(folder)
    starts = []
    for dataset, buckets in (("LB", lb), ("VS", vs)):
        offset = 0
        for number, (rows, findings) in enumerate(buckets):
            kept, banked = bank(folder, (dataset, number), findings)
            assert kept == [f for f in findings if f.row is None]
            if banked is not None:
                runs.add((dataset, number), banked)
                runs.add((dataset, number), banked)          # counted once
                assert sum(banked.rules.values()) == len(findings) - len(kept)
            memory += kept
            everything += [f.moved(offset) for f in findings]
            starts.append(((dataset, number), offset))
            offset += rows
    memory.sort(key=_order)
    merged = list(runs.merged(memory, starts, _order))
    assert merged == sorted(everything, key=_order)
    assert [f.message for f in merged] == [f.message for f in sorted(everything, key=_order)]
    on_disk = [f for f in everything if f.dataset != "DM" and f.row is not None]
    assert runs.severities == {s: n for s in ("warning", "error")
                               if (n := sum(f.severity == s for f in on_disk))}


def test_a_streamed_validation_counts_what_is_on_disk(tmp_path: Path) -> None:
    result = ValidationResult("study", "sdtm", [_finding("R1", "DM", 1, "x")],
                              [RuleRun("R1", "issues", 3)])
    validation = StreamedValidation.of(result)
    assert validation.to_dict() == result.to_dict()          # nothing on disk yet
    validation.stored.update({"warning": 2, "error": 1})
    assert (validation.count("warning"), validation.count("error")) == (3, 1)
    assert validation.worst() == "error"
    head = validation.head()
    assert head["counts"] == {"error": 1, "warning": 3, "notice": 0}
    assert head["findings"] == [] and head["rules"] == result.to_dict()["rules"]
    with pytest.raises(RuntimeError, match="report file"):
        validation.to_dict()
