"""Who is in the study: subjects, their identifiers, sites and arms.

Following the HL7 FHIR-to-CDISC Joint Mapping IG, a ResearchSubject links a
Patient to a ResearchStudy; when that study is ``partOf`` another, the parent's
identifier is STUDYID and the site-level study's identifier is SITEID. R4
(``individual``, ``assignedArm``, ``actualArm``) and R5 (``subject``,
``assignedComparisonGroup``, ``actualComparisonGroup``) are both read.

Hospital exports carry no ResearchSubject: then a study id enrols every Patient,
or a subjects file (CSV) selects and enrols some of them.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fhircdisc.converters.fhir_reader import SourceResource
from fhircdisc.converters.resource_index import ResourceIndex
from fhircdisc.errors import InputError
from fhircdisc.mappings import paths
from fhircdisc.mappings.dates import DateFormatError, fhir_to_dtc
from fhircdisc.mappings.extensions import USUBJID_SYSTEM

SUBJECT_FILE_COLUMNS = ("patient_id", "SUBJID", "SITEID", "ARMCD", "ARM", "ACTARMCD", "ACTARM",
                        "RFICDTC")
_REGISTRY_HINTS = ("REGID", "clinicaltrials.gov", "irct", "isrctn", "eudract", "who.int/ictrp")


@dataclass(frozen=True, slots=True)
class Subject:
    """One enrolled subject, as DM and every other domain need it (slots: a hospital
    export has one a Patient, and every lane row reads two of its fields)."""

    patient_key: str
    studyid: str
    usubjid: str
    subjid: str
    siteid: str | None = None
    armcd: str | None = None
    arm: str | None = None
    actarmcd: str | None = None
    actarm: str | None = None
    rficdtc: str | None = None
    period_start: str | None = None
    period_end: str | None = None
    research_subject: str | None = None


def make_usubjid(studyid: str, siteid: str | None, subjid: str) -> str:
    """USUBJID as ``STUDYID-SITEID-SUBJID`` (``STUDYID-SUBJID`` without a site)."""
    return "-".join(part for part in (studyid, siteid, subjid) if part)


def is_registry_identifier(identifier: dict[str, Any]) -> bool:
    text = " ".join(str(v) for v in (identifier.get("system"), paths.get(identifier, "type.text"),
                                     paths.get(identifier, "type.coding.code")) if v).lower()
    return any(hint.lower() in text for hint in _REGISTRY_HINTS)


def study_identifier(study: dict[str, Any]) -> str | None:
    """The sponsor's identifier of a ResearchStudy: its first non-registry identifier."""
    identifiers = [i for i in study.get("identifier") or []
                   if isinstance(i, dict) and i.get("value")]
    for identifier in identifiers:
        if not is_registry_identifier(identifier):
            return str(identifier["value"])
    return str(study["id"]) if study.get("id") else None


class Enrolment:
    """The subjects of a study, keyed by their Patient (``Patient/id``)."""

    def __init__(self, subjects: dict[str, Subject], problems: list[tuple[SourceResource, str]],
                 mode: str) -> None:
        self.subjects = subjects
        self.problems = problems
        self.mode = mode

    def subject_for(self, patient_key: str | None) -> Subject | None:
        return self.subjects.get(patient_key) if patient_key else None

    @property
    def studyids(self) -> list[str]:
        return sorted({s.studyid for s in self.subjects.values()})


def _date(value: Any, where: str) -> str | None:
    if value is None:
        return None
    try:
        return fhir_to_dtc(value)
    except DateFormatError as exc:
        raise _SubjectProblem(f"{where}: {exc}") from exc


class _SubjectProblem(Exception):
    pass


def _arm(study: dict[str, Any] | None, parent: dict[str, Any] | None, code: str | None
         ) -> tuple[str | None, str | None]:
    """(ARMCD, ARM) for an arm named ``code`` in the R4 ``arm`` or R5 ``comparisonGroup``."""
    if not code:
        return None, None
    for source in (study, parent):
        if not source:
            continue
        for arm in source.get("arm") or []:
            if arm.get("name") == code:
                return code, arm.get("description") or code
        for group in source.get("comparisonGroup") or []:
            if code in (group.get("linkId"), group.get("name"), group.get("id")):
                return group.get("name") or code, group.get("description") or group.get("name")
    return code, code


def from_research_subjects(index: ResourceIndex, study_id: str | None = None,
                           site_id: str | None = None) -> Enrolment:
    """Subjects from ResearchSubject resources (R4 or R5 shape)."""
    subjects: dict[str, Subject] = {}
    problems: list[tuple[SourceResource, str]] = []
    for rs in index.by_type.get("ResearchSubject", []):
        data = rs.data
        try:
            subject = _research_subject(index, data, study_id, site_id)
        except _SubjectProblem as exc:
            problems.append((rs, str(exc)))
            continue
        if subject.patient_key in subjects:
            problems.append((rs, f"{subject.patient_key} is already enrolled by "
                                 f"{subjects[subject.patient_key].research_subject}"))
            continue
        subjects[subject.patient_key] = replace(subject, research_subject=rs.key)
    return Enrolment(subjects, problems, "ResearchSubject")


