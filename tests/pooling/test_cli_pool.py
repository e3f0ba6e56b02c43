"""``fhircdisc pool`` through click: exit codes 0 / 1 / 2, outputs, one-line errors."""

from __future__ import annotations

import json

from click.testing import CliRunner

from fhircdisc.cli_pool import pool_command
from fhircdisc.pooling.report import ID_MAP_NAME, REPORT_NAME


def _run(*args: str):
    return CliRunner().invoke(pool_command, [*args])


def test_conflicts_exit_1_and_still_write_the_pool(sdtm_folders, tmp_path):
    demo_dir, second_dir = sdtm_folders
    out = tmp_path / "pooled"
    result = _run(str(demo_dir), str(second_dir), "-o", str(out))
    assert result.exit_code == 1, result.output
    assert "Conflicts (1)" in result.output and "LBSEQ=25" in result.output
    assert (out / "lb.xpt").exists() and (out / ID_MAP_NAME).exists()
    report = json.loads((out / REPORT_NAME).read_text())
    assert report["summary"]["conflicts"] == 1 and report["summary"]["usubjid_changed"] == 2
    # a study read back from its folder has no define.xml: its CT version is unknown
    assert report["controlled_terminology"]["versions"]["UCMSC-ARDS-2"] == "unknown"


def test_allow_conflicts_exits_0(sdtm_folders, tmp_path):
    demo_dir, second_dir = sdtm_folders
    out = tmp_path / "pooled"
    result = _run(str(demo_dir), str(second_dir), "-o", str(out), "--allow-conflicts",
                  "--format", "json", "--format", "csv", "-q")
    assert result.exit_code == 0, result.output
    assert result.output == ""
    assert (out / "dm.json").exists() and (out / "dm.csv").exists()
    assert not (out / "dm.xpt").exists()


def test_fhir_input_with_study_id_and_target_unit(sdtm_folders, tiny_bundle, tmp_path):
    _, second_dir = sdtm_folders
    out = tmp_path / "pooled"
    result = _run(str(second_dir), str(tiny_bundle), "--study-id", "TINY-3", "-o", str(out),
                  "--target-unit", "GLUC=mmol/L", "--allow-conflicts")
    assert result.exit_code == 0, result.output
    report = json.loads((out / REPORT_NAME).read_text())
    [target] = [t for t in report["units"]["targets"] if t["test"] == "GLUC"]
    assert (target["unit"], target["reason"]) == ("mmol/L", "given")
    assert "TINY-3" in report["controlled_terminology"]["versions"]


def test_bad_input_exits_2_with_one_line(sdtm_folders, tmp_path):
    demo_dir, _ = sdtm_folders
    missing = tmp_path / "no-such-study"
    result = _run(str(demo_dir), str(missing), "-o", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"error: {missing}: no such file or folder"]
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()

    one = _run(str(demo_dir), "-o", str(tmp_path / "out"))
    assert one.exit_code == 2 and "at least two studies" in one.output

    twice = _run(str(demo_dir), str(demo_dir), "-o", str(tmp_path / "out"))
    assert twice.exit_code == 2 and len(twice.output.strip().splitlines()) == 1

    bad_unit = _run(str(demo_dir), str(demo_dir), "-o", str(tmp_path / "out"),
                    "--target-unit", "GLUC")
    assert bad_unit.exit_code == 2 and "TESTCD=UNIT" in bad_unit.output
