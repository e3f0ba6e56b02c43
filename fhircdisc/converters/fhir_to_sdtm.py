"""FHIR -> SDTM: read, index, enrol, map each resource with its domain spec, derive.

The flow: sources -> resources (with origin) -> index by type/id/fullUrl ->
enrolment (who is a subject) -> per resource, a *view* (the resource plus the
context it references) mapped by its domain spec -> one DataFrame per domain ->
study-level derivations (RF dates, --DY, --SEQ, AGE) -> ``Study``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fhircdisc.converters.enrolment import (
    Enrolment,
    enrol,
    is_registry_identifier,
    study_identifier,
)
from fhircdisc.converters.fhir_reader import LineResource, ReadProblem, SourceResource, read_sources
from fhircdisc.converters.fhir_version import VersionVote
from fhircdisc.converters.processes import can_fork, forked_pool
from fhircdisc.converters.resource_index import ResourceIndex
from fhircdisc.mappings import ae, derivations, dm, ex, lb, paths, ts, vs
from fhircdisc.mappings import terminology as terminology_module
from fhircdisc.mappings.algorithms import MapContext, map_view
from fhircdisc.mappings.compiled import compile_specs
from fhircdisc.mappings.element_types import element_problem
from fhircdisc.mappings.extensions import SDTM_VARIABLE, read_records, read_variables
from fhircdisc.mappings.spec import DomainSpec, Unmapped
from fhircdisc.mappings.terminology import Terminology
from fhircdisc.report import NOT_A_RESOURCE, ConversionReport, UnmappedItem, ValueIssueItem
from fhircdisc.study import Study

SPECS: dict[str, DomainSpec] = {s.domain: s for s in (dm.SPEC, ex.SPEC, lb.SPEC, vs.SPEC,
                                                       ae.SPEC, ts.SPEC)}
#: the Observation domains, whose repeating parts are mapped once per distinct value
COMPILED = compile_specs(SPECS, ("LB", "VS", "DM"))
CONTEXT_TYPES = frozenset({"ResearchSubject", "Encounter", "Consent", "Medication",
                           "Organization", "Specimen"})
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
_CATEGORY_DOMAIN = {"laboratory": "LB", "vital-signs": "VS"}
#: statuses whose resources are not converted (a tuple: a status of the wrong shape, a list,
#: is compared, not hashed, and then reported by the element check)
EXCLUDED_STATUS = ("entered-in-error",)


@dataclass(frozen=True)
class View:
    """One unit to map: a resource, or one component of a panel, plus resolved context."""

    domain: str
    data: dict[str, Any]
    source: SourceResource
    location: str


def to_sdtm(sources: Iterable[str | Path], *, study_id: str | None = None,
            site_id: str | None = None, subjects: str | Path | None = None,
            fhir_version: str = "auto", terminology: Iterable[str | Path] = (),
            enrol_all: bool = False, progress: Callable[[str, int], None] | None = None,
            workers: int | None = None) -> Study:
    """Convert FHIR Bundles / NDJSON files / folders of them to SDTM.

    ``study_id`` enrols every Patient when the input has no ResearchSubject (and sets
    STUDYID otherwise); ``subjects`` is a CSV (patient_id, SUBJID, SITEID, ARMCD, ARM,
    RFICDTC) selecting and enrolling patients; ``enrol_all`` enrols every Patient even
    when ResearchSubjects exist; ``terminology`` adds user rows to the
    terminology tables. ``progress(file, resources_read)`` is called as reading goes.
    Returns a ``Study`` with one DataFrame per domain and the conversion report.
    Unreadable input raises ``InputError``.
    """
    sources = list(sources)
    items: Iterable[SourceResource | ReadProblem] = read_sources(sources)
    if progress is not None:
        items = _reporting(items, progress)
    return convert_resources(items, sources=[str(s) for s in sources],
                             study_id=study_id, site_id=site_id, subjects=subjects,
                             fhir_version=fhir_version,
                             terminology=terminology_module.load(terminology),
                             enrol_all=enrol_all, workers=workers)


def _reporting(items: Iterable[SourceResource | ReadProblem],
               progress: Callable[[str, int], None], every: int = 5000
               ) -> Iterator[SourceResource | ReadProblem]:
    count = 0
    file = ""
    for item in items:
        count += 1
        file = item.origin.file
        if count % every == 0:
            progress(file, count)
        yield item
    progress(file, count)


def convert_resources(items: Iterable[SourceResource | ReadProblem], *, sources: list[str],
                      terminology: Terminology, study_id: str | None = None,
                      site_id: str | None = None, subjects: str | Path | None = None,
                      fhir_version: str = "auto", enrol_all: bool = False,
                      workers: int | None = 1) -> Study:
    """``to_sdtm`` on resources already read (or made in memory).

    ``workers``: processes that map resources (``None``: every core for large inputs);
    the output is the same whatever the number.
    """
    report, resources, index, enrolment = read_context(
        items, sources=sources, terminology=terminology, study_id=study_id, site_id=site_id,
        subjects=subjects, fhir_version=fhir_version, enrol_all=enrol_all)
    terms = terminology
    converter = Converter(index, enrolment, terms, report)
    if workers is None:
        workers = (os.cpu_count() or 1) if len(resources) >= PARALLEL_FROM else 1
    rows = converter.run(resources, workers)
    frames = derivations.derive(rows, SPECS)
    study = Study.from_frames(frames, report=report)
    report.rows = {name: len(frame) for name, frame in study.domains.items()}
    report.sort_items()
    return study


def read_context(items: Iterable[SourceResource | ReadProblem], *, sources: list[str],
                 terminology: Terminology, study_id: str | None = None,
                 site_id: str | None = None, subjects: str | Path | None = None,
                 fhir_version: str = "auto", enrol_all: bool = False
                 ) -> tuple[ConversionReport, list[SourceResource], ResourceIndex, Enrolment]:
    """Take in every resource: report what could not be read, decide the FHIR version,
    index the resources and enrol the subjects."""
    report = ConversionReport(sources=sources, terminology=terminology.sources)
    resources: list[SourceResource] = []
    vote = VersionVote()
    for item in items:
        if isinstance(item, ReadProblem):
            key = f"{NOT_A_RESOURCE}@{item.origin}"
            report.read(NOT_A_RESOURCE, key)
            report.mark(key, "unmapped")
            report.unmapped.append(UnmappedItem(item.resource_type or NOT_A_RESOURCE, key,
                                                item.origin.file, item.origin.location,
                                                item.reason_code, item.message))
            continue
        resources.append(item)
        if isinstance(item, LineResource):      # its vote was taken as its line was read
            vote.told(*item.telling, item.origin.file, item.origin.location)
        else:
            vote.add(item.data, item.origin.file, item.origin.location)
    report.fhir_version = vote.decide(fhir_version)

    index = ResourceIndex()
    for resource in resources:
        report.read(resource.type, _report_key(resource))
        index.add(resource)
    enrolment = enrol(index, study_id=study_id, site_id=site_id, subjects_file=subjects,
                      enrol_all=enrol_all)
    report.enrolment = enrolment.mode
    for rs, message in enrolment.problems:
        _unmapped(report, rs, rs.origin.location, "invalid-research-subject", message)
    return report, resources, index, enrolment


def _report_key(resource: SourceResource) -> str:
    return resource.report_key


def _unmapped(report: ConversionReport, resource: SourceResource, location: str, code: str,
              message: str, element: str | None = None, system: str | None = None,
              value: str | None = None) -> None:
    report.mark(_report_key(resource), "unmapped")
    report.unmapped.append(UnmappedItem(resource.type, resource.key, resource.origin.file,
                                        location, code, message, element, system, value))


_ACTIVE: tuple[Converter, list[SourceResource]] | None = None
#: from how many resources ``workers=None`` spreads the mapping over the cores
PARALLEL_FROM = 20_000


def _map_in_worker(start: int, stop: int) -> tuple[dict[str, list[dict[str, Any]]],
                                                   dict[str, str], list[UnmappedItem],
                                                   list[ValueIssueItem]]:
    """One chunk in a forked worker: the converter and resources come with the fork."""
    assert _ACTIVE is not None
    converter, resources = _ACTIVE
    converter.report = ConversionReport()
    rows = converter._map_range(resources, start, stop)
    report = converter.report
    return rows, report.status, report.unmapped, report.value_issues


class Converter:
    """Maps resources to rows with the domain specs, given the index, the subjects and the
    terminology; outcomes and problems go into ``report``."""

    def __init__(self, index: ResourceIndex, enrolment: Enrolment, terms: Terminology,
                 report: ConversionReport) -> None:
        self.index = index
        self.enrolment = enrolment
        self.terms = terms
        self.report = report
        self.study_keys = {rs_study for rs_study in self._subject_studies()}

    def _subject_studies(self) -> Iterator[str]:
        for rs in self.index.by_type.get("ResearchSubject", []):
            study = self.index.resolve(rs.data.get("study"))
            if study is not None:
                yield study.key

    def run(self, resources: list[SourceResource], workers: int = 1
            ) -> dict[str, list[dict[str, Any]]]:
        """Map every resource; over ``workers`` forked processes when asked (same output)."""
        if workers <= 1 or not can_fork():
            return self._map_range(resources, 0, len(resources))
        global _ACTIVE
        _ACTIVE = (self, resources)
        size = -(-len(resources) // (workers * 4))
        bounds = [(start, min(start + size, len(resources)))
                  for start in range(0, len(resources), size)]
        try:
            with forked_pool(workers) as pool:
                parts = pool.starmap(_map_in_worker, bounds)
        finally:
            _ACTIVE = None
        rows: dict[str, list[dict[str, Any]]] = {name: [] for name in SPECS}
        for part_rows, status, unmapped, issues in parts:   # in chunk order, as one pass
            for name, domain_rows in part_rows.items():
                rows[name].extend(domain_rows)
            for key, outcome in status.items():
                self.report.mark(key, outcome)
            self.report.unmapped.extend(unmapped)
            self.report.value_issues.extend(issues)
        return rows

    def _map_range(self, resources: list[SourceResource], start: int, stop: int
                   ) -> dict[str, list[dict[str, Any]]]:
        rows: dict[str, list[dict[str, Any]]] = {name: [] for name in SPECS}
        for order in range(start, stop):
            resource = resources[order]
            key = _report_key(resource)
            try:
                views = list(self._views(resource))
            except Unmapped as exc:
                _unmapped(self.report, resource, resource.origin.location, exc.reason_code,
                          exc.message, exc.element, exc.system, exc.code)
                continue
            if views is None or not views:
                continue
            for view in views:
                ctx = MapContext(self.terms, resource.type)
                net = read_variables(view.data)
                try:
                    if not net and view.domain in COMPILED:
                        row = COMPILED[view.domain].map(view.data, ctx)
                    else:
                        row = map_view(SPECS[view.domain], view.data, ctx, net)
                except Unmapped as exc:
                    _unmapped(self.report, resource, view.location, exc.reason_code, exc.message,
                              exc.element, exc.system, exc.code)
                    continue
                if net:
                    row["_net"] = net
                if view.domain == "DM":
                    row["_subject"] = view.data["_subject"]
                if view.domain == "TS":
                    row["_studyid"] = study_identifier(resource.data)
                    row["_records"] = read_records(resource.data)
                row["_order"] = order
                row["_source"] = resource.key
                row["_file"] = resource.origin.file
                row["_location"] = view.location
                rows[view.domain].append(row)
                self.report.mark(key, "mapped")
                for issue in ctx.issues:
                    self.report.value_issues.append(ValueIssueItem(
                        view.domain, resource.key, issue.var, issue.reason_code, issue.message,
                        issue.element, issue.system, issue.code))
        return rows

    # -- views -------------------------------------------------------------------------------
    def _views(self, resource: SourceResource) -> Iterator[View]:
        rtype = resource.type
        key = _report_key(resource)
        if rtype in CONTEXT_TYPES:          # read for what other rows need: no parse here
            self.report.mark(key, "context")
            return
        data = resource.data
        if rtype == "ResearchStudy":
            if data.get("partOf"):
                self.report.mark(key, "context")
                return
            problem = element_problem(data)
            if problem is not None:
                raise Unmapped("invalid-element", problem[1], problem[0])
            yield View("TS", self._study_view(data), resource, resource.origin.location)
            return
        if rtype not in ("Patient", "Observation", "MedicationAdministration", "AdverseEvent"):
            raise Unmapped("unsupported-resource-type",
                           f"{rtype} resources have no SDTM mapping in this version")
        if data.get("status") in EXCLUDED_STATUS:
            raise Unmapped("entered-in-error", f"{rtype} has status entered-in-error",
                           f"{rtype}.status")
        problem = element_problem(data)
        if problem is not None:
            raise Unmapped("invalid-element", problem[1], problem[0])
        if rtype == "Patient":
            subject = self.enrolment.subject_for(resource.key)
            if subject is None:
                raise Unmapped("subject-not-enrolled", "Patient is not enrolled in the study")
            yield View("DM", {**data, "_subject": subject}, resource, resource.origin.location)
            return
        subject = self._subject(resource)
        base = {**data, "_subject": subject}
        encounter = self.index.resolve(data.get("encounter") or data.get("context"))
        if encounter is not None:
            base["_encounter"] = encounter.data
        if rtype == "MedicationAdministration":
            if data.get("status") in ("not-done", "stopped") and data.get("status") == "not-done":
                raise Unmapped("not-done", "administration was not done",
                               "MedicationAdministration.status")
            base["_medication"] = self._medication(data)
            yield View("EX", base, resource, resource.origin.location)
        elif rtype == "AdverseEvent":
            if data.get("actuality") == "potential":
                raise Unmapped("potential-event", "AdverseEvent.actuality is potential (a near "
                               "miss, not an adverse event)", "AdverseEvent.actuality")
            yield View("AE", base, resource, resource.origin.location)
        else:
            yield from self._observation_views(resource, base)

    def _subject(self, resource: SourceResource) -> Any:
        ref = resource.data.get("subject") or resource.data.get("patient")
        if not ref:
            raise Unmapped("missing-subject", f"{resource.type} has no subject",
                           f"{resource.type}.subject")
        key = self.index.key_of(ref)
        if key is None or not key.startswith("Patient/"):
            raise Unmapped("missing-subject", f"subject {paths.get(ref, 'reference') or ref!r} "
                           "is not a Patient reference", f"{resource.type}.subject")
        subject = self.enrolment.subject_for(key)
        if subject is None:
            raise Unmapped("subject-not-enrolled", f"{key} is not enrolled in the study",
                           f"{resource.type}.subject")
        return subject

    def _medication(self, data: dict[str, Any]) -> dict[str, Any]:
        concept = data.get("medicationCodeableConcept") or paths.get(data, "medication.concept")
        if concept:
            return {"code": concept}
        ref = data.get("medicationReference") or paths.get(data, "medication.reference")
        if isinstance(ref, dict) and str(ref.get("reference", "")).startswith("#"):
            wanted = ref["reference"][1:]
            for contained in data.get("contained") or []:
                if contained.get("id") == wanted:
                    return dict(contained)
        target = self.index.resolve(ref)
        if target is None:
            raise Unmapped("unresolved-reference", "medication reference does not resolve to a "
                           "Medication in the input", "MedicationAdministration.medication")
        return dict(target.data)

    def _study_view(self, data: dict[str, Any]) -> dict[str, Any]:
        view = dict(data)
        view["_registry_ids"] = [i.get("value") for i in data.get("identifier") or []
                                 if isinstance(i, dict) and i.get("value")
                                 and is_registry_identifier(i)]
        sponsor = self.index.resolve(data.get("sponsor") or paths.get(
            data, "associatedParty[role.coding.code=sponsor].party"))
        if sponsor is not None:
            view["_sponsor"] = sponsor.data
        view["_subject"] = None
        return view

    def _observation_views(self, resource: SourceResource, base: dict[str, Any]
                           ) -> Iterator[View]:
        data = resource.data
        domain = observation_domain(data, self.terms)
        specimen = self.index.resolve(data.get("specimen"))
        if specimen is not None:
            base["_specimen"] = specimen.data
        has_value = any(k.startswith("value") for k in data) or data.get("dataAbsentReason")
        components = data.get("component") or []
        if has_value or not components:
            if not has_value and data.get("hasMember"):
                raise Unmapped("panel-grouping", "panel Observation without a value of its own; "
                               "its members map on their own", "Observation.hasMember")
            yield View(domain, base, resource, resource.origin.location)
            return
        for number, component in enumerate(components):
            view = {k: v for k, v in base.items() if not k.startswith("value")
                    and k not in ("interpretation", "referenceRange", "dataAbsentReason",
                                  "component", "extension")}
            view.update(component)
            # the panel's own extensions (body position) apply to every component; the
            # SDTM variables carried on a component belong to that component only
            inherited = [e for e in base.get("extension") or []
                         if isinstance(e, dict) and e.get("url") != SDTM_VARIABLE]
            if inherited or component.get("extension"):
                view["extension"] = inherited + list(component.get("extension") or [])
            yield View(domain, view, resource, f"{resource.origin.location}.component[{number}]")


def observation_domain(data: dict[str, Any], terms: Terminology) -> str:
    """LB or VS for an Observation: by its category, else by the test table its code is
    in; ``Unmapped`` when neither tells."""
    for code in paths.get_all(data, "category.coding.code"):
        if code in _CATEGORY_DOMAIN:
            return _CATEGORY_DOMAIN[code]
    for coding in paths.get_all(data, "code.coding"):
        if terms.lookup("LBTEST", coding.get("system"), coding.get("code")):
            return "LB"
        if terms.lookup("VSTEST", coding.get("system"), coding.get("code")):
            return "VS"
    categories = ", ".join(paths.get_all(data, "category.coding.code")) or "none"
    raise Unmapped("unsupported-category",
                   f"Observation category ({categories}) is neither laboratory nor "
                   "vital-signs, and its code is in no test table", "Observation.category")
