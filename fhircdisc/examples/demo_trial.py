"""Deterministic generator of the synthetic demo trial as a FHIR R4 collection Bundle.

The study is shaped like the phase 1 trial IRCT20160809029275N1 (umbilical-cord
mesenchymal stromal cells for COVID-19 induced ARDS) but every subject and value is
synthetic. The only source of variation is ``random.Random(seed)``: the same seed
gives an identical dict, and identical bytes under ``json.dumps(..., sort_keys=True)``.

Timeline of each subject (calendar days after the enrolment date, "day 0"):

* day 0, 5, 10, 17: assessments (one Encounter each, labs and vital signs);
* day 1, 3, 5: UC-MSC infusions (intervention arm ``MSC`` only);
* ResearchSubject.period runs from day 1 (first infusion, SDTM RFSTDTC) to day 17,
  so that the baseline (day 0) falls on study day -1.

Entries come in this order: Organization, the parent ResearchStudy, the site
ResearchStudy, the Medication, then per subject its Patient, Consent,
ResearchSubject, Encounters, Observations, MedicationAdministrations and
AdverseEvents. All codes come from :mod:`fhircdisc.examples.demo_codes`.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import orjson

from fhircdisc.converters.atomic import write_bytes_atomic
from fhircdisc.examples.demo_codes import (
    BP_PANEL_DISPLAY,
    BP_PANEL_LOINC,
    DIABP,
    DOSE_UCUM,
    EUTRT,
    FIO2,
    FORM_SNOMED,
    LAB_TESTS,
    LOINC,
    OXYSAT,
    PULSE,
    ROUTE_IV_SNOMED,
    SNOMED,
    SYSBP,
    TEMP,
    UCUM,
    WEIGHT,
    DemoTest,
)

Resource = dict[str, Any]

DEMO_STUDY_ID = "UCMSC-ARDS"
DEMO_SITE_ID = "01"
IRCT_ID = "IRCT20160809029275N1"
BUNDLE_ID = "ucmsc-ards-demo"
BUNDLE_TIMESTAMP = "2020-09-30T12:00:00+03:30"
FULL_URL_BASE = "https://example.org/fhir"
#: UTC offset written on every dateTime with a time (the offset is dropped, not
#: converted, on the way to SDTM, so the local clock times are what matter).
TZ = "+04:30"  # Iran summer time (2020-03-21 .. 2020-09-21)

STUDY_RS_ID = "ucmsc-ards"
SITE_RS_ID = "ucmsc-ards-site-01"
SPONSOR_ORG_ID = "sponsor"
MEDICATION_ID = "med-ucmsc"

ARM_MSC = "MSC"
ARM_CTRL = "CTRL"
ARMS: Mapping[str, str] = MappingProxyType({
    ARM_MSC: "Standard care + UC-MSC 1x10^6 cells/kg x3",
    ARM_CTRL: "Standard care",
})

#: visit number -> (day after enrolment, visit name)
DEMO_SCHEDULE: Mapping[int, tuple[int, str]] = MappingProxyType({
    1: (0, "DAY 0"),
    2: (5, "DAY 5"),
    3: (10, "DAY 10"),
    4: (17, "DAY 17"),
})
INFUSION_DAYS: tuple[int, ...] = (1, 3, 5)
ENROLMENT_FIRST = dt.date(2020, 4, 5)
ENROLMENT_LAST = dt.date(2020, 7, 31)

#: Subjects chosen to exercise partial dates and a not-done lab test.
BIRTH_YEAR_MONTH_SUBJECT = "004"
BIRTH_YEAR_ONLY_SUBJECT = "011"
CANCELLED_LAB: tuple[str, int, str] = ("007", 3, "INTLK10")   # subjid, visitnum, testcd

# Identifier systems
SYS_STUDY = "urn:fhircdisc:demo:study"
SYS_SITE = "urn:fhircdisc:demo:site"
SYS_MRN = "urn:fhircdisc:demo:mrn"
SYS_SUBJID = "urn:fhircdisc:demo:subjid"
SYS_VISITNUM = "urn:fhircdisc:demo:visitnum"
SYS_PRODUCT = "urn:fhircdisc:demo:product"

# HL7 code systems and extensions
_THO = "http://terminology.hl7.org/CodeSystem/"
OBS_CATEGORY = _THO + "observation-category"
INTERPRETATION = _THO + "v3-ObservationInterpretation"
DATA_ABSENT = _THO + "data-absent-reason"
ACT_CODE = _THO + "v3-ActCode"
AE_SERIOUSNESS = _THO + "adverse-event-seriousness"
AE_SEVERITY = _THO + "adverse-event-severity"
AE_OUTCOME = _THO + "adverse-event-outcome"
AE_CAUSALITY = _THO + "adverse-event-causality-assess"
US_CORE_RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
US_CORE_ETHNICITY = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"
CDC_RACE_ETH = "urn:oid:2.16.840.1.113883.6.238"
AE_OCCURRENCE_EXT = (
    "http://hl7.org/fhir/5.0/StructureDefinition/extension-AdverseEvent.occurrence[x]"
)


class _LabModel(NamedTuple):
    """How one lab test behaves: typical baseline, reference range, change by visit."""

    baseline: float
    low: float
    high: float
    msc: tuple[float, float, float, float]    # multiplier of baseline at visits 1..4
    ctrl: tuple[float, float, float, float]


_LAB_MODELS: Mapping[str, _LabModel] = MappingProxyType({
    "CRP": _LabModel(60.0, 0.0, 5.0, (1.0, 0.55, 0.3, 0.12), (1.0, 1.0, 0.97, 0.93)),
    "INTLK6": _LabModel(45.0, 0.0, 7.0, (1.0, 0.6, 0.35, 0.2), (1.0, 1.0, 0.96, 0.92)),
    "IFNG": _LabModel(35.0, 0.0, 15.6, (1.0, 0.7, 0.45, 0.3), (1.0, 1.0, 0.97, 0.94)),
    "TNF": _LabModel(22.0, 0.0, 8.1, (1.0, 0.7, 0.5, 0.3), (1.0, 1.0, 0.98, 0.95)),
    "INTLK17": _LabModel(28.0, 0.0, 10.0, (1.0, 0.7, 0.45, 0.3), (1.0, 1.0, 0.97, 0.94)),
    "TGFB1": _LabModel(750.0, 1000.0, 5000.0, (1.0, 1.6, 2.3, 3.0), (1.0, 1.03, 1.06, 1.1)),
    "INTLK1B": _LabModel(3.5, 0.0, 5.0, (1.0, 1.4, 1.8, 2.2), (1.0, 1.03, 1.06, 1.1)),
    "INTLK10": _LabModel(6.0, 0.0, 9.1, (1.0, 1.5, 2.1, 2.6), (1.0, 1.03, 1.06, 1.1)),
})

#: AE terms: (verbatim text, SNOMED CT code or None, SNOMED display or None)
_AE_TERMS: Mapping[str, tuple[str, str | None, str | None]] = MappingProxyType({
    "Headache": ("Mild headache after infusion", "25064002", "Headache"),
    "Fever": ("Low-grade fever", "386661006", "Fever"),
    "Nausea": ("Nausea", "422587007", "Nausea"),
    "Rash": ("Skin rash on forearms", "271807003", "Eruption of skin"),
    "Fatigue": ("Tiredness", "84229001", "Fatigue"),
    # No SNOMED CT code we could confirm: the event carries text only.
    "Infusion site reaction": ("Redness at infusion site", None, None),
})
_AE_TERMS_CTRL = ("Headache", "Fever", "Nausea", "Rash", "Fatigue")
_AE_TERMS_MSC = (*_AE_TERMS_CTRL, "Infusion site reaction")
_AE_POSSIBLY_RELATED = frozenset({"Headache", "Fever", "Infusion site reaction"})


class _Subject(NamedTuple):
    subjid: str
    arm: str
    day0: dt.date
    sex: str
    birth_date: str
    race: tuple[str, str]    # CDC race code, text


class _AdverseEvent(NamedTuple):
    term: str
    start: dt.date
    end: dt.date | None      # None: ongoing
    severity: str
    partial_start: bool


# --------------------------------------------------------------------------- helpers

def _ref(rtype: str, rid: str) -> dict[str, str]:
    return {"reference": f"{rtype}/{rid}"}


def _entry(resource: Resource) -> dict[str, Any]:
    return {
        "fullUrl": f"{FULL_URL_BASE}/{resource['resourceType']}/{resource['id']}",
        "resource": resource,
    }


def _day(subject: _Subject, n: int) -> dt.date:
    return subject.day0 + dt.timedelta(days=n)


def _at(day: dt.date, time: str) -> str:
    return f"{day.isoformat()}T{time}{TZ}"


def _quantity(value: float, test: DemoTest) -> dict[str, Any]:
    return {"value": value, "unit": test.unit_display, "system": UCUM, "code": test.ucum}


def _loinc_concept(test: DemoTest) -> dict[str, Any]:
    return {"coding": [{"system": test.system, "code": test.loinc, "display": test.display}],
            "text": test.display}


def _noise(rng: random.Random, sigma: float) -> float:
    return math.exp(rng.gauss(0.0, sigma))


def _interpretation(value: float, low: float, high: float) -> dict[str, Any]:
    if value < low:
        code, display = "L", "Low"
    elif value > high:
        code, display = "H", "High"
    else:
        code, display = "N", "Normal"
    return {"coding": [{"system": INTERPRETATION, "code": code, "display": display}]}


def _category(code: str, display: str) -> list[dict[str, Any]]:
    return [{"coding": [{"system": OBS_CATEGORY, "code": code, "display": display}]}]


# --------------------------------------------------------------------- study level

def _organization() -> Resource:
    return {"resourceType": "Organization", "id": SPONSOR_ORG_ID,
            "name": "Synthetic Cell Therapy Sponsor"}


def _study() -> Resource:
    return {
        "resourceType": "ResearchStudy",
        "id": STUDY_RS_ID,
        "identifier": [
            {"system": SYS_STUDY, "value": DEMO_STUDY_ID},
            {"system": "https://www.irct.ir", "value": IRCT_ID, "type": {"text": "REGID"}},
        ],
        "title": "Umbilical cord mesenchymal stromal cells for COVID-19 induced ARDS: "
                 "a phase 1 open-label trial",
        "status": "completed",
        "phase": {"coding": [{"system": _THO + "research-study-phase", "code": "phase-1",
                              "display": "Phase 1"}]},
        "primaryPurposeType": {"coding": [{"system": _THO + "research-study-prim-purp-type",
                                           "code": "treatment", "display": "Treatment"}]},
        "period": {"start": "2020-04-01", "end": "2020-09-30"},
        "sponsor": _ref("Organization", SPONSOR_ORG_ID),
        "arm": [{"name": name, "description": desc} for name, desc in ARMS.items()],
    }


def _site_study() -> Resource:
    return {
        "resourceType": "ResearchStudy",
        "id": SITE_RS_ID,
        "identifier": [{"system": SYS_SITE, "value": DEMO_SITE_ID}],
        "partOf": [_ref("ResearchStudy", STUDY_RS_ID)],
        "title": f"{DEMO_STUDY_ID} site {DEMO_SITE_ID}",
        "status": "completed",
    }


def _medication() -> Resource:
    return {
        "resourceType": "Medication",
        "id": MEDICATION_ID,
        "code": {"coding": [{"system": SYS_PRODUCT, "code": "UC-MSC", "display": EUTRT}],
                 "text": EUTRT},
        "form": {"coding": [{"system": SNOMED, "code": FORM_SNOMED}]},
    }


# ------------------------------------------------------------------- subject plan

def _enrolment_days(rng: random.Random, count: int) -> list[dt.date]:
    span = (ENROLMENT_LAST - ENROLMENT_FIRST).days
    if count <= span + 1:
        offsets = rng.sample(range(span + 1), count)
    else:
        offsets = [rng.randint(0, span) for _ in range(count)]
    return [ENROLMENT_FIRST + dt.timedelta(days=o) for o in sorted(offsets)]


def _birth_date(rng: random.Random, day0: dt.date, subjid: str) -> str:
    age = rng.randint(30, 70)
    latest = day0.replace(year=day0.year - age)        # enrolment dates avoid 29 Feb
    earliest = day0.replace(year=day0.year - age - 1) + dt.timedelta(days=1)
    born = earliest + dt.timedelta(days=rng.randint(0, (latest - earliest).days))
    if subjid == BIRTH_YEAR_MONTH_SUBJECT:
        return born.isoformat()[:7]
    if subjid == BIRTH_YEAR_ONLY_SUBJECT:
        return born.isoformat()[:4]
    return born.isoformat()


def _plan_subjects(rng: random.Random, n_per_arm: int) -> list[_Subject]:
    n = 2 * n_per_arm
    arms = [ARM_MSC] * n_per_arm + [ARM_CTRL] * n_per_arm
    rng.shuffle(arms)
    days = _enrolment_days(rng, n)
    subjects = []
    for i in range(n):
        subjid = f"{i + 1:03d}"
        sex = rng.choice(("male", "female"))
        birth = _birth_date(rng, days[i], subjid)
        race = ("2106-3", "White") if rng.random() < 0.85 else ("2028-9", "Asian")
        subjects.append(_Subject(subjid, arms[i], days[i], sex, birth, race))
    return subjects


def _plan_adverse_events(rng: random.Random,
                         subjects: list[_Subject]) -> dict[str, list[_AdverseEvent]]:
    """About half the subjects of each arm get one non-serious event.

    The first chosen MSC subject gets a second one (an infusion site reaction), the
    first CTRL event has a month-only start date and the last event is ongoing.
    """
    by_arm = {arm: [s for s in subjects if s.arm == arm] for arm in ARMS}
    chosen: dict[str, list[_Subject]] = {
        arm: sorted(rng.sample(members, len(members) // 2)) for arm, members in by_arm.items()
    }
    plan: dict[str, list[_AdverseEvent]] = {}
    for arm in (ARM_MSC, ARM_CTRL):
        for i, subject in enumerate(chosen[arm]):
            events: list[tuple[str, int]] = []
            if arm == ARM_MSC:
                terms = _AE_TERMS_MSC if i else _AE_TERMS_CTRL
                events.append((rng.choice(terms), rng.choice(INFUSION_DAYS) + rng.randint(0, 1)))
                if i == 0:
                    events.append(("Infusion site reaction", rng.choice(INFUSION_DAYS)))
            else:
                events.append((rng.choice(_AE_TERMS_CTRL), rng.randint(1, 12)))
            planned = []
            for term, start_day in sorted(events, key=lambda e: e[1]):
                start = _day(subject, start_day)
                end = start + dt.timedelta(days=rng.randint(1, 4))
                severity = "moderate" if rng.random() < 0.25 else "mild"
                partial = arm == ARM_CTRL and i == 0
                planned.append(_AdverseEvent(term, start, end, severity, partial))
            plan[subject.subjid] = planned
    if plan:
        last_subject = max(plan)
        last = plan[last_subject][-1]
        plan[last_subject][-1] = last._replace(end=None)
    return plan


# ------------------------------------------------------------------ per subject

def _patient(s: _Subject) -> Resource:
    return {
        "resourceType": "Patient",
        "id": f"pat-{s.subjid}",
        "meta": {"lastUpdated": _at(s.day0, "09:00:00")},
        "extension": [
            {"url": US_CORE_RACE, "extension": [
                {"url": "ombCategory",
                 "valueCoding": {"system": CDC_RACE_ETH, "code": s.race[0],
                                 "display": s.race[1]}},
                {"url": "text", "valueString": s.race[1]},
            ]},
            {"url": US_CORE_ETHNICITY, "extension": [
                {"url": "ombCategory",
                 "valueCoding": {"system": CDC_RACE_ETH, "code": "2186-5",
                                 "display": "Not Hispanic or Latino"}},
                {"url": "text", "valueString": "Not Hispanic or Latino"},
            ]},
        ],
        "identifier": [{"system": SYS_MRN, "value": f"MRN-{int(s.subjid)}"}],
        "gender": s.sex,
        "birthDate": s.birth_date,
        "address": [{"city": "Tehran", "country": "IR"}],
    }


def _consent(s: _Subject) -> Resource:
    return {
        "resourceType": "Consent",
        "id": f"consent-{s.subjid}",
        "status": "active",
        "scope": {"coding": [{"system": _THO + "consentscope", "code": "research",
                              "display": "Research"}]},
        "category": [{"coding": [{"system": LOINC, "code": "59284-0",
                                  "display": "Patient Consent"}]}],
        "patient": _ref("Patient", f"pat-{s.subjid}"),
        "dateTime": s.day0.isoformat(),
        # R4 invariant ppc-1 asks for a policy or a policyRule.
        "policyRule": {"text": f"Informed consent to take part in {DEMO_STUDY_ID}"},
    }


def _research_subject(s: _Subject) -> Resource:
    return {
        "resourceType": "ResearchSubject",
        "id": f"rs-{s.subjid}",
        "identifier": [{"system": SYS_SUBJID, "value": s.subjid}],
        "status": "off-study",
        "period": {"start": _day(s, INFUSION_DAYS[0]).isoformat(),
                   "end": _day(s, DEMO_SCHEDULE[max(DEMO_SCHEDULE)][0]).isoformat()},
        "study": _ref("ResearchStudy", SITE_RS_ID),
        "individual": _ref("Patient", f"pat-{s.subjid}"),
        "assignedArm": s.arm,
        "actualArm": s.arm,
        "consent": _ref("Consent", f"consent-{s.subjid}"),
    }


def _encounter(s: _Subject, visitnum: int) -> Resource:
    day, name = DEMO_SCHEDULE[visitnum]
    date = _day(s, day).isoformat()
    return {
        "resourceType": "Encounter",
        "id": f"enc-{s.subjid}-{visitnum}",
        "identifier": [{"system": SYS_VISITNUM, "value": str(visitnum)}],
        "status": "finished",
        "class": {"system": ACT_CODE, "code": "IMP", "display": "inpatient encounter"},
        "type": [{"text": name}],
        "subject": _ref("Patient", f"pat-{s.subjid}"),
        "period": {"start": date, "end": date},
    }


def _observation(s: _Subject, visitnum: int, oid: str, category: list[dict[str, Any]],
                 code: dict[str, Any], time: str) -> Resource:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": category,
        "code": code,
        "subject": _ref("Patient", f"pat-{s.subjid}"),
        "encounter": _ref("Encounter", f"enc-{s.subjid}-{visitnum}"),
        "effectiveDateTime": _at(_day(s, DEMO_SCHEDULE[visitnum][0]), time),
    }


def _labs(rng: random.Random, s: _Subject) -> list[Resource]:
    severity = {t.testcd: _noise(rng, 0.25) for t in LAB_TESTS}
    out = []
    for visitnum in DEMO_SCHEDULE:
        for test in LAB_TESTS:
            model = _LAB_MODELS[test.testcd]
            factor = (model.msc if s.arm == ARM_MSC else model.ctrl)[visitnum - 1]
            value = max(0.1, round(model.baseline * severity[test.testcd] * factor
                                   * _noise(rng, 0.1), 1))
            obs = _observation(s, visitnum, f"lab-{s.subjid}-{visitnum}-{test.testcd.lower()}",
                               _category("laboratory", "Laboratory"), _loinc_concept(test),
                               "08:00:00")
            if (s.subjid, visitnum, test.testcd) == CANCELLED_LAB:
                obs["status"] = "cancelled"
                obs["dataAbsentReason"] = {
                    "coding": [{"system": DATA_ABSENT, "code": "not-performed",
                                "display": "Not Performed"}],
                    "text": "SAMPLE HAEMOLYSED",
                }
            else:
                obs["valueQuantity"] = _quantity(value, test)
                obs["interpretation"] = [_interpretation(value, model.low, model.high)]
                obs["referenceRange"] = [{"low": _quantity(model.low, test),
                                          "high": _quantity(model.high, test)}]
            out.append(obs)
    return out


def _vital_values(rng: random.Random, s: _Subject) -> dict[int, dict[str, float]]:
    """Per visit: OXYSAT, FIO2, PULSE, TEMP, SYSBP, DIABP (and WEIGHT at visit 1)."""
    msc = s.arm == ARM_MSC
    spo2_0 = rng.randint(88, 93)
    fio2_0 = rng.randint(40, 60)
    pulse_0 = rng.randint(95, 115)
    temp_0 = rng.uniform(37.6, 38.6)
    sys_0 = rng.randint(110, 135)
    dia_0 = rng.randint(68, 85)
    spo2_gain = (0, 2, 4, 6) if msc else (0, 1, 1.5, 2.5)
    fio2_keep = (1.0, 0.6, 0.3, 0.12) if msc else (1.0, 0.9, 0.75, 0.6)
    pulse_drop = (0, 8, 15, 22) if msc else (0, 3, 7, 12)
    temp_drop = (0.0, 0.6, 1.0, 1.3) if msc else (0.0, 0.2, 0.5, 0.8)
    values: dict[int, dict[str, float]] = {}
    for visitnum in DEMO_SCHEDULE:
        i = visitnum - 1
        values[visitnum] = {
            "OXYSAT": min(98, round(spo2_0 + spo2_gain[i] + rng.uniform(-1, 1))),
            "FIO2": max(21, round(21 + (fio2_0 - 21) * fio2_keep[i] + rng.uniform(-2, 2))),
            PULSE.testcd: round(pulse_0 - pulse_drop[i] + rng.uniform(-3, 3)),
            "TEMP": round(temp_0 - temp_drop[i] + rng.uniform(-0.15, 0.15), 1),
            "SYSBP": round(sys_0 + rng.uniform(-6, 6)),
            "DIABP": round(dia_0 + rng.uniform(-4, 4)),
        }
    values[1]["WEIGHT"] = round(rng.uniform(58.0, 95.0), 1)
    return values


def _vitals(rng: random.Random, s: _Subject) -> list[Resource]:
    category = _category("vital-signs", "Vital Signs")
    out = []
    for visitnum, values in _vital_values(rng, s).items():
        for test in (OXYSAT, FIO2, PULSE, TEMP, WEIGHT):
            if test.testcd not in values:
                continue
            obs = _observation(s, visitnum, f"vs-{s.subjid}-{visitnum}-{test.testcd.lower()}",
                               category, _loinc_concept(test), "07:30:00")
            obs["valueQuantity"] = _quantity(values[test.testcd], test)
            out.append(obs)
        bp = _observation(s, visitnum, f"vs-{s.subjid}-{visitnum}-bp", category,
                          {"coding": [{"system": LOINC, "code": BP_PANEL_LOINC,
                                       "display": BP_PANEL_DISPLAY}],
                           "text": "Blood pressure"},
                          "07:30:00")
        bp["component"] = [{"code": _loinc_concept(test),
                            "valueQuantity": _quantity(values[test.testcd], test)}
                           for test in (SYSBP, DIABP)]
        out.append(bp)
    return out


def _administrations(s: _Subject) -> list[Resource]:
    if s.arm != ARM_MSC:
        return []
    out = []
    for k, day in enumerate(INFUSION_DAYS, start=1):
        date = _day(s, day)
        out.append({
            "resourceType": "MedicationAdministration",
            "id": f"ma-{s.subjid}-{k}",
            "status": "completed",
            "medicationReference": _ref("Medication", MEDICATION_ID),
            "subject": _ref("Patient", f"pat-{s.subjid}"),
            "effectivePeriod": {"start": _at(date, "10:00:00"), "end": _at(date, "10:45:00")},
            "dosage": {
                "route": {"coding": [{"system": SNOMED, "code": ROUTE_IV_SNOMED,
                                      "display": "Intravenous route"}]},
                "dose": {"value": 1, "unit": "10^6 cells/kg", "system": UCUM,
                         "code": DOSE_UCUM},
            },
        })
    return out


def _adverse_events(s: _Subject, events: list[_AdverseEvent]) -> list[Resource]:
    out = []
    for k, ae in enumerate(events, start=1):
        verbatim, code, display = _AE_TERMS[ae.term]
        event: dict[str, Any] = {"text": verbatim}
        if code is not None:
            event["coding"] = [{"system": SNOMED, "code": code, "display": display}]
        start = ae.start.isoformat()[:7] if ae.partial_start else ae.start.isoformat()
        period = {"start": start}
        if ae.end is not None:
            period["end"] = ae.end.isoformat()
        outcome = ("resolved", "Resolved") if ae.end is not None else ("ongoing", "Ongoing")
        resource: Resource = {
            "resourceType": "AdverseEvent",
            "id": f"ae-{s.subjid}-{k}",
            "extension": [{"url": AE_OCCURRENCE_EXT, "valuePeriod": period}],
            "actuality": "actual",
            "event": event,
            "subject": _ref("Patient", f"pat-{s.subjid}"),
            "date": start,
            "seriousness": {"coding": [{"system": AE_SERIOUSNESS, "code": "non-serious",
                                        "display": "Non-serious"}]},
            "severity": {"coding": [{"system": AE_SEVERITY, "code": ae.severity,
                                     "display": ae.severity.capitalize()}]},
            "outcome": {"coding": [{"system": AE_OUTCOME, "code": outcome[0],
                                    "display": outcome[1]}]},
            "study": [_ref("ResearchStudy", STUDY_RS_ID)],
        }
        if s.arm == ARM_MSC:
            assess = "Possible" if ae.term in _AE_POSSIBLY_RELATED else "Unlikely"
            resource["suspectEntity"] = [{
                "instance": _ref("Medication", MEDICATION_ID),
                "causality": [{"assessment": {"coding": [
                    {"system": AE_CAUSALITY, "code": assess, "display": assess}]}}],
            }]
        out.append(resource)
    return out


# ------------------------------------------------------------------------ public

def generate_demo_bundle(seed: int = 2020, *, n_per_arm: int = 10) -> dict[str, Any]:
    """Return the synthetic demo trial as a FHIR R4 ``collection`` Bundle (plain JSON dict).

    The result depends on ``seed`` and ``n_per_arm`` only.
    """
    if n_per_arm < 1:
        raise ValueError(f"n_per_arm must be at least 1, got {n_per_arm}")
    rng = random.Random(seed)
    subjects = _plan_subjects(rng, n_per_arm)
    ae_plan = _plan_adverse_events(rng, subjects)
    resources: list[Resource] = [_organization(), _study(), _site_study(), _medication()]
    for s in subjects:
        resources += [_patient(s), _consent(s), _research_subject(s)]
        resources += [_encounter(s, v) for v in DEMO_SCHEDULE]
        resources += _labs(rng, s)
        resources += _vitals(rng, s)
        resources += _administrations(s)
        resources += _adverse_events(s, ae_plan.get(s.subjid, []))
    return {
        "resourceType": "Bundle",
        "id": BUNDLE_ID,
        "type": "collection",
        "timestamp": BUNDLE_TIMESTAMP,
        "entry": [_entry(r) for r in resources],
    }


def write_demo_bundle(path: str | Path, seed: int = 2020, *, n_per_arm: int = 10) -> Path:
    """Write the demo Bundle as indented JSON with sorted keys (atomically); return the path."""
    target = Path(path)
    data = orjson.dumps(generate_demo_bundle(seed, n_per_arm=n_per_arm),
                        option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    write_bytes_atomic(target, data + b"\n")
    return target


def subject_arms(bundle: Mapping[str, Any]) -> dict[str, str]:
    """SUBJID -> ARMCD, read from the ResearchSubject entries of a demo Bundle."""
    arms: dict[str, str] = {}
    for entry in bundle.get("entry", []):
        resource = entry.get("resource", {})
        if resource.get("resourceType") != "ResearchSubject":
            continue
        subjid = next((i["value"] for i in resource.get("identifier", [])
                       if i.get("system") == SYS_SUBJID), None)
        arm = resource.get("actualArm") or resource.get("assignedArm")
        if subjid is not None and arm is not None:
            arms[subjid] = arm
    return arms
