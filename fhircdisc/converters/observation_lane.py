"""The fast lane for plain Observations: one view, no context to resolve.

Most Observations in a Bulk Data export are a code, a subject, a date and a result,
perhaps an encounter, with no specimen, components or extensions. For them the general
engine's view building (reference resolution, panel splitting, carried variables) comes
down to the resource plus its subject and encounter, so the lane maps the resource
directly: the subject is cached per reference, the visit variables (the rules that read
the encounter) per encounter reference, and the LB/VS routing with every rule that reads
repeating elements (code, category, range, flag, unit) is worked out once per distinct
value of them as a row *template*; a row is its template plus the resource's own values
(and its visit's). An
NDJSON line is first read straight from its text (``map_line``, see
:mod:`fhircdisc.converters.observation_lines`), then, if that declines it, parsed
(``map``). Anything else, and every resource that would not map, goes back to the
general engine, which then produces exactly the row or report entry it always does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter
from typing import Any, NamedTuple

import orjson

from fhircdisc.caches import remember
from fhircdisc.converters.enrolment import Enrolment
from fhircdisc.converters.fhir_to_sdtm import COMPILED, EXCLUDED_STATUS, observation_domain
from fhircdisc.converters.observation_lines import LineShape, component_type, orjson_number
from fhircdisc.converters.resource_index import ResourceIndex
from fhircdisc.json_text import dumps_kept
from fhircdisc.mappings.algorithms import MapContext, ValueIssue
from fhircdisc.mappings.compiled import CompiledSpec, PlainTemplate, bare_error, plain_key
from fhircdisc.mappings.element_types import RESOURCES, element_problem
from fhircdisc.mappings.spec import Unmapped
from fhircdisc.mappings.terminology import Terminology
from fhircdisc.report import ValueIssueItem

#: elements whose presence makes the general engine do more than map the resource as is
#: (an encounter gives the visit variables only, which the lane works out per encounter)
_NOT_PLAIN = frozenset({"context", "specimen", "component", "hasMember",
                        "extension", "dataAbsentReason", "patient"})
_CACHE_LIMIT = 50_000
_MISSING: Any = object()

#: what a lane look-up gives for a line that needs the general engine
DECLINED: Any = object()
#: resolved references a view holds: a component must not have them
_RESOLVED = frozenset({"_subject", "_encounter", "_specimen"})
#: what a panel's component views leave out of the panel (its values too)
_NOT_IN_VIEW = frozenset({"interpretation", "referenceRange", "dataAbsentReason", "component",
                          "extension"})

PanelPart = tuple[str, PlainTemplate, Any, tuple[Any, ...], str, tuple[Any, ...] | None, int]
"""A component's ``LineParts`` and its number in the panel."""
LineParts = tuple[str, PlainTemplate, Any, tuple[Any, ...], str, tuple[Any, ...] | None]
"""(domain, template, subject, own values, id, visit values) of a plain Observation line:
the visit values (``CompiledSpec.visit_values``) of its encounter, or None when it has
none that resolves."""


class LineFailure(NamedTuple):
    """A plain Observation line that does not map: what the general engine raises for it
    (``Unmapped``), and its id."""

    error: Unmapped
    rid: str


@dataclass(frozen=True)
class _Failed:
    """A template key whose resources do not map: the error of one without a resolved
    encounter, and of one with (the visit rules then read it; None when that one may
    map); ``domain`` is None when the category and code tell none."""

    domain: str | None
    error: Unmapped
    at_encounter: Unmapped | None


