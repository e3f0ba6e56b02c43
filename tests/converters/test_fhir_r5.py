"""FHIR R5 input: the demo trial in R5 shape converts to the same SDTM as the R4 demo.

The R5 Bundle comes from :func:`fhircdisc.examples.r5_shapes.to_r5`. Nothing in the
demo is genuinely different between R4 and R5 for SDTM (the one candidate, RFICDTC from
R5 ``Consent.date`` which has no time, is date-only in the R4 demo too), so every domain
is compared whole.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fhir.resources import get_fhir_model_class
from fhir.resources.adverseevent import AdverseEvent
from fhir.resources.bundle import Bundle

from fhircdisc import to_sdtm
from fhircdisc.converters.fhir_version import resource_version
from fhircdisc.errors import InputError
from fhircdisc.examples.demo_codes import DEMO_TERMINOLOGY
from fhircdisc.examples.demo_trial import generate_demo_bundle
from fhircdisc.examples.r5_shapes import R4_AE_SEVERITY, R5_AE_OCCURRENCE, to_r5

DOMAINS = ("DM", "EX", "LB", "VS", "AE", "TS")

def _resources(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def _write(bundle: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(bundle), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def r4_bundle() -> dict[str, Any]:
    return generate_demo_bundle()


@pytest.fixture(scope="module")
def r5_bundle(r4_bundle: dict[str, Any]) -> dict[str, Any]:
    return to_r5(r4_bundle)


@pytest.fixture(scope="module")
def r5_path(r5_bundle: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write(r5_bundle, tmp_path_factory.mktemp("r5") / "bundle-r5.json")


@pytest.fixture(scope="module")
def r5_study(r5_path: Path):
    return to_sdtm([r5_path], terminology=[DEMO_TERMINOLOGY])


# ------------------------------------------------------------------ the R5 Bundle

def _codes_outside_r5_value_sets(resource: dict[str, Any]) -> list[str]:
    """Top-level required-binding codes (status, actuality, ...) the R5 model does not list.

    fhir.resources checks element names and types, not these codes, so check them here
    (a list ending in "+" is only the start of the value set: skipped).
    """
    fields = get_fhir_model_class(resource["resourceType"]).model_fields
    bad = []
    for name, field in fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        allowed = extra.get("enum_values")
        key = field.alias or name
        if allowed and "+" not in allowed and key in resource and resource[key] not in allowed:
            bad.append(f"{resource['resourceType']}/{resource.get('id')}.{key}="
                       f"{resource[key]!r}")
    return bad


def test_r5_bundle_validates_with_r5_models(r5_bundle):
    Bundle.model_validate(r5_bundle)
    bad = [b for e in r5_bundle["entry"] for b in _codes_outside_r5_value_sets(e["resource"])]
    assert bad == []


def test_r4_demo_is_not_valid_r5(r4_bundle):
    # to_r5 is needed at all: the R4 demo breaks the R5 models.
    with pytest.raises(ValueError, match="arm"):
        Bundle.model_validate(r4_bundle)


def test_every_version_telling_resource_says_r5(r5_bundle):
    votes = {resource_version(e["resource"]) for e in r5_bundle["entry"]}
    assert votes == {"R5", None}


def test_to_r5_copies_and_keeps_the_entries(r4_bundle, r5_bundle):
    assert r4_bundle == generate_demo_bundle()          # the input is not mutated
    assert to_r5(r4_bundle) == r5_bundle                # deterministic
    assert [e["fullUrl"] for e in r5_bundle["entry"]] == [e["fullUrl"] for e in
                                                         r4_bundle["entry"]]
    for rtype in ("Patient", "Observation"):            # same in R4 and R5
        assert _resources(r5_bundle, rtype) == _resources(r4_bundle, rtype)


def test_r5_shapes_of_the_changed_resources(r4_bundle, r5_bundle):
    study = next(r for r in _resources(r5_bundle, "ResearchStudy") if r["id"] == "ucmsc-ards")
    assert [(g["linkId"], g["name"]) for g in study["comparisonGroup"]] == [
        ("MSC", "MSC"), ("CTRL", "CTRL")]
    assert study["associatedParty"] == [{
        "role": {"coding": [{"system": "http://hl7.org/fhir/research-study-party-role",
                             "code": "sponsor", "display": "sponsor"}]},
        "party": {"reference": "Organization/sponsor"}}]
    assert study["status"] == "active"
    assert study["progressStatus"][0]["state"]["coding"][0]["code"] == "completed"
    assert study["primaryPurposeType"]["coding"][0]["code"] == "treatment"
    assert not {"arm", "sponsor", "category"} & set(study)

    subject = _resources(r5_bundle, "ResearchSubject")[0]
    assert subject["subject"] == {"reference": "Patient/pat-001"}
    assert subject["assignedComparisonGroup"] == subject["actualComparisonGroup"]
    assert subject["consent"] == [{"reference": "Consent/consent-001"}]
    assert subject["progress"][0]["subjectState"]["coding"][0]["code"] == "off-study"

    admin = _resources(r5_bundle, "MedicationAdministration")[0]
    assert admin["medication"] == {"reference": {"reference": "Medication/med-ucmsc"}}
    assert "occurencePeriod" in admin and "effectivePeriod" not in admin

    assert "doseForm" in _resources(r5_bundle, "Medication")[0]
    encounter = _resources(r5_bundle, "Encounter")[0]
    assert encounter["status"] == "completed" and "actualPeriod" in encounter
    assert encounter["class"][0]["coding"][0]["code"] == "IMP"
    consent = _resources(r5_bundle, "Consent")[0]
    assert consent["date"] == _resources(r4_bundle, "Consent")[0]["dateTime"]
    assert consent["subject"] == {"reference": "Patient/pat-001"}

    r4_events = {r["id"]: r for r in _resources(r4_bundle, "AdverseEvent")}
    for event in _resources(r5_bundle, "AdverseEvent"):
        r4 = r4_events[event["id"]]
        assert event["code"] == r4["event"]
        assert event["occurrencePeriod"] == r4["extension"][0]["valuePeriod"]
        assert [e["url"] for e in event["extension"]] == [R4_AE_SEVERITY]
        assert R5_AE_OCCURRENCE not in json.dumps(event)
        assert event["outcome"] == [r4["outcome"]]
        assert event["status"] == ("in-progress" if "end" not in event["occurrencePeriod"]
                                   else "completed")
        for suspect, old in zip(event.get("suspectEntity", []), r4.get("suspectEntity", []),
                                strict=True):
            assert suspect["instanceReference"] == old["instance"]
            assert suspect["causality"] == {"entityRelatedness":
                                            old["causality"][0]["assessment"]}


def test_to_r5_refuses_an_r4_element_it_has_no_rule_for(r4_bundle):
    bundle = copy.deepcopy(r4_bundle)
    bundle["entry"][1]["resource"]["enrollment"] = [{"reference": "Group/all"}]
    with pytest.raises(ValueError, match=r"ResearchStudy/ucmsc-ards.*enrollment"):
        to_r5(bundle)


# --------------------------------------------------------------- R5 -> SDTM

def test_r5_input_is_detected_as_r5(r5_study):
    assert r5_study.report.fhir_version == "R5"
    assert r5_study.report.unmapped == []


def test_same_domains(demo_study, r5_study):
    assert demo_study.report.fhir_version == "R4"
    assert set(r5_study.domains) == set(demo_study.domains) == set(DOMAINS)


@pytest.mark.parametrize("domain", DOMAINS)
def test_same_row_count(demo_study, r5_study, domain):
    assert len(r5_study.domains[domain]) == len(demo_study.domains[domain])


@pytest.mark.parametrize("domain", DOMAINS)
def test_same_sdtm_dataset(demo_study, r5_study, domain):
    # No variable is excluded: none differs genuinely between the R4 and R5 demo.
    pd.testing.assert_frame_equal(r5_study.domains[domain], demo_study.domains[domain])


# ------------------------------------------------------------------ refusals

def _first_r5_location(bundle: dict[str, Any]) -> str:
    index = next(i for i, e in enumerate(bundle["entry"])
                 if resource_version(e["resource"]) == "R5")
    return f"$.entry[{index}]"


@pytest.mark.parametrize("requested", ["R4", "R4B"])
def test_r4_requested_on_r5_input_is_refused_with_the_place(r5_bundle, r5_path, requested):
    with pytest.raises(InputError) as caught:
        to_sdtm([r5_path], fhir_version=requested, terminology=[DEMO_TERMINOLOGY])
    message = str(caught.value)
    assert f"{requested} given" in message and "R5" in message
    assert f"{r5_path} [{_first_r5_location(r5_bundle)}]" in message
    assert caught.value.source == str(r5_path)


def test_r4_requested_on_r5_input_names_the_r5_element(r5_path):
    with pytest.raises(InputError) as caught:
        to_sdtm([r5_path], fhir_version="R4", terminology=[DEMO_TERMINOLOGY])
    # entry[1] is the ResearchStudy: comparisonGroup and associatedParty are R5-only.
    assert re.search(r"ResearchStudy\.(comparisonGroup|associatedParty)", str(caught.value))


def test_mixing_r4_and_r5_bundles_is_refused(demo_bundle_path, r5_path):
    with pytest.raises(InputError, match="mixes FHIR versions") as caught:
        to_sdtm([demo_bundle_path, r5_path], terminology=[DEMO_TERMINOLOGY])
    assert str(demo_bundle_path) in str(caught.value) and str(r5_path) in str(caught.value)


# ------------------------------------------------------- a hand-written R5 event

def test_minimal_r5_adverse_event(tmp_path):
    event = {
        "resourceType": "AdverseEvent",
        "id": "ae-1",
        "status": "completed",          # R5: required
        "actuality": "actual",
        "subject": {"reference": "Patient/p1"},
        "code": {"text": "Headache after dosing"},
        "occurrenceDateTime": "2024-03-05T10:30:00+01:00",
        "seriousness": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness",
            "code": "serious"}]},
    }
    AdverseEvent.model_validate(event)
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p1", "gender": "female"}},
        {"resource": event}]}
    Bundle.model_validate(bundle)
    study = to_sdtm([_write(bundle, tmp_path / "ae.json")], study_id="S1")
    assert study.report.fhir_version == "R5"
    assert study.report.unmapped == []
    ae = study["AE"]
    assert len(ae) == 1
    row = ae.iloc[0].to_dict()
    assert (row["STUDYID"], row["USUBJID"]) == ("S1", "S1-p1")
    assert row["AETERM"] == "Headache after dosing"
    assert row["AESTDTC"] == "2024-03-05T10:30:00"
    assert row["AESER"] == "Y"
    # nothing else was given (the Study drops all-empty columns, hence .get)
    assert all(pd.isna(row.get(var)) for var in ("AEDECOD", "AESEV", "AEENDTC", "AEREL"))
