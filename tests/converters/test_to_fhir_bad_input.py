"""Bad SDTM input to ``to-fhir``: rows and datasets rejected with their place, or one clean
error line naming the file (exit 2) and nothing written.

Fixtures are built in tmp_path from the CDISC pilot DM and tiny hand-made LB datasets.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from fhircdisc.cli import main
from fhircdisc.converters.datasets import read_dataset, write_dataset
from fhircdisc.converters.sdtm_to_fhir import REPORT_NAME, RejectedRow, to_fhir
from fhircdisc.errors import InputError
from fhircdisc.schemas import sdtmig
from tests.conftest import shared

STAMP = "2024-01-01T00:00:00"
def pilot(*parts: str) -> Path:
    return shared("cdisc-sdtm-example", *parts)


@pytest.fixture(scope="module")
def subjects() -> list[str]:
    frame, _ = read_dataset(pilot("xpt", "dm.xpt"))
    return list(frame["USUBJID"])


def lb_frame(usubjids: list[str | None]) -> pd.DataFrame:
    n = len(usubjids)
    return pd.DataFrame({
        "STUDYID": ["CDISCPILOT01"] * n, "DOMAIN": ["LB"] * n,
        "USUBJID": pd.Series(usubjids, dtype=object),
        "LBSEQ": [float(i + 1) for i in range(n)], "LBTESTCD": ["GLUC"] * n,
        "LBTEST": ["Glucose"] * n, "LBORRES": [str(5 + i) for i in range(n)],
        "LBORRESU": ["mg/dL"] * n, "LBSTRESN": [float(5 + i) for i in range(n)],
        "LBDTC": ["2014-01-02T08:30"] * n})


def study_folder(folder: Path, lb: pd.DataFrame, fmt: str) -> Path:
    """The pilot DM (XPT) and ``lb`` written as ``lb.<fmt>``; returns the LB file."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(pilot("xpt", "dm.xpt"), folder / "dm.xpt")
    meta = sdtmig.dataset_meta("LB", list(lb.columns))
    return write_dataset(lb, folder, meta, fmt, creation_datetime=STAMP)


def run(sdtm: Path, out: Path, *extra: str):
    return CliRunner().invoke(main, ["to-fhir", str(sdtm), "-o", str(out), "--no-validate",
                                     "-q", *extra])


def assert_clean_failure(result, out: Path, *names: str) -> str:
    """Exit 2, one line naming the problem, no traceback, nothing written."""
    assert result.exit_code == 2, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception,
                                                                      SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    for name in names:
        assert name in lines[0], (name, lines[0])
    assert not out.exists() or not any(out.iterdir())
    return lines[0]


# ----------------------------------------------------------------------- rejected, rest kept


@pytest.mark.parametrize("fmt", ["json", "xpt", "csv"])
def test_dataset_without_usubjid_is_rejected_and_the_rest_converts(tmp_path, subjects, fmt):
    lb_file = study_folder(tmp_path / "sdtm", lb_frame(subjects[:3]).drop(columns="USUBJID"),
                           fmt)
    output = to_fhir(tmp_path / "sdtm", validate=False)
    report = output.report
    [rejected] = report.rejected
    assert (rejected.dataset, rejected.file, rejected.row, rejected.variable) == (
        "LB", str(lb_file), None, "USUBJID")
    assert "USUBJID" in rejected.message
    assert report.rows_in == {"DM": len(subjects), "LB": 3}
    assert report.rows_converted.get("DM") == len(subjects) and not report.rows_converted.get("LB")
    assert report.resources_out["Patient"] == len(subjects)
    assert "Observation" not in report.resources_out
    assert report.reconciles()

    out = tmp_path / "out"
    result = run(tmp_path / "sdtm", out)
    assert result.exit_code == 1, result.output
    written = json.loads((out / REPORT_NAME).read_text())
    assert written["rejected"] == [rejected.__dict__] and written["reconciles"] is True
    bundle = json.loads((out / "bundle.json").read_text())
    assert sum(e["resource"]["resourceType"] == "Patient" for e in bundle["entry"]) == \
        len(subjects)


