"""to-sdtm engines and input checks on the command line: --engine stream writes what
--engine memory writes; --strict stops on structural errors; elements of the wrong
JSON shape are reported at their path."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from benchmarks.generate import generate
from fhircdisc.cli import main

STAMP = "2026-02-03T04:05:06"


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("export")
    generate(root, 600, 25)
    return root


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_stream_engine_writes_the_files_of_the_memory_engine(export: Path, tmp_path: Path
                                                             ) -> None:
    outputs = {}
    for engine in ("memory", "stream"):
        out = tmp_path / engine
        code, text = _run("to-sdtm", str(export), "-o", str(out), "--study-id", "HOSP",
                          "--engine", engine, "--workers", "2", "--format", "xpt",
                          "--format", "csv", "--creation-datetime", STAMP)
        assert code == 0, text
        assert "LB" in text and "VS" in text
        outputs[engine] = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    assert sorted(outputs["stream"]) == sorted(outputs["memory"])
    for name, data in outputs["memory"].items():
        assert outputs["stream"][name] == data, name
    report = json.loads(outputs["stream"]["conversion-report.json"])
    assert report["resources"]["Observation"]["mapped"] == 600


def _with_observation(export: Path, folder: Path, **patch: object) -> Path:
    folder.mkdir()
    (folder / "Patient.ndjson").write_bytes((export / "Patient.ndjson").read_bytes())
    lines = (export / "Observation.000.ndjson").read_bytes().splitlines()[:20]
    bad = {**orjson.loads(lines[3]), **patch}
    lines[3] = orjson.dumps(bad)
    (folder / "Observation.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    return folder


def test_wrong_json_shape_is_reported_at_its_element(export: Path, tmp_path: Path) -> None:
    folder = _with_observation(export, tmp_path / "in", valueQuantity={"value": "12,5"})
    code, text = _run("to-sdtm", str(folder), "-o", str(tmp_path / "out"), "--study-id", "H")
    assert code == 1, text
    report = json.loads((tmp_path / "out" / "conversion-report.json").read_text())
    [item] = report["unmapped"]
    assert item["reason_code"] == "invalid-element"
    assert item["element"] == "Observation.valueQuantity.value"
    assert item["location"] == "line 4"
    assert "found a string ('12,5')" in item["message"]


def test_strict_stops_on_an_element_the_mapping_does_not_read(export: Path, tmp_path: Path
                                                              ) -> None:
    folder = _with_observation(export, tmp_path / "in", issued="last Tuesday")
    out = tmp_path / "out"
    code, _ = _run("to-sdtm", str(folder), "-o", str(out), "--study-id", "H")
    assert code == 0                           # the mapping never reads issued
    out.rename(tmp_path / "lenient")
    code, text = _run("to-sdtm", str(folder), "-o", str(out), "--study-id", "H", "--strict",
                      "--workers", "1")
    assert code == 2
    assert "Observation.ndjson [line 4]" in text and "Observation.issued" in text
    assert "Traceback" not in text
    assert not out.exists()


def test_strict_passes_a_valid_export(export: Path, tmp_path: Path) -> None:
    folder = _with_observation(export, tmp_path / "in")
    code, text = _run("to-sdtm", str(folder), "-o", str(tmp_path / "out"), "--study-id", "H",
                      "--strict")
    assert code == 0, text


def test_spark_engine_from_the_command_line(export: Path, tmp_path: Path) -> None:
    pytest.importorskip("pyspark", reason="the spark extra is not installed")
    outputs = {}
    for engine in ("memory", "spark"):
        out = tmp_path / engine
        code, text = _run("to-sdtm", str(export), "-o", str(out), "--study-id", "HOSP",
                          "--engine", engine, "--creation-datetime", STAMP, "-q")
        assert code == 0, text
        outputs[engine] = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    assert outputs["spark"] == outputs["memory"]
