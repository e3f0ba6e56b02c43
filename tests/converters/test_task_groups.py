"""Tasks are mapped in jobs of a chunk's worth of lines: an export cut into many small
files (a Bulk Data server writing a file per few hundred resources) maps in a few jobs,
and writes what the in-memory engine writes."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.generate import generate
from fhircdisc import to_sdtm
from fhircdisc.converters import streaming
from fhircdisc.converters.streaming import Task, task_groups

STAMP = "2026-01-02T03:04:05"


@given(st.lists(st.integers(1, 700), max_size=60), st.integers(1, 1000))
def test_groups_keep_the_order_and_fill_up_to_a_chunk(sizes: list[int], chunk: int) -> None:
    tasks = [Task(n, f"f{n}", n, size=size) for n, size in enumerate(sizes)]
    groups = task_groups(tasks, chunk)
    assert [task for group in groups for task in group] == tasks
    for group in groups:
        assert len(group) == 1 or sum(task.size for task in group) <= chunk
    for group, after in pairwise(groups):
        # a job takes the next task whenever it still fits
        assert sum(task.size for task in group) + after[0].size > chunk


def test_many_small_files_map_in_few_jobs_and_write_what_memory_writes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    export = tmp_path / "export"
    generate(tmp_path / "whole", 3_000, 30, encounters=True, panels=0.2)
    export.mkdir()
    for path in (tmp_path / "whole").iterdir():
        lines = path.read_bytes().splitlines(keepends=True)
        if not path.name.startswith("Observation"):
            (export / path.name).write_bytes(b"".join(lines))
            continue
        for start in range(0, len(lines), 50):          # 60 files of 50 lines
            (export / f"Observation.{start // 50:04d}.ndjson").write_bytes(
                b"".join(lines[start:start + 50]))
    jobs: list[int] = []
    spill = streaming._spill

    def counted(parts, name, shared):
        jobs.append(1)
        return spill(parts, name, shared)

    monkeypatch.setattr(streaming, "_spill", counted)
    result = streaming.stream_to_sdtm([export], tmp_path / "stream", ("xpt", "csv"),
                                      study_id="MANY", workers=1, creation_datetime=STAMP,
                                      chunk_lines=500, bucket_rows=400)
    assert len(jobs) - 1 == 6                  # 60 tasks of 50 lines; the pass-1 rows: 1
    study = to_sdtm([export], study_id="MANY")
    study.write(tmp_path / "memory", ("xpt", "csv"), creation_datetime=STAMP,
                validation=study.validate())
    expected = {p.name: p.read_bytes() for p in (tmp_path / "memory").iterdir()}
    found = {p.name: p.read_bytes() for p in (tmp_path / "stream").iterdir()}
    assert found.keys() == expected.keys()
    for name, data in expected.items():
        assert found[name] == data, name
    assert result.datasets["LB"][0] + result.datasets["VS"][0] > 3_000