def _research_subject(index: ResourceIndex, data: dict[str, Any], study_id: str | None,
                      site_id: str | None) -> Subject:
    patient_ref = data.get("individual") or data.get("subject")
    patient_key = index.key_of(patient_ref)
    if not patient_key or not patient_key.startswith("Patient/"):
        raise _SubjectProblem("ResearchSubject has no individual/subject Patient reference")
    study_res = index.resolve(data.get("study"))
    study = study_res.data if study_res else None
    parent = None
    if study and study.get("partOf"):
        parent_res = index.resolve(study["partOf"][0])
        parent = parent_res.data if parent_res else None
    top = parent or study
    studyid = study_id or (study_identifier(top) if top else None)
    if not studyid:
        raise _SubjectProblem("ResearchSubject.study does not resolve to a ResearchStudy with an "
                              "identifier (give --study-id)")
    siteid = site_id
    if siteid is None and parent is not None and study is not None:
        siteid = study_identifier(study)
    identifiers = [i for i in data.get("identifier") or [] if isinstance(i, dict)]
    usubjid = next((i.get("value") for i in identifiers if i.get("system") == USUBJID_SYSTEM),
                   None)
    subjid = next((i.get("value") for i in identifiers if i.get("system") != USUBJID_SYSTEM
                   and i.get("value")), None) or patient_key.split("/", 1)[1]
    assigned = data.get("assignedArm") or _group_ref(data.get("assignedComparisonGroup"))
    actual = data.get("actualArm") or _group_ref(data.get("actualComparisonGroup"))
    armcd, arm = _arm(study, parent, assigned)
    actarmcd, actarm = _arm(study, parent, actual)
    consent = index.resolve(data.get("consent") if not isinstance(data.get("consent"), list)
                            else data["consent"][0])
    rficdtc = _date(consent.data.get("dateTime") or consent.data.get("date"),
                    "Consent.dateTime") if consent else None
    return Subject(
        patient_key=patient_key, studyid=str(studyid),
        usubjid=str(usubjid or make_usubjid(str(studyid), siteid, str(subjid))),
        subjid=str(subjid),
        siteid=siteid, armcd=armcd, arm=arm, actarmcd=actarmcd, actarm=actarm, rficdtc=rficdtc,
        period_start=_date(paths.get(data, "period.start"), "ResearchSubject.period.start"),
        period_end=_date(paths.get(data, "period.end"), "ResearchSubject.period.end"),
    )


def _group_ref(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        ref = value.get("reference") or ""
        return ref.lstrip("#") or None
    return None


def all_patients(index: ResourceIndex, study_id: str, site_id: str | None = None) -> Enrolment:
    """Every Patient enrolled in ``study_id``, SUBJID = the Patient id."""
    subjects = {}
    for patient in index.by_type.get("Patient", []):
        if not patient.id:
            continue
        subjects[patient.key] = Subject(
            patient_key=patient.key, studyid=study_id, subjid=patient.id, siteid=site_id,
            usubjid=make_usubjid(study_id, site_id, patient.id))
    return Enrolment(subjects, [], "all-patients")


def from_subjects_file(path: str | Path, study_id: str, site_id: str | None = None) -> Enrolment:
    """Subjects listed in a CSV file: patient_id, SUBJID, SITEID, ARMCD, ARM, ... RFICDTC."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"cannot read subjects file: {exc.strerror}", str(path)) from exc
    reader = csv.DictReader(text.splitlines())
    fields = reader.fieldnames or []
    if "patient_id" not in fields:
        raise InputError("subjects file needs a patient_id column", str(path), "header",
                         hint=f"columns: {', '.join(SUBJECT_FILE_COLUMNS)}")
    subjects: dict[str, Subject] = {}
    for number, row in enumerate(reader, start=2):
        pid = (row.get("patient_id") or "").strip()
        if not pid:
            raise InputError("empty patient_id", str(path), f"line {number}")
        key = pid if pid.startswith("Patient/") else f"Patient/{pid}"
        if key in subjects:
            raise InputError(f"patient {pid} listed twice", str(path), f"line {number}")
        subjid = (row.get("SUBJID") or "").strip() or key.split("/", 1)[1]
        siteid = (row.get("SITEID") or "").strip() or site_id
        rficdtc = (row.get("RFICDTC") or "").strip() or None
        if rficdtc is not None:
            try:
                rficdtc = fhir_to_dtc(rficdtc)
            except DateFormatError as exc:
                raise InputError(f"RFICDTC: {exc}", str(path), f"line {number}") from exc

        def cell(name: str, row: dict[str, str] = row) -> str | None:
            return (row.get(name) or "").strip() or None

        armcd = cell("ARMCD")
        subjects[key] = Subject(
            patient_key=key, studyid=study_id, subjid=subjid, siteid=siteid,
            usubjid=make_usubjid(study_id, siteid, subjid), armcd=armcd,
            arm=cell("ARM") or armcd, actarmcd=cell("ACTARMCD") or armcd,
            actarm=cell("ACTARM") or cell("ARM") or armcd, rficdtc=rficdtc)
    return Enrolment(subjects, [], "subjects-file")


def enrol(index: ResourceIndex, *, study_id: str | None = None, site_id: str | None = None,
          subjects_file: str | Path | None = None, enrol_all: bool = False) -> Enrolment:
    """Choose how subjects are enrolled: subjects file, ResearchSubjects, or every Patient.

    ``enrol_all`` enrols every Patient even when ResearchSubjects exist (those still give
    their subjects' SUBJID, site and arm).
    """
    if subjects_file is not None:
        if not study_id:
            raise InputError("--subjects needs --study-id")
        return from_subjects_file(subjects_file, study_id, site_id)
    if enrol_all:
        if not study_id:
            raise InputError("enrolling every Patient needs --study-id")
        everyone = all_patients(index, study_id, site_id)
        listed = from_research_subjects(index, study_id, site_id)
        everyone.subjects.update(listed.subjects)
        return Enrolment(everyone.subjects, listed.problems, "all-patients")
    if index.by_type.get("ResearchSubject"):
        return from_research_subjects(index, study_id, site_id)
    if study_id:
        return all_patients(index, study_id, site_id)
    raise InputError("the input has no ResearchSubject, so the study is unknown",
                     hint="give --study-id to enrol every Patient, or --subjects FILE")
