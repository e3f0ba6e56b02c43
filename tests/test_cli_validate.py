"""`fhircdisc validate` and `fhircdisc define` from the command line."""

from __future__ import annotations

import json
import shutil

from click.testing import CliRunner

from fhircdisc.cli import main
from tests.conftest import shared


def _run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_validate_pilot_sdtm_folder_reports_real_findings(tmp_path):
    report = tmp_path / "report.json"
    result = _run("validate", str(shared("cdisc-sdtm-example", "xpt")), "--report-json",
                  str(report), "--limit", "5")
    assert result.exit_code == 1, result.output          # the pilot has real errors
    data = json.loads(report.read_text())
    assert data["kind"] == "sdtm"
    by_rule: dict[str, int] = {}
    for finding in data["findings"]:
        by_rule[finding["rule_id"]] = by_rule.get(finding["rule_id"], 0) + 1
    assert by_rule["FC-SD-0002"] == 74                   # AEDECOD never coded in the pilot
    assert f"... and {len(data['findings']) - 5} more" in result.output
    assert "rules: 27 run" in result.output


def test_validate_converted_demo_has_no_errors_beyond_uncoded_terms(tmp_path):
    out = tmp_path / "demo"
    assert _run("demo", str(out), "-q").exit_code == 0
    report = tmp_path / "r.json"
    result = _run("validate", str(out / "sdtm"), "--report-json", str(report))
    findings = json.loads(report.read_text())["findings"]
    errors = {(f["rule_id"], f["variable"]) for f in findings if f["severity"] == "error"}
    # the two infusion-site reactions carry text only: no dictionary term for AEDECOD
    assert errors == {("FC-SD-0002", "AEDECOD")}
    assert result.exit_code == 1
    relaxed = _run("validate", str(out / "sdtm"), "--kind", "sdtm", "-q", "--fail-on", "error")
    assert relaxed.exit_code == 1


def test_fail_on_warning_tightens_the_exit_code(tmp_path):
    folder = tmp_path / "sdtm"
    folder.mkdir()
    shutil.copy(shared("cdisc-sdtm-example", "xpt", "ts.xpt"), folder / "ts.xpt")
    loose = _run("validate", str(folder), "-q")
    strict = _run("validate", str(folder), "-q", "--fail-on", "warning")
    assert loose.exit_code == 0 and strict.exit_code == 1


def test_validate_fhir_bundle_finds_broken_references(tmp_path):
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient", "id": "p1"}},
        {"resource": {"resourceType": "Observation", "id": "o1", "status": "final",
                      "code": {"coding": [{"system": "http://loinc.org", "code": "1988-5"}]},
                      "subject": {"reference": "Patient/p2"}}},
        {"resource": {"resourceType": "Observation", "id": "o2", "status": "final",
                      "code": {"text": "x"}, "subject": {"reference": "urn:uuid:1"},
                      "valueQuantity": {"value": "not a number"}}}]}
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    report = tmp_path / "r.json"
    result = _run("validate", str(path), "--report-json", str(report))
    assert result.exit_code == 1
    findings = json.loads(report.read_text())["findings"]
    broken = [f for f in findings if f["rule_id"] == "FC-FH-0002"]
    assert [(f["value"], f["variable"]) for f in broken] == [("Patient/p2",
                                                             "Observation.subject")]
    invalid = [f for f in findings if f["rule_id"] == "FC-FH-0001"]
    assert invalid and invalid[0]["variable"].startswith("Observation.valueQuantity.value")
    assert "Observation/o2" in invalid[0]["source"]
    quick = _run("validate", str(path), "--skip-structure", "--report-json", str(report))
    data = json.loads(report.read_text())
    assert quick.exit_code == 1 and {f["rule_id"] for f in data["findings"]} == {"FC-FH-0002"}
    skipped = [r for r in data["rules"] if r["rule_id"] == "FC-FH-0001"]
    assert skipped[0]["status"] == "skipped"


def test_codes_of_the_wrong_shape_are_left_to_the_structure_check(tmp_path):
    """A panel whose components are not objects, a code that is a list, a unit code that
    is a number: the structure check reports them; the terminology check skips them
    instead of stopping the run."""
    lines = [{"resourceType": "Patient", "id": "p1", "gender": ["female"]},
             {"resourceType": "Observation", "id": "o1", "status": "final",
              "code": [{"coding": []}], "subject": {"reference": "Patient/p1"}},
             {"resourceType": "Observation", "id": "o2", "status": "final",
              "code": {"coding": 5}, "subject": {"reference": "Patient/p1"},
              "valueQuantity": {"value": 1, "code": 7}},
             {"resourceType": "Observation", "id": "bp", "status": "final",
              "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
              "subject": {"reference": "Patient/p1"}, "component": [True, {"code": 5}]}]
    path = tmp_path / "export.ndjson"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    report = tmp_path / "r.json"
    for extra in ((), ("--skip-structure",)):
        result = _run("validate", str(path), "--report-json", str(report), *extra)
        assert "Traceback" not in result.output and result.exit_code in (0, 1), result.output
        findings = json.loads(report.read_text())["findings"]
        assert not [f for f in findings if f["rule_id"] == "FC-FH-0003"]
        structural = {f["source"].split(" @")[0] for f in findings
                      if f["rule_id"] == "FC-FH-0001"}
        assert structural == (set() if extra else
                              {"Patient/p1", "Observation/o1", "Observation/o2",
                               "Observation/bp"})


def test_define_written_validates_and_matches_its_datasets(tmp_path):
    out = tmp_path / "demo"
    assert _run("demo", str(out), "-q").exit_code == 0
    define = out / "sdtm" / "define.xml"
    assert define.exists()
    again = _run("define", str(out / "sdtm"), "-o", str(tmp_path / "define.xml"),
                 "--creation-datetime", "2020-09-30T12:00:00")
    assert again.exit_code == 0 and "valid against the Define-XML 2.1 XSD" in again.output
    assert (tmp_path / "define.xml").read_bytes() == define.read_bytes()
    report = tmp_path / "r.json"
    result = _run("validate", str(define), "--report-json", str(report))
    data = json.loads(report.read_text())
    assert data["kind"] == "define"
    assert [f for f in data["findings"] if f["severity"] == "error"] == []
    assert result.exit_code == 0


def test_bad_input_gives_exit_2_and_one_line(tmp_path):
    truncated = tmp_path / "dm.xpt"
    truncated.write_bytes(shared("cdisc-sdtm-example", "xpt", "dm.xpt").read_bytes()[:1000])
    result = _run("validate", str(truncated))
    assert result.exit_code == 2 and str(truncated) in result.output
    assert "Traceback" not in result.output
    wrong = tmp_path / "notes.txt"
    wrong.write_text("hello")
    assert _run("validate", str(wrong)).exit_code == 2
    (tmp_path / "x").mkdir()
    hostile = tmp_path / "x" / "define.xml"
    hostile.write_text('<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY e SYSTEM '
                       '"file:///etc/passwd">]>\n<ODM>&e;</ODM>\n')
    result = _run("validate", str(hostile))
    assert result.exit_code == 2 and "DOCTYPE" in result.output
    assert "root:" not in result.output
