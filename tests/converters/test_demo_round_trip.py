"""The demo trial FHIR -> SDTM -> FHIR (-> SDTM): the regenerated resources say the same.

Each original Observation, MedicationAdministration, AdverseEvent and Patient is
matched to the resource ``to_fhir`` made from its SDTM row: ``demo_study.provenance``
links (DOMAIN, USUBJID, SEQ) to the original resource, and regenerated ids are
``fhir_id(domain.lower(), USUBJID, SEQ)`` (``fhir_id("pat", USUBJID)`` for a Patient;
a blood-pressure pair becomes one panel ``fhir_id("vs", USUBJID, "bp", SEQ)`` with the
SEQ of one of its two rows). Every element the mappings carry is then compared after
normalising representation only (int vs float, display texts, reference targets).

Times: the demo writes every dateTime with the site's UTC offset (+04:30). SDTM --DTC
values are local clock times with no offset, so FHIR -> SDTM drops the offset (it
does not convert to UTC) and SDTM -> FHIR writes the local time back with +00:00.
The clock time survives, the offset cannot: we compare dateTimes with the offset
dropped on both sides.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
import pytest

from fhircdisc.converters.fhir_reader import Origin, SourceResource
from fhircdisc.converters.fhir_to_sdtm import convert_resources
from fhircdisc.converters.sdtm_to_fhir import fhir_id, to_fhir
from fhircdisc.examples.demo_codes import DEMO_TERMINOLOGY
from fhircdisc.examples.demo_trial import generate_demo_bundle
from fhircdisc.mappings import terminology

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
US_CORE_RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
_THO = "http://terminology.hl7.org/CodeSystem/"
INTERPRETATION = _THO + "v3-ObservationInterpretation"
SEVERITY, SERIOUSNESS, OUTCOME = (_THO + "adverse-event-severity",
                                  _THO + "adverse-event-seriousness",
                                  _THO + "adverse-event-outcome")
TERMS = terminology.load([DEMO_TERMINOLOGY])
KEYS = {"DM": ["USUBJID"], "TS": ["TSPARMCD", "TSSEQ"]}
_OFFSET = re.compile(r"(Z|[+-]\d{2}:\d{2})$")


@pytest.fixture(scope="module")
def regenerated(demo_study):
    # built-in tables only: what the demo terminology file adds must not be needed to
    # write the SDTM back as FHIR (anything the tables cannot express is carried)
    return to_fhir(demo_study.domains, validate=True)


@pytest.fixture(scope="module")
def by_key(regenerated) -> dict[str, dict[str, Any]]:
    return {f"{r['resourceType']}/{r['id']}": r for r in regenerated.resources}


@pytest.fixture(scope="module")
def originals() -> dict[str, dict[str, Any]]:
    return {f"{e['resource']['resourceType']}/{e['resource']['id']}": e["resource"]
            for e in generate_demo_bundle()["entry"]}


@pytest.fixture(scope="module")
def pairs(demo_study, originals, by_key) -> dict[str, list[tuple[dict, dict]]]:
    """resource type -> [(original, regenerated)], matched through the SDTM rows."""
    matched: dict[str, dict[str, tuple[dict, dict]]] = {}
    for source, rows in demo_study.provenance.groupby("SOURCE", sort=False):
        domain, usubjid = rows["DOMAIN"].iloc[0], rows["USUBJID"].iloc[0]
        if domain == "TS":                  # the study: TS rows ride on it whole
            continue
        original = originals[source]
        if domain == "DM":
            candidates = [fhir_id("pat", usubjid)]
        elif len(rows) == 2:                                       # a BP panel
            candidates = [fhir_id("vs", usubjid, "bp", _seq(s)) for s in rows["SEQ"]]
        else:
            candidates = [fhir_id(domain.lower(), usubjid, _seq(rows["SEQ"].iloc[0]))]
        found = [f"{original['resourceType']}/{c}" for c in candidates
                 if f"{original['resourceType']}/{c}" in by_key]
        assert len(found) == 1, (source, candidates)
        matched.setdefault(original["resourceType"], {})[source] = (original, by_key[found[0]])
    return {rtype: list(items.values()) for rtype, items in matched.items()}


def _seq(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# ----------------------------------------------------------------------- normalising


def local(value: str | None) -> str | None:
    """A FHIR date/dateTime with its UTC offset dropped (SDTM keeps local clock time)."""
    return _OFFSET.sub("", value) if value else value


def codes(concept: dict[str, Any] | None, system: str | None = None) -> set[str]:
    return {c["code"] for c in (concept or {}).get("coding", [])
            if system is None or c.get("system") == system}


def number(value: Any) -> float | None:
    return None if value is None else float(value)


def quantity(q: dict[str, Any] | None) -> tuple[Any, ...] | None:
    if q is None:
        return None
    return number(q.get("value")), q.get("comparator"), q.get("system"), q.get("code")


def observation_result(o: dict[str, Any]) -> dict[str, Any]:
    """The mapped content of an Observation (or of one component)."""
    ranges = o.get("referenceRange") or [{}]
    return {
        "loinc": codes(o.get("code"), LOINC),
        "value": quantity(o.get("valueQuantity")),
        "string": o.get("valueString"),
        "interpretation": {c for i in o.get("interpretation") or []
                           for c in codes(i, INTERPRETATION)},
        "low": number((ranges[0].get("low") or {}).get("value")),
        "high": number((ranges[0].get("high") or {}).get("value")),
        "absent": bool(o.get("dataAbsentReason")),
    }


def observation(o: dict[str, Any]) -> dict[str, Any]:
    out = {"status": o["status"], "effective": local(o.get("effectiveDateTime")),
           **observation_result(o)}
    if o.get("component"):
        out["components"] = sorted((observation_result(c) for c in o["component"]),
                                   key=lambda c: sorted(c["loinc"]))
    return out


def administration(m: dict[str, Any]) -> dict[str, Any]:
    dosage = m.get("dosage") or {}
    period = m.get("effectivePeriod") or {}
    return {"dose": quantity(dosage.get("dose")),
            "route": codes(dosage.get("route"), SNOMED),
            "start": local(period.get("start") or m.get("effectiveDateTime")),
            "end": local(period.get("end") or m.get("effectiveDateTime"))}


def seriousness(concept: dict[str, Any] | None) -> set[str]:
    """AESER of the seriousness codes.

    The demo writes ``non-serious``, a spelling the terminology table accepts; the HL7
    code system's code is ``Non-serious``, which is what SDTM -> FHIR writes. Both mean
    AESER = N, and that meaning is what has to survive.
    """
    out = set()
    for code in codes(concept, SERIOUSNESS):
        term = TERMS.lookup("AESER", SERIOUSNESS, code)
        out.add(term.submission_value if term else f"?{code}")
    return out


def adverse_event(a: dict[str, Any]) -> dict[str, Any]:
    return {"event": (a.get("event") or {}).get("text"),
            "severity": codes(a.get("severity"), SEVERITY),
            "seriousness": seriousness(a.get("seriousness")),
            "outcome": codes(a.get("outcome"), OUTCOME),
            "date": local(a.get("date"))}


def patient(p: dict[str, Any]) -> dict[str, Any]:
    races = {part["valueCoding"]["code"] for ext in p.get("extension") or []
             if ext.get("url") == US_CORE_RACE for part in ext.get("extension") or []
             if part.get("url") == "ombCategory"}
    return {"gender": p.get("gender"), "birthDate": p.get("birthDate"), "race": races,
            "country": [a.get("country") for a in p.get("address") or []]}


# ----------------------------------------------------------------------- tests


def test_every_original_resource_has_a_regenerated_one(demo_study, pairs, regenerated):
    report = regenerated.report
    assert report.rejected == [] and report.reconciles()
    assert {t: len(p) for t, p in pairs.items()} == {
        "Patient": 20, "Observation": 1060, "MedicationAdministration": 30,
        "AdverseEvent": 11}
    assert report.resources_out["Observation"] == 1060


HEART_RATE = "8867-4"


@pytest.mark.parametrize(("rtype", "view"), [
    ("Observation", observation),
    ("MedicationAdministration", administration), ("AdverseEvent", adverse_event),
    ("Patient", patient)])
def test_mapped_elements_are_equal(pairs, rtype, view):
    differences = [(o["id"], r["id"], view(o), view(r)) for o, r in pairs[rtype]
                   if view(o) != view(r)]
    assert differences == [], f"{len(differences)} of {len(pairs[rtype])}: {differences[:3]}"


def test_heart_rate_keeps_its_ucum_code(pairs):
    heart_rates = [(o, r) for o, r in pairs["Observation"]
                   if codes(o["code"], LOINC) == {HEART_RATE}]
    assert len(heart_rates) == 80
    assert {o["valueQuantity"]["code"] for o, _ in heart_rates} == {"/min"}
    assert {r["valueQuantity"]["code"] for _, r in heart_rates} == {"/min"}


def test_blood_pressure_panels_keep_both_components(pairs):
    panels = [(o, r) for o, r in pairs["Observation"] if o.get("component")]
    assert len(panels) == 80
    for original, regenerated in panels:
        assert codes(regenerated["code"], LOINC) == {"85354-9"}
        got = {next(iter(codes(c["code"], LOINC))): quantity(c["valueQuantity"])
               for c in regenerated["component"]}
        want = {next(iter(codes(c["code"], LOINC))): quantity(c["valueQuantity"])
                for c in original["component"]}
        assert got == want and set(got) == {"8480-6", "8462-4"}


def test_the_offset_is_dropped_not_converted(pairs):
    original, regenerated = pairs["Observation"][0]
    assert original["effectiveDateTime"].endswith("+04:30")
    assert regenerated["effectiveDateTime"] == local(original["effectiveDateTime"]) + "+00:00"


def test_sdtm_fhir_sdtm_gives_the_same_frames(demo_study, regenerated):
    items = [SourceResource(r, Origin("<mem>", f"{r['resourceType']}/{r['id']}"))
             for r in regenerated.resources]
    back = convert_resources(items, sources=["<mem>"],
                             terminology=TERMS,
                             fhir_version="R4")
    assert back.report.unmapped == []
    assert sorted(back.domains) == sorted(demo_study.domains)
    for domain, frame in demo_study.domains.items():
        keys = KEYS.get(domain, ["USUBJID", f"{domain}SEQ"])
        pd.testing.assert_frame_equal(
            back.domains[domain].sort_values(keys).reset_index(drop=True),
            frame.sort_values(keys).reset_index(drop=True), obj=domain)