@pytest.mark.parametrize("fmt", ["json", "xpt"])
def test_row_whose_subject_is_not_in_dm_is_rejected_with_its_row(tmp_path, subjects, fmt):
    lb = lb_frame([subjects[0], "CDISC999", subjects[1], None, subjects[2]])
    lb_file = study_folder(tmp_path / "sdtm", lb, fmt)
    report = to_fhir(tmp_path / "sdtm", validate=False).report
    assert report.rejected == [
        RejectedRow("LB", str(lb_file), 2, "USUBJID", "CDISC999",
                    "USUBJID CDISC999 is not in DM"),
        RejectedRow("LB", str(lb_file), 4, "USUBJID", None, "USUBJID is missing")]
    assert report.rows_in["LB"] == 5 and report.rows_converted["LB"] == 3
    assert report.resources_out["Observation"] == 3
    assert report.reconciles()
    assert report.rows_in["LB"] == report.rows_converted["LB"] + len(report.rejected)

    out = tmp_path / "out"
    result = run(tmp_path / "sdtm", out)
    assert result.exit_code == 1, result.output
    rows = json.loads((out / REPORT_NAME).read_text())["rejected"]
    assert [(r["file"], r["row"], r["value"]) for r in rows] == [
        (str(lb_file), 2, "CDISC999"), (str(lb_file), 4, None)]


def test_in_memory_frames_are_rejected_the_same_way(subjects):
    dm, _ = read_dataset(pilot("xpt", "dm.xpt"))
    output = to_fhir({"DM": dm, "LB": lb_frame([subjects[0], "CDISC999"])}, validate=False)
    assert output.report.rejected == [RejectedRow("LB", "<LB>", 2, "USUBJID", "CDISC999",
                                                  "USUBJID CDISC999 is not in DM")]
    assert output.report.reconciles()


# ----------------------------------------------------------------------- cannot run


