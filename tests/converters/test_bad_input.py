"""Bad FHIR input: a clear message naming file and place, nothing half-written, the rest kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhircdisc import InputError, to_sdtm
from fhircdisc.cli import main

LOINC_CRP = {"coding": [{"system": "http://loinc.org", "code": "1988-5"}]}
MG_L = {"value": 3.1, "unit": "mg/L", "system": "http://unitsofmeasure.org", "code": "mg/L"}


def _obs(oid: str, **extra) -> dict:
    return {"resourceType": "Observation", "id": oid, "status": "final", "code": LOINC_CRP,
            "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2020-06-14",
            "valueQuantity": MG_L, **extra}


def _ndjson(path: Path, lines: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    return path


def _run(args: list[str]):
    return CliRunner().invoke(main, args)


def test_malformed_json_names_file_line_and_column(tmp_path):
    bad = tmp_path / "bundle.json"
    bad.write_text('{"resourceType": "Bundle", "entry": [\n  {"resource": {\n', encoding="utf-8")
    out = tmp_path / "out"
    result = _run(["to-sdtm", str(bad), "-o", str(out), "--study-id", "S"])
    assert result.exit_code == 2
    assert f"{bad} [line 3, column 1]: malformed JSON" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_malformed_ndjson_line_names_its_line(tmp_path):
    path = tmp_path / "Observation.ndjson"
    path.write_text(json.dumps(_obs("o1")) + "\n{not json}\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"Observation.ndjson \[line 2, column \d+\]: malformed"):
        to_sdtm([path], study_id="S")


def test_resource_without_resource_type_is_reported_and_the_rest_converts(tmp_path):
    path = _ndjson(tmp_path / "export.ndjson", [
        {"resourceType": "Patient", "id": "p1"}, {"id": "no-type"}, _obs("o1")])
    study = to_sdtm([path], study_id="S")
    assert len(study["LB"]) == 1
    [item] = study.report.unmapped
    assert (item.reason_code, item.location) == ("missing-resourceType", "line 2")
    assert study.report.reconciles()


def test_a_resource_type_that_is_not_text_is_reported_by_both_engines(tmp_path):
    """A list or an object as resourceType (no FHIR server writes one): the line is
    reported as a resource type without a mapping, by the streaming engine as by the
    in-memory one, and the rest converts."""
    from fhircdisc.converters.streaming import stream_to_sdtm

    path = _ndjson(tmp_path / "export.ndjson", [
        {"resourceType": "Patient", "id": "p1"}, {"resourceType": ["Patient"], "id": "x"},
        {"resourceType": {"type": "Encounter"}}, _obs("o1")])
    study = to_sdtm([path], study_id="S")
    streamed = stream_to_sdtm([path], tmp_path / "out", ("csv",), study_id="S", workers=1)
    for report in (study.report, streamed.report):
        assert report.reconciles() and report.rows["LB"] == 1
    assert [(item.reason_code, item.location) for item in study.report.unmapped] == [
        ("unsupported-resource-type", "line 2"), ("unsupported-resource-type", "line 3")]
    written = json.loads((tmp_path / "out" / "conversion-report.json").read_text())
    assert [(item["reason_code"], item["location"]) for item in written["unmapped"]] == [
        ("unsupported-resource-type", "line 2"), ("unsupported-resource-type", "line 3")]


def test_a_full_url_that_is_not_text_is_not_used(tmp_path):
    """A Bundle entry whose fullUrl is an object or an array: the resource is still read
    and found by its id, and the conversion finishes."""
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": {"url": "urn:uuid:1"}, "resource": {"resourceType": "Patient", "id": "p1"}},
        {"fullUrl": ["urn:uuid:2"], "resource": _obs("o1")}]}), encoding="utf-8")
    study = to_sdtm([path], study_id="S")
    assert len(study["DM"]) == 1 and len(study["LB"]) == 1
    assert study.report.unmapped == [] and study.report.reconciles()


def test_bundle_entry_without_resource_names_the_entry(tmp_path):
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p1"}}, {"fullUrl": "urn:uuid:x"},
        {"resource": _obs("o1")}]}), encoding="utf-8")
    study = to_sdtm([path], study_id="S")
    [item] = study.report.unmapped
    assert item.reason_code == "entry-without-resource" and item.location == "$.entry[1]"
    assert len(study["LB"]) == 1


def test_observation_without_subject_is_listed_with_its_place(tmp_path):
    obs = _obs("o2")
    del obs["subject"]
    path = _ndjson(tmp_path / "export.ndjson", [{"resourceType": "Patient", "id": "p1"},
                                                _obs("o1"), obs])
    study = to_sdtm([path], study_id="S")
    [item] = study.report.unmapped
    assert (item.resource, item.reason_code, item.location, item.element) == (
        "Observation/o2", "missing-subject", "line 3", "Observation.subject")
    assert len(study["LB"]) == 1


def test_date_that_is_not_iso_8601_is_rejected_not_guessed(tmp_path):
    path = _ndjson(tmp_path / "export.ndjson", [
        {"resourceType": "Patient", "id": "p1"}, _obs("o1", effectiveDateTime="14/06/2020"),
        _obs("o2")])
    study = to_sdtm([path], study_id="S")
    [item] = study.report.unmapped
    assert item.reason_code == "invalid-date"
    assert "'14/06/2020' is not an ISO 8601 date" in item.message
    assert item.element == "Observation.effectiveDateTime"


def test_problems_give_exit_code_1_and_the_output_is_still_written(tmp_path):
    path = _ndjson(tmp_path / "export.ndjson", [
        {"resourceType": "Patient", "id": "p1"}, _obs("o1", effectiveDateTime="2020-99-01")])
    out = tmp_path / "out"
    result = _run(["to-sdtm", str(path), "-o", str(out), "--study-id", "S", "--format", "csv"])
    assert result.exit_code == 1, result.output
    assert (out / "dm.csv").exists() and not (out / "lb.csv").exists()
    report = json.loads((out / "conversion-report.json").read_text())
    assert report["unmapped_reasons"] == {"invalid-date": 1}


def test_unknown_fhir_version_is_refused(tmp_path):
    path = _ndjson(tmp_path / "export.ndjson", [{"resourceType": "Patient", "id": "p1"}])
    result = _run(["to-sdtm", str(path), "-o", str(tmp_path / "out"), "--fhir-version", "R7"])
    assert result.exit_code == 2
    assert "R7" in result.output
    with pytest.raises(InputError, match="unknown FHIR version 'R7'"):
        to_sdtm([path], study_id="S", fhir_version="R7")


def test_missing_input_and_no_study(tmp_path):
    result = _run(["to-sdtm", str(tmp_path / "nope.json"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and "no such file or folder" in result.output
    path = _ndjson(tmp_path / "export.ndjson", [{"resourceType": "Patient", "id": "p1"}])
    result = _run(["to-sdtm", str(path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and "give --study-id" in result.output
    assert not (tmp_path / "out").exists()


def test_xpt_limit_violation_leaves_no_output(tmp_path):
    obs = _obs("o1", valueString="x" * 250)
    del obs["valueQuantity"]
    path = _ndjson(tmp_path / "export.ndjson", [{"resourceType": "Patient", "id": "p1"}, obs])
    out = tmp_path / "out"
    result = _run(["to-sdtm", str(path), "-o", str(out), "--study-id", "S"])
    assert result.exit_code == 2
    assert "LB.LBORRES row 1: value is 250 bytes, XPT v5 allows 200" in result.output
    assert not out.exists()


def test_source_resource_properties_are_worked_out_once_and_stay() -> None:
    from fhircdisc.converters.fhir_reader import Origin, SourceResource

    resource = SourceResource({"resourceType": "Patient", "id": 7}, Origin("f.ndjson", "line 3"))
    assert (resource.type, resource.id, resource.key) == ("Patient", "7", "Patient/7")
    assert resource.report_key == "Patient/7@f.ndjson [line 3]"
    resource.data["id"] = "changed"               # read once: later reads keep the first
    assert resource.key == "Patient/7" and vars(resource)["key"] == "Patient/7"
    no_id = SourceResource({"resourceType": "Observation"}, Origin("b.json", "$.entry[2]"))
    assert no_id.id is None and no_id.key == "Observation@b.json [$.entry[2]]"


_SDTM_VARIABLE = "https://fhircdisc.org/fhir/StructureDefinition/sdtm-variable"
_ODD = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False,
                                                                allow_infinity=False)
    | st.sampled_from(["", "x", "Patient/p1", "2020-06-14"]),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(
        st.sampled_from(["coding", "code", "reference", "value", "url", "extension",
                         "valueString", "valueCode", "text"]), inner, max_size=2),
    max_leaves=6) | st.sampled_from([
        [{"url": _SDTM_VARIABLE, "extension": 5}],
        [{"url": _SDTM_VARIABLE, "extension": [5, {"url": "name", "valueCode": ["x"]}]}],
        [{"url": _SDTM_VARIABLE, "extension": [{"url": "name", "valueCode": "LBTESTCD"},
                                               {"url": "value", "valueString": [1]}]}]])
_BASES = {
    "Observation": _obs("o9"),
    "Patient": {"resourceType": "Patient", "id": "p9", "gender": "female",
                "birthDate": "1970-01-01"},
    "Encounter": {"resourceType": "Encounter", "id": "e9", "status": "finished"},
    "MedicationAdministration": {
        "resourceType": "MedicationAdministration", "id": "m9", "status": "completed",
        "subject": {"reference": "Patient/p1"}, "medicationCodeableConcept": {"text": "X"},
        "effectiveDateTime": "2020-06-14"},
    "AdverseEvent": {"resourceType": "AdverseEvent", "id": "a9",
                     "subject": {"reference": "Patient/p1"}, "event": {"text": "Headache"},
                     "date": "2020-06-14"},
}
_ELEMENTS = ["extension", "status", "subject", "code", "category", "valueQuantity",
             "valueString", "component", "referenceRange", "effectiveDateTime", "encounter",
             "gender", "birthDate", "medicationCodeableConcept", "event", "date", "dosage"]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.sampled_from(sorted(_BASES)),
       st.dictionaries(st.sampled_from(_ELEMENTS), _ODD, min_size=1, max_size=3))
def test_elements_of_any_shape_are_reported_not_raised(
        tmp_path_factory: pytest.TempPathFactory, kind: str, odd: dict[str, object]) -> None:
    """A resource whose elements hold JSON of any shape: both engines finish, and report
    it (or map it) the same way; the rest of the input still converts."""
    from fhircdisc.converters.streaming import stream_to_sdtm

    folder = tmp_path_factory.mktemp("odd")
    path = _ndjson(folder / "export.ndjson", [
        {"resourceType": "Patient", "id": "p1"}, {**_BASES[kind], **odd}, _obs("o1")])
    study = to_sdtm([path], study_id="S")
    streamed = stream_to_sdtm([path], folder / "out", ("csv",), study_id="S", workers=1)
    assert study.report.reconciles() and streamed.report.reconciles()
    assert study.report.counts() == streamed.report.counts()
    written = json.loads((folder / "out" / "conversion-report.json").read_text())
    assert [(item["resource"], item["reason_code"]) for item in written["unmapped"]] == [
        (item.resource, item.reason_code) for item in study.report.unmapped]
    assert len(study["LB"]) >= 1                   # the good result still converts


_MA = _BASES["MedicationAdministration"]
_AE = _BASES["AdverseEvent"]


@pytest.mark.parametrize("resource", [
    {**_MA, "dosage": {"route": {"coding": 5}}},
    {**_MA, "medicationCodeableConcept": {"coding": [{"system": {"a": 1}, "code": "1"}]}},
    {**_AE, "event": {"coding": 7, "text": "Headache"}},
    {**_AE, "event": {"concept": 5}},
    {**_AE, "seriousness": {"coding": [{"system": [1], "code": "serious"}]}},
    {"resourceType": "ResearchStudy", "id": "s1", "status": "active", "identifier": 5},
], ids=["route-coding", "medication-system", "event-coding", "event-concept",
        "seriousness-system", "study-identifier"])
def test_nested_elements_of_another_shape_are_reported_not_raised(tmp_path, resource):
    """Codings, systems and identifiers of the wrong shape deep in the resources whose
    other elements are read by paths: both engines finish, with the same report."""
    from fhircdisc.converters.streaming import stream_to_sdtm

    path = _ndjson(tmp_path / "export.ndjson", [
        {"resourceType": "Patient", "id": "p1"}, resource, _obs("o1")])
    study = to_sdtm([path], study_id="S")
    streamed = stream_to_sdtm([path], tmp_path / "out", ("csv",), study_id="S", workers=1)
    assert study.report.reconciles() and study.report.counts() == streamed.report.counts()
    assert len(study["LB"]) == 1
    written = json.loads((tmp_path / "out" / "conversion-report.json").read_text())
    assert [(item["resource"], item["reason_code"]) for item in written["unmapped"]] == [
        (item.resource, item.reason_code) for item in study.report.unmapped]
