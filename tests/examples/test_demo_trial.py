"""The synthetic demo trial: determinism, shape, references, effects, R4B validity."""

from __future__ import annotations

import copy
import datetime as dt
import json
import statistics
from collections import Counter
from typing import Any

import orjson
import pytest
from fhir.resources.R4B.bundle import Bundle

from fhircdisc.examples import demo_codes
from fhircdisc.examples.demo_trial import (
    DEMO_SCHEDULE,
    DEMO_STUDY_ID,
    INFUSION_DAYS,
    generate_demo_bundle,
    subject_arms,
    write_demo_bundle,
)

N_PER_ARM = 10
N_SUBJECTS = 2 * N_PER_ARM
# Seed 2020: 5 subjects per arm with one event each, plus a second event for the
# first MSC subject with an event (an infusion site reaction).
EXPECTED_AES = [
    ("ae-003-1", "Skin rash on forearms"),
    ("ae-004-1", "Skin rash on forearms"),
    ("ae-004-2", "Redness at infusion site"),
    ("ae-005-1", "Low-grade fever"),
    ("ae-009-1", "Mild headache after infusion"),
    ("ae-010-1", "Skin rash on forearms"),
    ("ae-011-1", "Mild headache after infusion"),
    ("ae-014-1", "Redness at infusion site"),
    ("ae-015-1", "Tiredness"),
    ("ae-016-1", "Tiredness"),
    ("ae-020-1", "Tiredness"),
]


@pytest.fixture(scope="module")
def bundle() -> dict[str, Any]:
    return generate_demo_bundle()


def _resources(bundle: dict[str, Any], rtype: str | None = None) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"]
            if rtype is None or e["resource"]["resourceType"] == rtype]


def _category(obs: dict[str, Any]) -> str:
    return str(obs["category"][0]["coding"][0]["code"])


def _values(bundle: dict[str, Any], testcd: str) -> dict[tuple[str, int], float]:
    """(subjid, visitnum) -> value of the lab test ``testcd``."""
    out = {}
    for obs in _resources(bundle, "Observation"):
        kind, subjid, visitnum, code = obs["id"].split("-")
        if kind == "lab" and code == testcd.lower() and "valueQuantity" in obs:
            out[(subjid, int(visitnum))] = obs["valueQuantity"]["value"]
    return out


def _mean_ratio(bundle: dict[str, Any], testcd: str, arm: str) -> float:
    values = _values(bundle, testcd)
    ratios = [values[(s, 4)] / values[(s, 1)] for s, a in subject_arms(bundle).items()
              if a == arm and (s, 4) in values and (s, 1) in values]
    assert len(ratios) >= N_PER_ARM - 1
    return statistics.mean(ratios)


# ------------------------------------------------------------------ determinism

def test_same_seed_gives_identical_bundle(bundle: dict[str, Any]) -> None:
    again = generate_demo_bundle(2020)
    assert again == bundle
    assert json.dumps(again, sort_keys=True) == json.dumps(bundle, sort_keys=True)


def test_other_seed_changes_values_not_counts(bundle: dict[str, Any]) -> None:
    other = generate_demo_bundle(7)
    count = Counter(r["resourceType"] for r in _resources(bundle))
    assert Counter(r["resourceType"] for r in _resources(other)) == count
    assert _values(other, "CRP") != _values(bundle, "CRP")