def _truncated(path: Path) -> None:
    data = pilot("xpt", "dm.xpt").read_bytes()
    path.write_bytes(data[:len(data) // 2 + 7])


def _text(path: Path) -> None:
    path.write_text("STUDYID,DOMAIN,USUBJID\nCDISCPILOT01,DM,CDISC001\n", encoding="utf-8")


def _header_only(path: Path) -> None:
    path.write_bytes(pilot("xpt", "dm.xpt").read_bytes()[:1000])


@pytest.mark.parametrize("damage", [_truncated, _text, _header_only],
                         ids=["truncated", "text-file", "cut-in-header"])
def test_unreadable_xpt_stops_with_one_line_naming_the_file(tmp_path, damage):
    sdtm = tmp_path / "sdtm"
    sdtm.mkdir()
    damage(sdtm / "dm.xpt")
    shutil.copy(pilot("xpt", "ts.xpt"), sdtm / "ts.xpt")
    out = tmp_path / "out"
    line = assert_clean_failure(run(sdtm, out), out, str(sdtm / "dm.xpt"))
    assert "XPORT" in line
    assert not out.exists()


def test_unreadable_lb_xpt_stops_the_run_too(tmp_path):
    sdtm = tmp_path / "sdtm"
    sdtm.mkdir()
    shutil.copy(pilot("xpt", "dm.xpt"), sdtm / "dm.xpt")
    data = pilot("xpt", "ae.xpt").read_bytes()
    (sdtm / "ae.xpt").write_bytes(data[:-3001])
    out = tmp_path / "out"
    assert_clean_failure(run(sdtm, out), out, str(sdtm / "ae.xpt"), "truncated")


def test_dataset_json_row_shorter_than_its_columns(tmp_path):
    sdtm = tmp_path / "sdtm"
    sdtm.mkdir()
    doc = json.loads(pilot("json", "dm.json").read_text(encoding="utf-8"))
    doc["rows"][2] = doc["rows"][2][:-1]
    (sdtm / "dm.json").write_text(json.dumps(doc), encoding="utf-8")
    out = tmp_path / "out"
    line = assert_clean_failure(run(sdtm, out), out, str(sdtm / "dm.json"), "row 3")
    assert f"{len(doc['columns']) - 1} values" in line
    with pytest.raises(InputError, match=r"dm\.json \[row 3\]"):
        to_fhir(sdtm, validate=False)


@pytest.mark.parametrize("text", ["inf", "-Infinity", "1e400"])
def test_a_number_no_dataset_holds_in_a_csv_names_file_row_and_variable(tmp_path, subjects,
                                                                        text):
    """Infinite numbers read from CSV text: refused where they are read, not written into
    a FHIR decimal (which FHIR has no value for)."""
    lb = lb_frame(subjects[:3])
    csv_file = study_folder(tmp_path / "sdtm", lb, "csv")
    lines = csv_file.read_text(encoding="utf-8").splitlines()
    cells = lines[2].split(",")
    cells[lines[0].split(",").index("LBSTRESN")] = text
    lines[2] = ",".join(cells)                      # data row 2
    csv_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=rf"row 2, variable LBSTRESN.*got '{text}'"):
        to_fhir(tmp_path / "sdtm", validate=False)


def test_non_number_in_a_num_variable_of_a_csv_names_file_row_and_variable(tmp_path,
                                                                           subjects):
    lb = lb_frame(subjects[:3])
    csv_file = study_folder(tmp_path / "sdtm", lb, "csv")
    lines = csv_file.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    cells = lines[3].split(",")
    cells[header.index("LBSTRESN")] = "abc"
    lines[3] = ",".join(cells)                      # data row 3
    csv_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    line = assert_clean_failure(run(tmp_path / "sdtm", out), out, str(csv_file), "row 3",
                                "LBSTRESN", "'abc'")
    assert "line 1" not in line
    with pytest.raises(InputError, match=r"row 3.*LBSTRESN"):
        to_fhir(tmp_path / "sdtm", validate=False)


def test_csv_study_converts(tmp_path, subjects):
    sdtm = tmp_path / "sdtm"
    sdtm.mkdir()
    dm, _ = read_dataset(pilot("xpt", "dm.xpt"))
    write_dataset(dm, sdtm, sdtmig.dataset_meta("DM", list(dm.columns)), "csv",
                  creation_datetime=STAMP)
    write_dataset(lb_frame(subjects[:2]), sdtm, sdtmig.dataset_meta("LB", list(
        lb_frame([]).columns)), "csv", creation_datetime=STAMP)
    output = to_fhir(sdtm, validate=False)
    assert output.report.rows_converted == {"DM": len(dm), "LB": 2}
    assert output.report.rejected == []


def test_folder_without_dm_is_a_clear_error(tmp_path):
    sdtm = tmp_path / "sdtm"
    sdtm.mkdir()
    shutil.copy(pilot("xpt", "ts.xpt"), sdtm / "ts.xpt")
    shutil.copy(pilot("xpt", "lb.xpt"), sdtm / "lb.xpt")
    out = tmp_path / "out"
    line = assert_clean_failure(run(sdtm, out), out, str(sdtm), "no DM dataset")
    assert "subjects" in line
    with pytest.raises(InputError, match="no DM dataset"):
        to_fhir({"LB": lb_frame(["CDISC001"])}, validate=False)


def test_folder_without_datasets_and_missing_folder(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not a dataset", encoding="utf-8")
    out = tmp_path / "out"
    assert_clean_failure(run(empty, out), out, str(empty), "no SDTM datasets")
    assert_clean_failure(run(tmp_path / "nope", out), out, str(tmp_path / "nope"),
                         "not a folder")


def test_dm_without_usubjid_is_a_clear_error(tmp_path):
    dm, _ = read_dataset(pilot("xpt", "dm.xpt"))
    dm = dm.drop(columns="USUBJID")
    sdtm = tmp_path / "sdtm"
    sdtm.mkdir()
    write_dataset(dm, sdtm, sdtmig.dataset_meta("DM", list(dm.columns)), "json",
                  creation_datetime=STAMP)
    out = tmp_path / "out"
    assert_clean_failure(run(sdtm, out), out, str(sdtm / "dm.json"), "USUBJID")
