"""The benchmark's export generator: ``grouped`` writes the same resources, each file's
Observations sorted by patient and date, as a server exporting patient by patient does."""

from __future__ import annotations

from pathlib import Path

import orjson

from benchmarks.generate import generate


def test_a_grouped_export_holds_the_same_resources_patient_by_patient(tmp_path: Path
                                                                       ) -> None:
    shuffled = generate(tmp_path / "random", 3_000, 40, encounters=True)
    grouped = generate(tmp_path / "grouped", 3_000, 40, encounters=True, grouped=True)
    assert [path.name for path in shuffled] == [path.name for path in grouped]
    for random_file, grouped_file in zip(shuffled, grouped, strict=True):
        lines = grouped_file.read_bytes().splitlines()
        assert sorted(lines) == sorted(random_file.read_bytes().splitlines())
        if grouped_file.name.startswith("Observation"):
            places = [(obs["subject"]["reference"], obs["effectiveDateTime"])
                      for obs in map(orjson.loads, lines)]
            assert places == sorted(places)
            assert places != [(obs["subject"]["reference"], obs["effectiveDateTime"])
                              for obs in map(orjson.loads,
                                             random_file.read_bytes().splitlines())]
        else:
            assert lines == random_file.read_bytes().splitlines()
