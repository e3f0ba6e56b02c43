"""The demo trial in FHIR R5 shape: convert the R4 demo Bundle resource by resource.

:func:`to_r5` rewrites the resources whose R4 and R5 shapes differ for what the
FHIR -> SDTM mapping reads (ResearchStudy, ResearchSubject, MedicationAdministration,
AdverseEvent, Encounter, Consent, Medication, Organization); Patient and Observation
are the same in both versions for the elements the demo uses. The result validates
with the fhir.resources R5 models and converts to the same SDTM datasets as the R4
input, which is what the R4/R5 tests check.

This is not a general R4 -> R5 converter: it knows the elements the demo (and the
mapping's alternatives, e.g. ``medicationCodeableConcept``) use. An R4-only element it
has no rule for raises ``ValueError`` rather than giving an invalid R5 resource.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

Resource = dict[str, Any]

_THO = "http://terminology.hl7.org/CodeSystem/"
STUDY_PARTY_ROLE = "http://hl7.org/fhir/research-study-party-role"
STUDY_STATUS = "http://hl7.org/fhir/research-study-status"
PRIMARY_PURPOSE = _THO + "research-study-prim-purp-type"
SUBJECT_STATE = _THO + "research-subject-state"
SUBJECT_STATE_TYPE = _THO + "research-subject-state-type"
R5_AE_OCCURRENCE = (
    "http://hl7.org/fhir/5.0/StructureDefinition/extension-AdverseEvent.occurrence[x]"
)
R4_AE_SEVERITY = "http://hl7.org/fhir/4.0/StructureDefinition/extension-AdverseEvent.severity"

#: R4 ResearchStudy.status -> R5 status (a PublicationStatus); the R4 code itself moves
#: to R5 progressStatus.state (same code system, http://hl7.org/fhir/research-study-status).
_STUDY_STATUS = {"in-review": "draft", "withdrawn": "retired", "disapproved": "retired"}
#: R4 Encounter.status -> R5 Encounter.status
_ENCOUNTER_STATUS = {"arrived": "in-progress", "triaged": "in-progress", "onleave": "on-hold",
                     "finished": "completed"}
#: R4 Consent.status -> R5 Consent.status
_CONSENT_STATUS = {"proposed": "draft", "rejected": "not-done"}
#: R4 AdverseEvent.outcome codes of an event that has not ended (R5 status in-progress)
_AE_NOT_ENDED = {"ongoing", "recovering"}


def _move(resource: Resource, old: str, new: str,
          change: Callable[[Any], Any] | None = None) -> None:
    """Rename element ``old`` to ``new`` in place, keeping its position (and ``_old``)."""
    if old not in resource and f"_{old}" not in resource:
        return
    items = list(resource.items())
    resource.clear()
    for key, value in items:
        if key == old:
            resource[new] = change(value) if change else value
        elif key == f"_{old}":
            resource[f"_{new}"] = value
        else:
            resource[key] = value


def _codings(concept: Any) -> list[dict[str, Any]]:
    return [c for c in (concept or {}).get("coding") or [] if isinstance(c, dict)]


def _concept(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


# --------------------------------------------------------------------- resources

def _research_study(rs: Resource) -> Resource:
    status = rs.get("status")
    if status is not None:
        rs["status"] = _STUDY_STATUS.get(status, "active")
        rs["progressStatus"] = [{"state": _concept(STUDY_STATUS, status), "actual": True}]
    categories = rs.pop("category", None) or []
    purposes = [c for c in categories
                if any(x.get("system") == PRIMARY_PURPOSE for x in _codings(c))]
    if purposes:
        rs["primaryPurposeType"] = purposes[0]
    others = [c for c in categories if c is not (purposes[0] if purposes else None)]
    if others:
        rs["classifier"] = others
    parties = []
    if rs.get("sponsor"):
        parties.append({"role": _concept(STUDY_PARTY_ROLE, "sponsor", "sponsor"),
                        "party": rs.pop("sponsor")})
    if rs.get("principalInvestigator"):
        parties.append({"role": _concept(STUDY_PARTY_ROLE, "primary-investigator",
                                         "primary-investigator"),
                        "party": rs.pop("principalInvestigator")})
    if parties:
        rs["associatedParty"] = parties
    _move(rs, "arm", "comparisonGroup", lambda arms: [
        {"linkId": arm["name"], **arm} for arm in arms])
    return rs


def _research_subject(rs: Resource) -> Resource:
    status = rs.get("status")
    if status is not None:
        rs["status"] = "active"
        rs["progress"] = [{"type": _concept(SUBJECT_STATE_TYPE, "Enrollment"),
                           "subjectState": _concept(SUBJECT_STATE, status)}]
    _move(rs, "individual", "subject")
    _move(rs, "assignedArm", "assignedComparisonGroup")
    _move(rs, "actualArm", "actualComparisonGroup")
    _move(rs, "consent", "consent", lambda ref: ref if isinstance(ref, list) else [ref])
    return rs


def _medication_administration(ma: Resource) -> Resource:
    _move(ma, "medicationCodeableConcept", "medication", lambda c: {"concept": c})
    _move(ma, "medicationReference", "medication", lambda r: {"reference": r})
    _move(ma, "effectiveDateTime", "occurenceDateTime")   # sic: R5 spells it "occurence"
    _move(ma, "effectivePeriod", "occurencePeriod")
    _move(ma, "context", "encounter")
    return ma


def _adverse_event(ae: Resource) -> Resource:
    _move(ae, "event", "code")
    extensions = ae.get("extension") or []
    occurrence = next((e for e in extensions if e.get("url") == R5_AE_OCCURRENCE
                       and "valuePeriod" in e), None)
    if occurrence is not None:
        extensions.remove(occurrence)
        _move(ae, "date", "occurrencePeriod", lambda _: occurrence["valuePeriod"])
        if "occurrencePeriod" not in ae:
            ae["occurrencePeriod"] = occurrence["valuePeriod"]
    else:
        _move(ae, "date", "occurrenceDateTime")
    severity = ae.pop("severity", None)
    if severity is not None:
        extensions.append({"url": R4_AE_SEVERITY, "valueCodeableConcept": severity})
    if extensions:
        ae["extension"] = extensions
    else:
        ae.pop("extension", None)
    _move(ae, "outcome", "outcome", lambda o: o if isinstance(o, list) else [o])
    for suspect in ae.get("suspectEntity") or []:
        _move(suspect, "instance", "instanceReference")
        causality = suspect.get("causality")
        if isinstance(causality, list):
            if len(causality) > 1:
                raise ValueError(f"AdverseEvent/{ae.get('id')}: R5 suspectEntity.causality "
                                 "is 0..1, the R4 resource has several")
            causality = causality[0] if causality else None
        if causality:
            _move(causality, "assessment", "entityRelatedness")
            _move(causality, "method", "assessmentMethod")
            suspect["causality"] = causality
        else:
            suspect.pop("causality", None)
    if "status" not in ae:
        ended = not any(c.get("code") in _AE_NOT_ENDED
                        for o in ae.get("outcome") or [] for c in _codings(o))
        ae["status"] = "completed" if ended else "in-progress"
    return ae


def _encounter(enc: Resource) -> Resource:
    if "status" in enc:
        enc["status"] = _ENCOUNTER_STATUS.get(enc["status"], enc["status"])
    _move(enc, "class", "class", lambda c: c if isinstance(c, list) else [{"coding": [c]}])
    _move(enc, "period", "actualPeriod")
    return enc


def _consent(consent: Resource) -> Resource:
    if "status" in consent:
        consent["status"] = _CONSENT_STATUS.get(consent["status"], consent["status"])
    # R5 has no scope: the category (here LOINC 59284-0 Patient Consent) carries the kind.
    consent.pop("scope", None)
    consent.pop("_scope", None)
    _move(consent, "patient", "subject")
    # R5 Consent.date is a date: an R4 dateTime loses its time here.
    _move(consent, "dateTime", "date", lambda value: str(value)[:10])
    _move(consent, "policyRule", "regulatoryBasis", lambda rule: [rule])
    return consent


def _medication(med: Resource) -> Resource:
    _move(med, "form", "doseForm")
    _move(med, "manufacturer", "marketingAuthorizationHolder")
    return med


def _organization(org: Resource) -> Resource:
    telecom = org.pop("telecom", None)
    addresses = org.pop("address", None) or []
    contacts = list(org.get("contact") or [])
    if telecom:
        contacts.append({"telecom": telecom})
    contacts += [{"address": address} for address in addresses]
    if contacts:
        org["contact"] = contacts
    return org


_CONVERTERS: Mapping[str, Callable[[Resource], Resource]] = {
    "ResearchStudy": _research_study,
    "ResearchSubject": _research_subject,
    "MedicationAdministration": _medication_administration,
    "AdverseEvent": _adverse_event,
    "Encounter": _encounter,
    "Consent": _consent,
    "Medication": _medication,
    "Organization": _organization,
}


@cache
def _r5_elements(resource_type: str) -> frozenset[str]:
    from fhir.resources import get_fhir_model_class

    fields = get_fhir_model_class(resource_type).model_fields
    names = {field.alias or name for name, field in fields.items()}
    return frozenset(names | {f"_{n}" for n in names} | {"resourceType"})


def _check_elements(resource: Resource) -> None:
    rtype = str(resource.get("resourceType"))
    unknown = sorted(set(resource) - _r5_elements(rtype))
    if unknown:
        raise ValueError(f"{rtype}/{resource.get('id')}: no R5 rule for R4 element(s) "
                         f"{', '.join(unknown)}")


def to_r5(bundle: Mapping[str, Any]) -> dict[str, Any]:
    """An R5 copy of the R4 demo ``bundle`` (the input is not changed)."""
    result: dict[str, Any] = copy.deepcopy(dict(bundle))
    for entry in result.get("entry") or []:
        resource = entry.get("resource")
        if not isinstance(resource, dict):
            continue
        convert = _CONVERTERS.get(str(resource.get("resourceType")))
        if convert is not None:
            resource = convert(resource)
            entry["resource"] = resource
        _check_elements(resource)
    return result