class ObservationLane:
    """Maps plain Observations (``map_line``, ``map``); says None for any other resource."""

    def __init__(self, index: ResourceIndex, enrolment: Enrolment,
                 terminology: Terminology) -> None:
        self.terminology = terminology
        self.index = index
        self.enrolment = enrolment
        self.subjects: dict[str, Any] = {}
        #: a hospital export's subjects each come back every few lines: room for all of
        #: them (they are in memory anyway), and for as many references that resolve to none
        self.subject_limit = _CACHE_LIMIT + len(enrolment.subjects)
        #: subject reference -> why it gives no subject (an export's other patients)
        self.subject_errors: dict[str, Unmapped] = {}
        self.templates: dict[bytes, tuple[str, PlainTemplate] | _Failed] = {}
        inputs, units = zip(*(COMPILED[domain].plain_inputs() for domain in ("LB", "VS")),
                            strict=True)
        self.inputs = ("category", "code", *sorted(set(chain.from_iterable(inputs))
                                                   - {"category", "code"}))
        self.units = tuple(sorted(set(chain.from_iterable(units))))
        dates = {name for domain in ("LB", "VS") for name in COMPILED[domain].date_elements}
        # a result that is not a quantity: a string, or a coded value (keyed: a few values)
        self.shape = LineShape((*self.inputs, "valueCodeableConcept"),
                               ("status", "subject", "encounter", "valueString",
                                *sorted(dates)),
                               tuple(sorted({"valueQuantity", *self.units})), _NOT_PLAIN)
        #: (domain, JSON text of a coded result) -> its text as the result rules give it
        #: (a one-item tuple), or :data:`DECLINED`
        self.coded: dict[tuple[str, bytes], Any] = {}
        # panels (blood pressure): a line of components, each of them a row
        values = frozenset(name for name in RESOURCES["Observation"] if name.startswith("value"))
        overriding = (frozenset(RESOURCES["Observation"]) | _NOT_PLAIN | _RESOLVED
                      | {"status", "subject"}) - set(self.inputs) - {"valueQuantity"}
        self.panel_shape = LineShape(
            self.inputs, ("status", "subject", "encounter", *sorted(dates)), (),
            _NOT_PLAIN - {"component"} | values,
            (("component", component_type(self.inputs, overriding)),))
        self._panel_keyed = attrgetter(*self.inputs)
        self._code = self.inputs.index("code")
        #: the keyed elements a component's view leaves out of the panel
        self._dropped = frozenset(place for place, name in enumerate(self.inputs)
                                  if name in _NOT_IN_VIEW)
        #: encounter reference -> what the visit rules read of it (as JSON text; the
        #: reference itself when that cannot be told), None when it does not resolve;
        #: room for every encounter read (an export's results come back to each of them)
        self.visit_keys: dict[str, Any] = {}
        reads: set[str] | None = set()
        for domain in ("LB", "VS"):
            read = COMPILED[domain].visit_reads
            reads = None if read is None or reads is None else reads | set(read)
        self.visit_reads = None if reads is None else tuple(sorted(reads))
        #: (domain, visit key) -> the visit values, :data:`DECLINED` when they need the
        #: general engine: worked out once for every encounter of a visit
        self.visits: dict[tuple[str, Any], Any] = {}
        self.visit_limit = _CACHE_LIMIT + len(index.by_type.get("Encounter", ()))
        #: the one date element both domains' own values read, when they read one (the
        #: lines of a batch are read for it: ``observation_batch``)
        one_dates: set[str | None] = {COMPILED[domain].batch_date() for domain in ("LB", "VS")}
        self.batch_date: str | None = one_dates.pop() if len(one_dates) == 1 else None
        #: line key -> (domain, template, spec) of the line templates a batch reads
        #: (:meth:`batch_entry`)
        self.batch_entries: dict[tuple[Any, ...], tuple[str, PlainTemplate, CompiledSpec]] = {}
        #: line key -> (domain, template, spec), or why its lines do not map (plain
        #: lines; panels' components under keys of their own, never failures)
        self.line_templates: dict[tuple[Any, ...],
                                  tuple[str, PlainTemplate, CompiledSpec] | _Failed | None] = {}

    def subject_of(self, reference: str) -> Any:
        """The enrolled subject a subject reference gives (None: none), kept in
        :attr:`subjects`."""
        subject = self.subjects.get(reference, _MISSING)
        if subject is _MISSING:
            key = self.index.key_of(reference)
            subject = None
            if key is not None and key.startswith("Patient/"):
                subject = self.enrolment.subject_for(key)
            _keep(self.subjects, reference, subject, self.subject_limit)
        return subject

    def _subject_failure(self, reference: str | None, rid: str | None) -> LineFailure | None:
        """Why the line of the Observation ``rid`` whose subject is ``reference`` (which
        gives no enrolled subject) does not map, as the general engine words it; None for
        an empty reference."""
        if not reference:
            return None
        error = self.subject_errors.get(reference)
        if error is None:
            key = self.index.key_of(reference)
            if key is None or not key.startswith("Patient/"):
                error = Unmapped("missing-subject", f"subject {reference!r} is not a Patient "
                                 "reference", "Observation.subject")
            else:
                error = Unmapped("subject-not-enrolled", f"{key} is not enrolled in the study",
                                 "Observation.subject")
            _keep(self.subject_errors, reference, error, self.subject_limit)
        return LineFailure(error, rid or "")

    def _template(self, data: dict[str, Any], domain: str | None = None
                  ) -> tuple[str, PlainTemplate] | None:
        """The domain and the grouped rules' outcome of a plain Observation, worked out
        once per distinct category, code and grouped inputs; None when it would not map.
        ``domain``: the one a panel's component takes (the panel's), else found from
        ``data``."""
        entry = self._template_or_failure(data, domain)
        return None if isinstance(entry, _Failed) else entry

    def _template_or_failure(self, data: dict[str, Any], domain: str | None = None
                             ) -> tuple[str, PlainTemplate] | _Failed:
        """``_template``, or why its resources do not map."""
        key = plain_key(data, self.inputs, self.units)
        if domain is not None:
            key += domain.encode()
        entry = self.templates.get(key, _MISSING)
        if entry is _MISSING:
            found = domain
            try:
                if found is None:
                    found = observation_domain(data, self.terminology)
                ctx = MapContext(self.terminology, "Observation")
                entry = found, COMPILED[found].plain_template(data, ctx)
            except Unmapped as exc:             # kept: without the frames it passed
                error = bare_error(exc)
                at_encounter = error if found is None else COMPILED[found].grouped_error(
                    data, MapContext(self.terminology, "Observation"))
                entry = _Failed(found, error, at_encounter)
            _keep(self.templates, key, entry)
        return entry

    def _line_template(self, line: bytes, key: tuple[Any, ...]
                       ) -> tuple[str, PlainTemplate, CompiledSpec] | _Failed | None:
        """The domain, template and spec of a line decoded by the lane's shape, under its
        ``key`` (``LineShape.key``), or why such lines do not map."""
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError:
            return None
        # the other elements were checked as the line was decoded
        if element_problem(data) is not None:
            found = None
        else:
            entry = self._template_or_failure(data)
            found = entry if isinstance(entry, _Failed) else (*entry, COMPILED[entry[0]])
        _keep(self.line_templates, key, found)
        return found

    def _line_entry(self, key: tuple[Any, ...], line: bytes
                    ) -> tuple[str, PlainTemplate, CompiledSpec] | _Failed | None:
        """What :attr:`line_templates` holds under ``key``, worked out from ``line`` (whose
        key it is) when no line has made it yet (``read_line`` does the same inline)."""
        entry = self.line_templates.get(key, _MISSING)
        if entry is _MISSING:
            entry = self._line_template(line, key)
        return entry

    def batch_entry(self, key: tuple[Any, ...], line: bytes
                    ) -> tuple[str, PlainTemplate, CompiledSpec] | None:
        """The line template of ``line`` (whose key is ``key``; worked out as ``read_line``
        works it out when no line has made it yet) when lines of it can be read in a
        batch: it maps, has no value issues, and its spec's own values are a not-done
        flag, the date element :attr:`batch_date`, the result as text and as a number.
        Kept in :attr:`batch_entries`; None otherwise."""
        entry = self._line_entry(key, line)
        if entry is None or entry.__class__ is not tuple:
            return None
        _, template, spec = entry
        if template.issues or spec.batch_date() != self.batch_date:
            return None
        _keep(self.batch_entries, key, entry)
        return entry

    def line_failure(self, key: tuple[Any, ...], line: bytes, subject: Any,
                     reference: str, rid: str | None, own_read: bool,
                     encounter: str | None) -> LineFailure | None:
        """Why ``read_line`` reports ``line`` as not mapping when a batch can tell it: from
        the line's subject (one not enrolled) or its template (a domain and no more, or
        none); None when ``read_line`` would read it otherwise. The line passed the checks
        before those (an Observation of a status that maps, with the subject reference
        ``reference``, of ``subject``, whose line key is ``key``); ``own_read``: whether
        its own values are what a batch reads (:attr:`batch_date` and a result without a
        comparator that ``own_values`` takes); ``encounter``: its encounter reference."""
        entry = self._line_entry(key, line)
        if entry is None:
            return None
        if subject is None:
            return self._subject_failure(reference, rid)
        if entry.__class__ is not _Failed:
            return None
        if entry.domain is None:
            return LineFailure(entry.error, rid or "")
        spec = COMPILED[entry.domain]
        if not own_read or spec.batch_date() != self.batch_date:
            return None
        visit = None if encounter is None else self.visit_of(encounter, entry.domain, spec)
        if visit is DECLINED:
            return None
        error = entry.error if visit is None else entry.at_encounter
        return None if error is None else LineFailure(error, rid or "")

    def read_line(self, line: bytes, decoded: Any = DECLINED
                  ) -> LineParts | LineFailure | None:
        """What the row of a plain Observation NDJSON line is made of, read without
        building the whole resource: its domain, template, subject, own values
        (``CompiledSpec.own_values``) and id; or why it does not map (the general engine
        would report just that); None to leave the line to ``map``. ``decoded``: what
        ``self.shape.decode`` gives for the line, when it was decoded already."""
        obs = self.shape.decode(line) if decoded is DECLINED else decoded
        if obs is None or obs.resourceType != "Observation" or obs.status in EXCLUDED_STATUS:
            return None
        reference = obs.subject.reference if obs.subject is not None else None
        if reference is None:
            return None
        subject = self.subjects.get(reference, _MISSING)
        if subject is _MISSING:
            subject = self.subject_of(reference)
        key = self.shape.key(obs)
        entry = self.line_templates.get(key, _MISSING)
        if entry is _MISSING:
            entry = self._line_template(line, key)
        if entry is None:
            return None
        if subject is None:                  # checked right after the elements' shapes
            return self._subject_failure(reference, obs.id)
        if entry.__class__ is _Failed:
            if entry.domain is None:         # no domain: nothing else is looked at
                return LineFailure(entry.error, obs.id or "")
            domain, template, spec = entry.domain, None, COMPILED[entry.domain]
        else:
            domain, template, spec = entry
        quantity = obs.valueQuantity
        if quantity is not None or (obs.valueString is None and not obs.valueCodeableConcept):
            own = self._own_of_quantity(spec, quantity, obs)
        else:                                # the result rules read the string first
            text = (obs.valueString,) if obs.valueString is not None \
                else self._coded(bytes(obs.valueCodeableConcept), domain, spec)
            if text is DECLINED:
                return None
            own = spec.own_values_of_text(text[0], obs.status, obs.__getattribute__)
        if own is None:
            return None
        visit = None if obs.encounter is None else self._line_visit(obs, domain, spec)
        if visit is DECLINED:
            return None
        if template is None:
            # its own values and visit map: the grouped rules' error is the first one
            error = entry.error if visit is None else entry.at_encounter
            return None if error is None else LineFailure(error, obs.id or "")
        return domain, template, subject, own, obs.id or "", visit

    @staticmethod
    def _own_of_quantity(spec: CompiledSpec, quantity: Any, obs: Any
                         ) -> tuple[Any, ...] | None:
        """``own_values`` of a line (``obs``) whose result is ``quantity`` (None: none)."""
        if quantity is None:
            return spec.own_values(None, None, obs.status, obs.__getattribute__)
        value = quantity.value
        if value.__class__ is int and not orjson_number(value):
            return None
        return spec.own_values(value, quantity.comparator, obs.status, obs.__getattribute__)

    def _line_visit(self, obs: Any, domain: str, spec: CompiledSpec) -> Any:
        """The visit values of a line's encounter: None without one (or one that does not
        resolve), :data:`DECLINED` when the line needs the general engine."""
        encounter = obs.encounter
        if encounter is None or encounter.reference is None:
            return None
        return self.visit_of(encounter.reference, domain, spec)

    def _coded(self, text: bytes, domain: str, spec: CompiledSpec) -> Any:
        """The result text of a coded result (its JSON ``text``), worked out once."""
        key = (domain, text)
        found = self.coded.get(key, _MISSING)
        if found is _MISSING:
            try:
                concept = orjson.loads(text)
            except orjson.JSONDecodeError:
                concept = _MISSING
            found = DECLINED
            if concept is not _MISSING:
                found = spec.result_text({"valueCodeableConcept": concept},
                                         MapContext(self.terminology, "Observation"))
                if found is None:
                    found = DECLINED
            _keep(self.coded, key, found)
        return found

    def read_panel(self, line: bytes) -> list[PanelPart] | LineFailure | None:
        """What the rows of a panel Observation NDJSON line (components, no value of its
        own: blood pressure) are made of, one per component, as ``read_line`` gives them
        with the component's number; or why the panel does not map when that is its
        subject (the general engine reports the whole resource); None to leave the line
        to the parsed way."""
        obs = self.panel_shape.decode(line)
        if obs is None or obs.resourceType != "Observation" or not obs.component \
                or obs.status in EXCLUDED_STATUS or obs.subject is None:
            return None
        base = self._panel_keyed(obs)
        if any(base[place] for place in self._dropped):
            return None          # the panel's own range or flag: checked the parsed way
        reference = obs.subject.reference
        subject = None if reference is None else self.subjects.get(reference, _MISSING)
        if subject is _MISSING:
            subject = self.subject_of(reference)
        parts: list[PanelPart] = []
        for number, component in enumerate(obs.component):
            texts = self._panel_keyed(component)
            quantity = component.valueQuantity
            # the view's texts (the component's over the panel's), the panel's code (it
            # tells the domain) and the component's unit
            key = (b"panel", bytes(base[self._code]),
                   *(bytes(text) if text else b"" if place in self._dropped
                     else bytes(base[place]) for place, text in enumerate(texts)),
                   None if quantity is None
                   else (quantity.code, quantity.system, quantity.unit))
            entry = self.line_templates.get(key, _MISSING)
            if entry is _MISSING:
                entry = self._panel_template(line, number, key)
            if entry is None:
                return None
            if subject is None:   # the elements' shapes are checked before the subject
                continue
            domain, template, spec = entry
            own = self._own_of_quantity(spec, quantity, obs)
            if own is None:
                return None
            visit = self._line_visit(obs, domain, spec)
            if visit is DECLINED:
                return None
            parts.append((domain, template, subject, own, obs.id or "", visit, number))
        if subject is None:
            return self._subject_failure(reference, obs.id)
        return parts

    def _panel_template(self, line: bytes, number: int, key: tuple[Any, ...]
                        ) -> tuple[str, PlainTemplate, CompiledSpec] | None:
        """The domain (the panel's), template and spec of component ``number`` of the panel
        on ``line``, under its ``key``: the view the general engine maps, the panel without
        its value, range, flag and components, with the component over it."""
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError:
            return None
        found = None
        if element_problem(data) is None:
            try:
                domain = observation_domain(data, self.terminology)
            except Unmapped:
                domain = None
            view = {name: value for name, value in data.items()
                    if not name.startswith("value") and name not in _NOT_IN_VIEW}
            view.update(data["component"][number])
            entry = None if domain is None else self._template(view, domain)
            found = None if entry is None else (*entry, COMPILED[entry[0]])
        _keep(self.line_templates, key, found)
        return found

    def visit_of(self, reference: str, domain: str, spec: CompiledSpec) -> Any:
        """The visit values of the encounter ``reference`` points at (None when it does
        not resolve, :data:`DECLINED` when the line needs the general engine)."""
        key = self.visit_keys.get(reference, _MISSING)
        encounter = None
        if key is _MISSING:
            target = self.index.resolve(reference)
            key = None
            if target is not None:
                encounter = target.data
                key = reference if self.visit_reads is None else dumps_kept(
                    [encounter.get(name) for name in self.visit_reads])
            _keep(self.visit_keys, reference, key, self.visit_limit)
        if key is None:
            return None
        found = self.visits.get((domain, key), _MISSING)
        if found is _MISSING:
            if encounter is None:               # read for another domain: resolves
                target = self.index.resolve(reference)
                assert target is not None
                encounter = target.data
            found = spec.visit_values(encounter, MapContext(self.terminology, "Observation"))
            if found is None:
                found = DECLINED
            _keep(self.visits, (domain, key), found, self.visit_limit)
        return found

    def map_line(self, line: bytes, file: str, number: int,
                 issues: list[ValueIssueItem]) -> tuple[str, dict[str, Any]] | None:
        """``map`` of a plain Observation NDJSON line, read without building the whole
        resource; None to leave it to ``map`` (which may still take it)."""
        parts = self.read_line(line)
        if parts is None or parts.__class__ is LineFailure:
            return None
        domain, template, subject, own, rid, visit = parts  # type: ignore[misc]
        row = COMPILED[domain].row_of(template, subject, own, visit)
        self._finish(row, domain, rid, file, number, template.issues, issues)
        return domain, row

    def map(self, data: dict[str, Any], file: str, line: int,
            issues: list[ValueIssueItem]) -> tuple[str, dict[str, Any]] | None:
        """``(domain, row)`` of a plain Observation NDJSON line; None to leave it to the
        general engine. Value issues are appended to ``issues``."""
        if data.get("resourceType") != "Observation" or not _NOT_PLAIN.isdisjoint(data) \
                or data.get("status") in EXCLUDED_STATUS:
            return None
        if element_problem(data) is not None:
            return None
        reference = data.get("subject")
        if not isinstance(reference, dict) or not isinstance(reference.get("reference"), str):
            return None
        subject = self.subject_of(reference["reference"])
        if subject is None:
            return None
        entry = self._template(data)
        if entry is None:
            return None
        domain, template = entry
        spec = COMPILED[domain]
        visit = None
        encounter = data.get("encounter")
        if isinstance(encounter, dict) and encounter.get("reference") is not None:
            visit = self.visit_of(encounter["reference"], domain, spec)
            if visit is DECLINED:
                return None
        row = spec.fill_plain(template, data, subject)
        found: Iterable[ValueIssue] = template.issues
        if row is None:
            ctx = MapContext(self.terminology, "Observation")
            try:
                row = spec.complete(template, data, subject, ctx)
            except Unmapped:
                return None
            found = ctx.issues
        if visit is not None:
            row.update(zip(spec.visit_vars, visit, strict=True))
        rid = data.get("id")
        self._finish(row, domain, str(rid) if rid is not None else "", file, line, found,
                     issues)
        return domain, row

    @staticmethod
    def _finish(row: dict[str, Any], domain: str, rid: str, file: str, line: int,
                found: Iterable[ValueIssue], issues: list[ValueIssueItem]) -> None:
        row["_source"] = ObservationLane.note(domain, rid, file, line, found, issues)
        row["_file"] = file
        row["_location"] = f"line {line}"

    @staticmethod
    def note(domain: str, rid: str, file: str, line: int, found: Iterable[ValueIssue],
             issues: list[ValueIssueItem]) -> str:
        """The report key of the Observation at ``line`` of ``file``; its value issues
        ``found`` added to ``issues`` under that key."""
        key = line_key(rid, file, line)
        for issue in found:
            issues.append(ValueIssueItem(domain, key, issue.var, issue.reason_code,
                                         issue.message, issue.element, issue.system,
                                         issue.code))
        return key


def line_key(rid: str, file: str, line: int) -> str:
    """The report key of the Observation with id ``rid`` on ``line`` of ``file`` (its
    place when it has no id), as ``SourceResource.key`` words it."""
    return f"Observation/{rid}" if rid else f"Observation@{file} [line {line}]"


def _keep(cache: dict[Any, Any], key: Any, value: Any, limit: int = _CACHE_LIMIT) -> None:
    """Store ``value`` in a lane cache (:func:`~fhircdisc.caches.remember`), by default
    bounded at :data:`_CACHE_LIMIT` entries."""
    remember(cache, key, value, limit)