def test_write_demo_bundle(tmp_path: Any, bundle: dict[str, Any]) -> None:
    target = write_demo_bundle(tmp_path / "out" / "demo.json")
    raw = target.read_bytes()
    assert orjson.loads(raw) == bundle
    assert raw.rstrip(b"\n") == orjson.dumps(
        bundle, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    assert [p.name for p in target.parent.iterdir()] == ["demo.json"]


# ------------------------------------------------------------------------ shape

def test_bundle_header(bundle: dict[str, Any]) -> None:
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "collection"
    assert bundle["id"] == "ucmsc-ards-demo"
    assert bundle["timestamp"] == "2020-09-30T12:00:00+03:30"


def test_counts_per_resource_type(bundle: dict[str, Any]) -> None:
    counts = Counter(r["resourceType"] for r in _resources(bundle))
    obs = Counter(_category(o) for o in _resources(bundle, "Observation"))
    assert counts == {
        "Organization": 1, "ResearchStudy": 2, "Medication": 1,
        "Patient": 20, "Consent": 20, "ResearchSubject": 20, "Encounter": 80,
        "Observation": 640 + 420, "MedicationAdministration": 30,
        "AdverseEvent": len(EXPECTED_AES),
    }
    assert obs == {"laboratory": 640, "vital-signs": 20 * 4 * 5 + 20}


def test_smaller_trial() -> None:
    small = generate_demo_bundle(n_per_arm=4)
    counts = Counter(r["resourceType"] for r in _resources(small))
    assert counts["Patient"] == 8
    assert counts["MedicationAdministration"] == 12
    assert Counter(subject_arms(small).values()) == {"MSC": 4, "CTRL": 4}
    with pytest.raises(ValueError, match="n_per_arm"):
        generate_demo_bundle(n_per_arm=0)


def test_entry_order(bundle: dict[str, Any]) -> None:
    types = [r["resourceType"] for r in _resources(bundle)]
    assert types[:3] == ["Organization", "ResearchStudy", "ResearchStudy"]
    assert types.index("Medication") < types.index("MedicationAdministration")
    first_subject = types[types.index("Patient"):types.index("Patient", types.index("Patient") + 1)]
    order = ["Patient", "Consent", "ResearchSubject", "Encounter", "Observation",
             "MedicationAdministration", "AdverseEvent"]
    ranks = [order.index(t) for t in first_subject]
    assert ranks == sorted(ranks)


def test_ids_unique_and_full_urls(bundle: dict[str, Any]) -> None:
    keys = [(e["resource"]["resourceType"], e["resource"]["id"]) for e in bundle["entry"]]
    assert len(set(keys)) == len(keys)
    for entry in bundle["entry"]:
        r = entry["resource"]
        assert entry["fullUrl"] == f"https://example.org/fhir/{r['resourceType']}/{r['id']}"


def _references(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["reference"]] if isinstance(node.get("reference"), str) else []
        return found + [ref for value in node.values() for ref in _references(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _references(item)]
    return []


def test_every_reference_resolves(bundle: dict[str, Any]) -> None:
    known = {f"{r['resourceType']}/{r['id']}" for r in _resources(bundle)}
    refs = _references(bundle["entry"])
    assert len(refs) > 2000
    assert sorted(set(refs) - known) == []


def test_arms_and_study_identifiers(bundle: dict[str, Any]) -> None:
    arms = subject_arms(bundle)
    assert sorted(arms) == [f"{i:03d}" for i in range(1, N_SUBJECTS + 1)]
    assert Counter(arms.values()) == {"MSC": N_PER_ARM, "CTRL": N_PER_ARM}
    study, site = _resources(bundle, "ResearchStudy")
    assert study["identifier"][0]["value"] == DEMO_STUDY_ID
    assert [a["name"] for a in study["arm"]] == ["MSC", "CTRL"]
    assert site["partOf"] == [{"reference": "ResearchStudy/ucmsc-ards"}]
    assert site["identifier"] == [{"system": "urn:fhircdisc:demo:site", "value": "01"}]
    for rs in _resources(bundle, "ResearchSubject"):
        assert rs["study"] == {"reference": "ResearchStudy/ucmsc-ards-site-01"}
        assert rs["assignedArm"] == rs["actualArm"]


def test_timeline(bundle: dict[str, Any]) -> None:
    consents = {c["id"][-3:]: dt.date.fromisoformat(c["dateTime"])
                for c in _resources(bundle, "Consent")}
    assert min(consents.values()) >= dt.date(2020, 4, 5)
    assert max(consents.values()) <= dt.date(2020, 7, 31)
    for enc in _resources(bundle, "Encounter"):
        subjid, visitnum = enc["id"].split("-")[1:]
        day, name = DEMO_SCHEDULE[int(visitnum)]
        assert enc["type"] == [{"text": name}]
        assert enc["period"]["start"] == str(consents[subjid] + dt.timedelta(days=day))
    for rs in _resources(bundle, "ResearchSubject"):
        day0 = consents[rs["id"][-3:]]
        assert rs["period"] == {"start": str(day0 + dt.timedelta(days=1)),
                                "end": str(day0 + dt.timedelta(days=17))}
    arms = subject_arms(bundle)
    infused: dict[str, list[int]] = {}
    for ma in _resources(bundle, "MedicationAdministration"):
        subjid = ma["subject"]["reference"][-3:]
        start = dt.datetime.fromisoformat(ma["effectivePeriod"]["start"])
        infused.setdefault(subjid, []).append((start.date() - consents[subjid]).days)
        assert ma["dosage"]["dose"]["code"] == demo_codes.DOSE_UCUM
    assert sorted(infused) == sorted(s for s, a in arms.items() if a == "MSC")
    assert all(days == list(INFUSION_DAYS) for days in infused.values())


def test_codes_come_from_demo_codes(bundle: dict[str, Any]) -> None:
    lab_codes = {o["code"]["coding"][0]["code"] for o in _resources(bundle, "Observation")
                 if _category(o) == "laboratory"}
    assert lab_codes == {t.loinc for t in demo_codes.LAB_TESTS}
    vs_codes = {o["code"]["coding"][0]["code"] for o in _resources(bundle, "Observation")
                if _category(o) == "vital-signs"}
    tests = (demo_codes.OXYSAT, demo_codes.FIO2, demo_codes.PULSE, demo_codes.TEMP,
             demo_codes.WEIGHT)
    assert vs_codes == {t.loinc for t in tests} | {demo_codes.BP_PANEL_LOINC}
    bp = next(o for o in _resources(bundle, "Observation") if o["id"] == "vs-001-1-bp")
    assert [c["code"]["coding"][0]["code"] for c in bp["component"]] == [
        demo_codes.SYSBP.loinc, demo_codes.DIABP.loinc]
    assert "valueQuantity" not in bp


def test_dates_with_time_carry_an_offset(bundle: dict[str, Any]) -> None:
    for obs in _resources(bundle, "Observation"):
        assert dt.datetime.fromisoformat(obs["effectiveDateTime"]).utcoffset() is not None


# ------------------------------------------------------------- special records

def test_partial_dates(bundle: dict[str, Any]) -> None:
    births = [p["birthDate"] for p in _resources(bundle, "Patient")]
    assert sorted(len(b) for b in births) == [4, 7] + [10] * (N_SUBJECTS - 2)
    ae_dates = [ae["date"] for ae in _resources(bundle, "AdverseEvent")]
    assert [len(d) for d in ae_dates].count(7) == 1


def test_cancelled_observation(bundle: dict[str, Any]) -> None:
    cancelled = [o for o in _resources(bundle, "Observation") if o["status"] != "final"]
    assert [o["id"] for o in cancelled] == ["lab-007-3-intlk10"]
    obs = cancelled[0]
    assert obs["status"] == "cancelled"
    assert "valueQuantity" not in obs
    assert obs["dataAbsentReason"]["coding"][0]["code"] == "not-performed"
    assert obs["dataAbsentReason"]["text"] == "SAMPLE HAEMOLYSED"


def test_adverse_events(bundle: dict[str, Any]) -> None:
    aes = _resources(bundle, "AdverseEvent")
    assert [(ae["id"], ae["event"]["text"]) for ae in aes] == EXPECTED_AES
    arms = subject_arms(bundle)
    by_arm = Counter(arms[ae["subject"]["reference"][-3:]] for ae in aes)
    assert by_arm == {"MSC": 6, "CTRL": 5}
    outcomes = Counter(ae["outcome"]["coding"][0]["code"] for ae in aes)
    assert outcomes == {"resolved": len(aes) - 1, "ongoing": 1}
    for ae in aes:
        assert ae["seriousness"]["coding"][0]["code"] == "non-serious"
        period = ae["extension"][0]["valuePeriod"]
        assert ("end" in period) == (ae["outcome"]["coding"][0]["code"] == "resolved")
        in_msc = arms[ae["subject"]["reference"][-3:]] == "MSC"
        assert ("suspectEntity" in ae) == in_msc
        if ae["event"]["text"] == "Redness at infusion site":
            assert in_msc


def test_ae_count_does_not_depend_on_seed() -> None:
    for seed in (1, 99):
        aes = _resources(generate_demo_bundle(seed), "AdverseEvent")
        assert len(aes) == len(EXPECTED_AES)


# ---------------------------------------------------------------------- effects

@pytest.mark.parametrize("seed", [2020, 1, 42])
def test_effect_direction(seed: int) -> None:
    b = generate_demo_bundle(seed)
    assert _mean_ratio(b, "CRP", "MSC") < 0.6
    assert _mean_ratio(b, "CRP", "CTRL") > 0.8
    for testcd in ("INTLK6", "IFNG", "TNF", "INTLK17"):
        assert _mean_ratio(b, testcd, "MSC") < 0.6
    for testcd in ("TGFB1", "INTLK1B", "INTLK10"):
        assert _mean_ratio(b, testcd, "MSC") > 1.3
        assert _mean_ratio(b, testcd, "MSC") > _mean_ratio(b, testcd, "CTRL")


def test_oxygenation_improves_more_with_msc(bundle: dict[str, Any]) -> None:
    vitals: dict[tuple[str, int, str], float] = {}
    for obs in _resources(bundle, "Observation"):
        if obs["id"].startswith("vs-") and "valueQuantity" in obs:
            _, subjid, visitnum, code = obs["id"].split("-")
            vitals[(subjid, int(visitnum), code)] = obs["valueQuantity"]["value"]

    def sf_gain(arm: str) -> float:
        subjects = [s for s, a in subject_arms(bundle).items() if a == arm]
        return statistics.mean(
            (vitals[(s, 4, "oxysat")] / vitals[(s, 4, "fio2")])
            / (vitals[(s, 1, "oxysat")] / vitals[(s, 1, "fio2")]) for s in subjects)

    assert sf_gain("MSC") > sf_gain("CTRL") > 1.0


# ------------------------------------------------------------------- validation

def test_bundle_validates_as_r4b(bundle: dict[str, Any]) -> None:
    model = Bundle.model_validate(bundle)
    assert model.entry is not None
    assert len(model.entry) == len(bundle["entry"])
    assert {type(e.resource).__name__ for e in model.entry} == {
        r["resourceType"] for r in _resources(bundle)}


def test_r4b_validation_rejects_r5_shapes(bundle: dict[str, Any]) -> None:
    """Guard that the validation above really checks each resource."""
    broken = copy.deepcopy(bundle)
    ae = next(e["resource"] for e in broken["entry"]
              if e["resource"]["resourceType"] == "AdverseEvent")
    ae["code"] = ae.pop("event")
    with pytest.raises(ValueError, match="code"):
        Bundle.model_validate(broken)
