"""benchmarks/compare.py: two checkouts converting one export, the bytes they write compared
and the CPU of each pass paired round by round."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.compare import (
    ROOT,
    CompareError,
    Comparison,
    Run,
    compare,
    convert,
    differing_files,
    report,
)
from benchmarks.generate import generate


def test_a_checkout_against_itself_writes_the_same_bytes(tmp_path: Path) -> None:
    files = generate(tmp_path / "export", 400, 30)
    found = compare(ROOT, ROOT, files, tmp_path / "work", rounds=1)
    assert found.differing == []
    assert len(found.other) == len(found.this) == 1
    for run in (*found.other, *found.this):
        assert set(run.cpu) >= {"context", "observations", "datasets", "writing"}
        assert run.wall > 0
    assert not list((tmp_path / "work").glob("*-0"))      # the outputs are not kept


def test_differing_files_names_changed_and_missing_files(tmp_path: Path) -> None:
    left, right = tmp_path / "left", tmp_path / "right"
    for folder in (left, right):
        (folder / "sub").mkdir(parents=True)
        (folder / "same.csv").write_bytes(b"a,b\n")
    (left / "sub" / "lb.xpt").write_bytes(b"\x00\x01")
    (right / "sub" / "lb.xpt").write_bytes(b"\x00\x02")
    (left / "only-left.json").write_bytes(b"{}")
    assert differing_files(left, right) == ["only-left.json", "sub/lb.xpt"]


def test_a_folder_without_the_project_is_refused(tmp_path: Path) -> None:
    files = generate(tmp_path / "export", 50, 5)
    with pytest.raises(CompareError, match="does not hold the fhircdisc that ran"):
        convert(tmp_path, files, tmp_path / "out", ("xpt",), 1, None)


def test_the_report_pairs_the_rounds() -> None:
    def run(cpu: float) -> Run:
        return Run(cpu, {}, {"context": 0.0, "observations": cpu, "datasets": 1.0,
                             "writing": 0.0})
    table = report(Comparison([run(2.0), run(2.4)], [run(1.0), run(1.6)]), 1_000_000,
                   Path("base"))
    rows = {table.columns[0]._cells[i]: [column._cells[i] for column in table.columns]
            for i in range(table.row_count)}
    # paired: 1.0 - 2.0 and 1.6 - 2.4, median -0.9 (of 2.2: -40.9 %)
    assert rows["observations CPU"][1:4] == ["2.20 s", "1.30 s",
                                             "-0.90 s -40.9% (-1.00 to -0.80)"]
    assert rows["observations CPU"][4] == "2.20 -> 1.30 µs"
