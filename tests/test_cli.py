"""The command line: demo end to end, to-sdtm options, determinism, exit codes."""

from __future__ import annotations

import json

import pyreadstat
from click.testing import CliRunner

from fhircdisc.cli import main
from fhircdisc.converters.datasets import read_dataset
from fhircdisc.schemas import sdtmig


def test_demo_writes_bundle_sdtm_report_and_summary(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", str(out)])
    assert result.exit_code == 0, result.output
    for name in ("dm", "ex", "lb", "vs", "ae", "ts"):
        assert (out / "sdtm" / f"{name}.xpt").exists() and (out / "sdtm" / f"{name}.json").exists()
    assert (out / "fhir" / "ucmsc-ards-bundle.json").exists()
    report = json.loads((out / "sdtm" / "conversion-report.json").read_text())
    assert report["rows"] == {"AE": 11, "DM": 20, "EX": 30, "LB": 640, "TS": 8, "VS": 500}
    assert report["reconciles"] and report["unmapped"] == []
    assert "LB" in result.output and "640" in result.output
    assert "unmapped: 0" in result.output
    assert "CRP" in result.output and "SPO2/FIO2" in result.output
    assert (out / "sdtm" / "define.xml").exists()
    assert (out / "sdtm" / "validation-report.html").exists()
    assert "valid against the XSD" in result.output
    roundtrip = json.loads((out / "fhir-from-sdtm" / "bundle.json").read_text())
    assert roundtrip["resourceType"] == "Bundle" and len(roundtrip["entry"]) > 1000


def test_demo_is_byte_identical_for_the_same_seed(tmp_path):
    first, second = tmp_path / "a" / "demo", tmp_path / "b" / "demo"
    for out in (first, second):
        assert CliRunner().invoke(main, ["demo", str(out), "-q"]).exit_code == 0
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    # bundle, 6 XPT + 6 Dataset-JSON, conversion report, provenance, validation reports
    # (JSON + HTML), define.xml, and the bundle converted back from SDTM
    assert len(files) == 19
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel


def test_demo_xpt_files_reread_with_values_labels_and_types(tmp_path):
    out = tmp_path / "demo"
    assert CliRunner().invoke(main, ["demo", str(out), "-q"]).exit_code == 0
    frame, meta = pyreadstat.read_xport(str(out / "sdtm" / "lb.xpt"))
    assert meta.table_name == "LB" and len(frame) == 640
    labels = dict(zip(meta.column_names, meta.column_labels, strict=True))
    assert labels["LBTESTCD"] == sdtmig.variable("LB", "LBTESTCD").label
    assert labels["LBSTRESN"] == "Numeric Result/Finding in Standard Units"
    assert meta.readstat_variable_types["LBSTRESN"] == "double"
    assert meta.readstat_variable_types["LBTESTCD"] == "string"
    json_frame, _ = read_dataset(out / "sdtm" / "lb.json")
    xpt_frame, xpt_meta = read_dataset(out / "sdtm" / "lb.xpt")
    assert list(xpt_frame.columns) == [c.name for c in xpt_meta.columns]
    assert xpt_frame.equals(json_frame)


def test_to_sdtm_on_a_hospital_export_with_a_subjects_file(tmp_path):
    lines = [
        {"resourceType": "Patient", "id": "a", "gender": "female", "birthDate": "1960-02-01"},
        {"resourceType": "Patient", "id": "b", "gender": "male"},
        {"resourceType": "Observation", "id": "o1", "status": "final",
         "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                   "observation-category", "code": "laboratory"}]}],
         "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
         "subject": {"reference": "Patient/a"}, "effectiveDateTime": "2021-03-02T09:00:00Z",
         "valueQuantity": {"value": 5.4, "system": "http://unitsofmeasure.org",
                           "code": "mmol/L", "unit": "mmol/L"}},
        {"resourceType": "Observation", "id": "o2", "status": "final",
         "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
         "subject": {"reference": "Patient/b"}, "effectiveDateTime": "2021-03-02",
         "valueQuantity": {"value": 6.0, "code": "mmol/L",
                           "system": "http://unitsofmeasure.org"}},
    ]
    export = tmp_path / "Observation.ndjson"
    export.write_text("\n".join(json.dumps(x) for x in lines), encoding="utf-8")
    subjects = tmp_path / "subjects.csv"
    subjects.write_text("patient_id,SUBJID,SITEID,ARMCD,ARM,RFICDTC\n"
                        "a,1001,10,A,Drug A,2021-03-01\n", encoding="utf-8")
    out = tmp_path / "sdtm"
    result = CliRunner().invoke(main, ["to-sdtm", str(export), "-o", str(out), "--study-id",
                                       "HOSP1", "--subjects", str(subjects), "--format", "csv",
                                       "--format", "ndjson", "-q"])
    assert result.exit_code == 0, result.output
    dm, _ = read_dataset(out / "dm.csv")
    assert dm.loc[0, "USUBJID"] == "HOSP1-10-1001" and dm.loc[0, "ARM"] == "Drug A"
    assert dm.loc[0, "RFICDTC"] == "2021-03-01" and dm.loc[0, "SEX"] == "F"
    lb, _ = read_dataset(out / "lb.ndjson")
    assert len(lb) == 1 and lb.loc[0, "LBTESTCD"] == "GLUC" and lb.loc[0, "LBSTRESN"] == 5.4
    report = json.loads((out / "conversion-report.json").read_text())
    reasons = {(u["resource"], u["reason_code"]) for u in report["unmapped"]}
    assert reasons == {("Patient/b", "subject-not-enrolled"),
                       ("Observation/o2", "subject-not-enrolled")}


def test_user_terminology_file_maps_a_local_code(tmp_path):
    lines = [{"resourceType": "Patient", "id": "a"},
             {"resourceType": "Observation", "id": "o1", "status": "final",
              "code": {"coding": [{"system": "urn:hospital:lab", "code": "K-SER"}]},
              "subject": {"reference": "Patient/a"}, "effectiveDateTime": "2021-03-02",
              "valueQuantity": {"value": 4.1, "system": "http://unitsofmeasure.org",
                                "code": "mmol/L"}}]
    export = tmp_path / "export.ndjson"
    export.write_text("\n".join(json.dumps(x) for x in lines), encoding="utf-8")
    args = ["to-sdtm", str(export), "--study-id", "H", "--format", "csv", "-q"]
    without = CliRunner().invoke(main, [*args, "-o", str(tmp_path / "a")])
    assert without.exit_code == 0  # out of scope: no test table knows the local code
    report = json.loads((tmp_path / "a" / "conversion-report.json").read_text())
    assert report["unmapped_reasons"] == {"unsupported-category": 1}
    terms = tmp_path / "local.csv"
    terms.write_text("table,system,code,display,submission_value,decode,nci_code,preferred,"
                     "attributes\nLBTEST,urn:hospital:lab,K-SER,Potassium,K,Potassium,C64853,Y,"
                     "LBSPEC=SERUM\n", encoding="utf-8")
    with_terms = CliRunner().invoke(main, [*args, "-o", str(tmp_path / "b"), "--terminology",
                                           str(terms)])
    assert with_terms.exit_code == 0, with_terms.output
    lb, _ = read_dataset(tmp_path / "b" / "lb.csv")
    assert lb.loc[0, "LBTESTCD"] == "K" and lb.loc[0, "LBSPEC"] == "SERUM"
