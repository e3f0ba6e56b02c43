"""A domain spec run with memory: rules that read the same elements are worked out once
per distinct value of those elements.

In a hospital export the elements most rules read repeat endlessly: a few hundred test
codes, a few dozen units, interpretation flags, reference ranges, the subject. Each rule
names the top-level view elements it reads (its *inputs*, from its paths and its
algorithm). Rules with the same inputs form a group; a group's outcome (values,
value issues, or the ``Unmapped`` a rule raised) is cached under the values of its
inputs. Groups whose inputs are different in nearly every resource (the result, the
date) are run directly, as are rules whose inputs cannot be told. The outcome is the
same row, issues and errors as :func:`fhircdisc.mappings.algorithms.map_view`, which
stays the reference (a test compares the two).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from math import isfinite
from typing import Any

from fhircdisc.caches import remember
from fhircdisc.json_text import dumps_kept
from fhircdisc.mappings import paths
from fhircdisc.mappings.algorithms import ALGORITHMS, MapContext, ValueIssue, number_text
from fhircdisc.mappings.dates import DateFormatError, fhir_to_dtc
from fhircdisc.mappings.spec import DomainSpec, Rule, Unmapped

_VALUES = ("valueQuantity", "valueString", "valueInteger", "valueBoolean", "valueDateTime",
           "valueTime", "valueCodeableConcept")
#: what an algorithm reads besides its paths; None: cannot be told (run directly)
_READS: dict[str, tuple[str, ...] | None] = {
    "context": ("_subject",), "hardcode": (), "derived": (), "result_char": _VALUES,
    "result_num": ("valueQuantity", "valueInteger"), "visit_number": ("_encounter",),
    "not_done": None,
}
#: algorithms that read nothing but their paths
_PATH_ONLY = frozenset({"assign", "assign_num", "ct", "ct_decode", "ct_attribute", "ct_multi",
                        "coding_code", "text", "dtc", "flag", "count"})
#: what an algorithm reads of the resolved encounter besides its paths
_ENCOUNTER_READS: dict[str, tuple[str, ...]] = {"visit_number": ("identifier",)}
#: elements that differ in nearly every resource: caching them would only fill memory
_UNIQUE = frozenset(_VALUES) | {"effectiveDateTime", "effectivePeriod", "effectiveInstant",
                                "issued", "id", "identifier",
                                # a Patient's: its birth date, address, names, contacts
                                "birthDate", "address", "name", "telecom", "meta"}
#: resolved context objects: alive for the whole conversion, so known by identity
_IDENTITY = frozenset({"_subject", "_encounter", "_specimen"})
CACHE_LIMIT = 20_000
#: what a *plain* resource (see ``CompiledSpec.complete``) never has
PLAIN_ABSENT = frozenset({"_specimen", "_encounter", "dataAbsentReason", "extension",
                          "component"})


def rule_inputs(rule: Rule) -> tuple[str, ...] | None:
    """The top-level view elements ``rule`` (and its fallback) reads; None if unknown."""
    found: list[str] = []
    for part in (rule, rule.fallback):
        if part is None:
            continue
        heads = [paths.parse(path)[0].name for path in part.paths]
        if part.algorithm in _PATH_ONLY:
            reads: tuple[str, ...] | None = ()
        elif part.algorithm == "unit":
            test_specific = any(":" in option for option in (part.value or "").split(";"))
            reads = ("code",) if test_specific else ()
        else:
            reads = _READS.get(part.algorithm)
        if reads is None:
            return None
        found += heads + list(reads)
    return tuple(sorted(set(found)))


def encounter_reads(rules: list[Rule]) -> tuple[str, ...] | None:
    """The elements of the resolved encounter that ``rules`` (and their fallbacks) read;
    None when one reads it whole or in a way not known here."""
    found: set[str] = set()
    for rule in rules:
        for part in (rule, rule.fallback):
            if part is None:
                continue
            for path in part.paths:
                steps = paths.parse(path)
                if steps[0].name == "_encounter":
                    if len(steps) < 2:
                        return None
                    found.add(steps[1].name)
            reads = () if part.algorithm in _PATH_ONLY else _READS.get(part.algorithm)
            if reads is not None and "_encounter" not in reads:
                continue
            extra = _ENCOUNTER_READS.get(part.algorithm)
            if extra is None:                   # it may read the encounter: how is unknown
                return None
            found.update(extra)
    return tuple(sorted(found))


_QUANTITY_PARTS = ("code", "system", "unit")


def _unit_projection(rule: Rule) -> str | None:
    """The Quantity element a unit rule reads, when it reads only its code, system and unit."""
    if rule.algorithm != "unit" or rule.fallback is not None or len(rule.paths) != 1:
        return None
    steps = paths.parse(rule.paths[0])
    return steps[0].name if len(steps) == 1 and steps[0].key is None else None


def _key_part(name: str, value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float, bool)):
        return (value.__class__, value)   # True, 1 and 1.0 must not share an entry
    if name in _IDENTITY:
        return id(value)
    return dumps_kept(value)


def plain_key(data: dict[str, Any], inputs: tuple[str, ...], units: tuple[str, ...]
              ) -> bytes:
    """A key telling apart the values of ``inputs`` and the code, system and unit of the
    Quantity elements ``units`` of a resource parsed from JSON.

    JSON text keeps apart what the rules tell apart (``1``, ``1.0``, ``true``, ``"1"``);
    the one value it would merge with null, a float NaN, is not JSON.
    """
    values: list[Any] = [data.get(name) for name in inputs]
    for name in units:
        quantity = data.get(name)
        values.append((quantity.get("code"), quantity.get("system"), quantity.get("unit"))
                      if quantity.__class__ is dict else quantity)
    return dumps_kept(values)


@dataclass
class _Outcome:
    values: list[tuple[str, Any]]
    issues: list[ValueIssue]
    error: tuple[int, Unmapped] | None
    #: the identity-keyed objects the outcome was worked out from
    anchors: tuple[Any, ...] = ()


def _run_rules(rules: list[tuple[int, Rule]], view: dict[str, Any], ctx: MapContext
               ) -> _Outcome:
    sub = MapContext(ctx.terminology, ctx.resource_type)
    values: list[tuple[str, Any]] = []
    for index, rule in rules:
        try:
            value = ALGORITHMS[rule.algorithm](view, rule, sub)
            if value is None and rule.fallback is not None:
                value = ALGORITHMS[rule.fallback.algorithm](view, rule.fallback, sub)
        except Unmapped as exc:
            return _Outcome(values, sub.issues, (index, bare_error(exc)))
        values.append((rule.var, value))
    return _Outcome(values, sub.issues, None)


def bare_error(exc: Unmapped) -> Unmapped:
    """``exc`` without its traceback and the exception it came from, to be kept in a cache:
    a traceback holds the frames it passed through and their callers' frames, which hold
    a whole chunk of resources and rows (a worker grew by about 20 MB a chunk when one line in
    ten had an unknown code). Only its fields are read (reason, message, element, code)."""
    exc.__traceback__ = None
    exc.__cause__ = exc.__context__ = None
    return exc


class _Group:
    """Rules run together once per distinct combination of their inputs."""

    def __init__(self, rules: list[tuple[int, Rule]], inputs: set[str], units: set[str],
                 limit: int) -> None:
        self.rules = rules
        self.inputs = tuple(sorted(inputs))
        self.identity = tuple(name for name in self.inputs if name in _IDENTITY)
        self.units = tuple(sorted(units))
        self.limit = limit
        self.cache: dict[tuple[Any, ...], _Outcome] = {}
        self.present = tuple(name for name in self.inputs if name not in PLAIN_ABSENT)

    def _key(self, view: dict[str, Any]) -> tuple[Any, ...]:
        key = [_key_part(name, view.get(name)) for name in self.inputs]
        for name in self.units:
            quantity = view.get(name)
            key.append(tuple(_key_part(part, quantity.get(part)) for part in _QUANTITY_PARTS)
                       if isinstance(quantity, dict) else _key_part(name, quantity))
        return tuple(key)

    def run(self, view: dict[str, Any], ctx: MapContext) -> _Outcome:
        key = self._key(view)
        outcome = self.cache.get(key)
        anchors = tuple(view.get(name) for name in self.identity)
        # an id is only a safe key while its object lives: compare the objects themselves
        if outcome is not None and all(a is b for a, b in zip(outcome.anchors, anchors,
                                                                strict=True)):
            return outcome
        outcome = _run_rules(self.rules, view, ctx)
        outcome.anchors = anchors
        return remember(self.cache, key, outcome, self.limit)


class CompiledSpec:
    """``map_view`` for one spec, with the repeating parts worked out once.

    Rules whose inputs repeat and go together (test code, unit code, reference range,
    interpretation, specimen) run once per distinct combination of those inputs; rules
    reading the encounter form a group of their own, as its visits are independent of the
    test; the rest (the result, the date, the subject's identifiers, constants) run for
    every view.
    """

    def __init__(self, spec: DomainSpec, cache_limit: int = CACHE_LIMIT) -> None:
        self.spec = spec
        self.direct: list[tuple[int, Rule]] = []
        parts: dict[str, tuple[list[tuple[int, Rule]], set[str], set[str]]] = {}
        for index, rule in enumerate(spec.rules):
            reads = rule_inputs(rule)
            unit_of = _unit_projection(rule)
            if unit_of is not None:
                reads = tuple(name for name in reads or () if name != unit_of)
            if reads is None or set(reads) & _UNIQUE or "_subject" in reads:
                self.direct.append((index, rule))
                continue
            name = "_encounter" if "_encounter" in reads else "*"
            rules, inputs, units = parts.setdefault(name, ([], set(), set()))
            rules.append((index, rule))
            inputs.update(reads)
            if unit_of is not None:
                units.add(unit_of)
        groups = {name: _Group(rules, inputs, units, cache_limit)
                  for name, (rules, inputs, units) in parts.items()}
        self.groups = list(groups.values())
        #: the rules that read the resolved encounter (the visit), see :meth:`visit_values`
        self.visit_group = groups.get("_encounter")
        self.visit_vars = tuple(rule.var for _, rule in self.visit_group.rules) \
            if self.visit_group is not None else ()
        self._visit_alone = self.visit_group is None or (
            self.visit_group.inputs == ("_encounter",) and not self.visit_group.units)
        #: the encounter's elements those rules read (None: cannot be told): encounters
        #: equal in them give the same visit values
        self.visit_reads = () if self.visit_group is None \
            else encounter_reads([rule for _, rule in self.visit_group.rules])
        self.order = [rule.var for rule in spec.rules]
        self.rank = {rule.var: index for index, rule in enumerate(spec.rules)}
        self.fill_plan = _fill_plan([rule for _, rule in self.direct])
        plan = self.fill_plan
        #: what :meth:`own_values` works out: the result as text, as a number, and the
        #: one date element when there is exactly one
        self._text = bool(plan and plan.text)
        self._number = bool(plan and plan.number)
        self._result = self._text or self._number
        self._one_date = plan.date_elements[0] \
            if plan is not None and len(plan.date_elements) == 1 else None

    def map(self, view: dict[str, Any], ctx: MapContext) -> dict[str, Any]:
        """The row of ``view``, its value issues added to ``ctx``; ``Unmapped`` as the
        first failing rule in spec order raises it."""
        outcomes = [group.run(view, ctx) for group in self.groups]
        outcomes.append(_run_rules(self.direct, view, ctx))
        row, issues = self._merged(outcomes)
        ctx.issues.extend(issues)
        return row

    def plain_inputs(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """What the grouped rules read of a plain resource: whole elements, and Quantity
        elements of which only the code, system and unit are read."""
        inputs = sorted({name for group in self.groups for name in group.present})
        units = sorted({name for group in self.groups for name in group.units})
        return tuple(inputs), tuple(units)

    def plain_template(self, data: dict[str, Any], ctx: MapContext) -> PlainTemplate:
        """The grouped rules' share of the row of a plain resource: the same for every
        resource with the same :meth:`plain_inputs` values; ``Unmapped`` as ``map`` raises
        it when a grouped rule fails."""
        row, issues = self._merged([_run_rules(group.rules, data, ctx)
                                    for group in self.groups])
        return PlainTemplate(row, tuple(issues))

    def grouped_error(self, data: dict[str, Any], ctx: MapContext) -> Unmapped | None:
        """The error :meth:`plain_template` raises for ``data`` from the groups that do
        not read the encounter: a resource's first error when its encounter gives the
        visit rules their values; None when those groups map (without frames)."""
        try:
            self._merged([_run_rules(group.rules, data, ctx) for group in self.groups
                          if group is not self.visit_group])
        except Unmapped as exc:
            return bare_error(exc)
        return None

    def complete(self, template: PlainTemplate, data: dict[str, Any], subject: Any,
                 ctx: MapContext) -> dict[str, Any]:
        """``map`` of a *plain* resource (no ``dataAbsentReason``, ``extension``,
        ``component``, resolved encounter or specimen) plus its subject, from its
        ``template``: the resource's own rules run by their algorithms; the value issues
        added to ``ctx``, ``Unmapped`` as ``map`` raises it."""
        outcome = _run_rules(self.direct, {**data, "_subject": subject}, ctx)
        if outcome.error is not None:
            raise outcome.error[1]
        issues = [*template.issues, *outcome.issues]
        issues.sort(key=lambda issue: self.rank.get(issue.var, 0))
        ctx.issues.extend(issues)
        row = template.row.copy()
        row.update(outcome.values)
        return row

    def fill_plain(self, template: PlainTemplate, data: dict[str, Any], subject: Any
                   ) -> dict[str, Any] | None:
        """:meth:`complete`'s row, without running the algorithms, when each of the
        resource's own values is simple (see :class:`_FillPlan`); None otherwise."""
        quantity = data.get("valueQuantity")
        value, comparator = (quantity.get("value"), quantity.get("comparator")) \
            if quantity.__class__ is dict else (None, None)
        own = self.own_values(value, comparator, data.get("status"), data.get)
        return None if own is None else self.row_of(template, subject, own)

    def row_of(self, template: PlainTemplate, subject: Any, own: tuple[Any, ...],
               visit: tuple[Any, ...] | None = None) -> dict[str, Any]:
        """The row of a template, the subject and the :meth:`own_values` of a resource, and
        the :meth:`visit_values` of its encounter when it has one that resolves."""
        plan = self.fill_plan
        assert plan is not None
        row = template.row.copy()
        for var, attr in plan.context:
            row[var] = getattr(subject, attr, None) if subject is not None else None
        for var, index in plan.own:
            row[var] = own[index]
        if visit is not None:
            row.update(zip(self.visit_vars, visit, strict=True))
        return row

    def result_text(self, result: dict[str, Any], ctx: MapContext) -> tuple[Any] | None:
        """What the result-as-text rules give for a result that is not a quantity (the
        resource's ``value[x]`` alone, as ``result``), as a one-item tuple; None when they
        disagree, give a value issue or fail, which the general engine then reports."""
        plan = self.fill_plan
        if plan is None:
            return None
        rules = [(index, rule) for index, rule in self.direct if rule.var in plan.text]
        outcome = _run_rules(rules, result, ctx)
        found = {value for _, value in outcome.values}
        if outcome.error is not None or outcome.issues or len(found) > 1:
            return None
        return (found.pop() if found else None,)

    def visit_values(self, encounter: dict[str, Any], ctx: MapContext
                     ) -> tuple[Any, ...] | None:
        """What the rules reading the encounter give a plain resource whose encounter
        resolves to ``encounter``, in :attr:`visit_vars` order (its template holds what
        they give without one); None when they give a value issue or fail, which the
        general engine then reports."""
        if not self._visit_alone:
            return None                     # they read more than the encounter
        if self.visit_group is None:
            return ()
        outcome = _run_rules(self.visit_group.rules, {"_encounter": encounter}, ctx)
        if outcome.error is not None or outcome.issues:
            return None
        return tuple(value for _, value in outcome.values)

    def own_values(self, value: Any, comparator: Any, status: Any,
                   get: Callable[[str], Any]) -> tuple[Any, ...] | None:
        """The values a plain resource puts over its template besides the subject's, in
        the order :attr:`_FillPlan.own` places them (the not-done flag, each date, the
        result as text and as a number), from its parts: the ``valueQuantity`` value and
        comparator (None without a quantity), the status, and ``get`` giving an element
        by name (the dates, see ``date_elements``); None when one of them needs the rule's
        algorithm."""
        plan = self.fill_plan
        if plan is None:
            return None
        text = number = None
        if self._result:
            if value is None:
                return None
            if value.__class__ is float and comparator is None:
                # most results: a float, its own number (results repeat: each float's
                # text is made once)
                if self._text:
                    text = number_text(value)
                if self._number:
                    number = value if isfinite(value) else None
            else:
                if self._text:
                    text = (comparator or "") + number_text(value)
                if self._number:
                    if comparator or value.__class__ not in (int, float):
                        return None
                    number = float(value)
                    if not isfinite(number):
                        number = None
        return self._own(status, get, text, number)

    def batch_date(self) -> str | None:
        """The date element when :meth:`own_values` gives a not-done flag, that one date,
        the result as text and as a number (what ``observation_batch`` reads for a batch
        of lines); None for any other plan."""
        return self._one_date if self._text and self._number else None

    def own_values_of_text(self, text: str | None, status: Any, get: Callable[[str], Any]
                           ) -> tuple[Any, ...] | None:
        """:meth:`own_values` of a resource whose result is not a quantity, but one the
        result rules read as ``text`` and as no number (a string, a coded value)."""
        plan = self.fill_plan
        if plan is None:
            return None
        return self._own(status, get, text if plan.text else None, None)

    def _own(self, status: Any, get: Callable[[str], Any], text: Any, number: Any
             ) -> tuple[Any, ...] | None:
        flag = "NOT DONE" if status == "cancelled" else None
        element = self._one_date
        try:
            if element is not None:                  # most plans: the effective date
                date = get(element)
                if date.__class__ is not str or not date:
                    return None
                return (flag, fhir_to_dtc(date), text, number)
            assert self.fill_plan is not None
            dates = []
            for element in self.fill_plan.date_elements:
                date = get(element)
                if date.__class__ is not str or not date:
                    return None
                dates.append(fhir_to_dtc(date))
        except DateFormatError:
            return None
        return (flag, *dates, text, number)

    @property
    def date_elements(self) -> tuple[str, ...]:
        """The elements :meth:`own_values` reads through ``get``."""
        return self.fill_plan.date_elements if self.fill_plan else ()

    def _merged(self, outcomes: list[_Outcome]) -> tuple[dict[str, Any], list[ValueIssue]]:
        """The row the outcomes make (every variable, in spec order; those no outcome
        gives None) and their value issues in spec order; the first error in spec order
        raises, as ``map_view`` would."""
        errors = [o.error for o in outcomes if o.error is not None]
        if errors:
            # raised as a copy: the cached one would take on this call's traceback, and
            # with it every frame up the stack and what they hold
            first = min(errors, key=lambda e: e[0])[1]
            raise Unmapped(first.reason_code, first.message, first.element, first.system,
                           first.code)
        issues = sorted((issue for o in outcomes for issue in o.issues),
                        key=lambda issue: self.rank.get(issue.var, 0))
        row: dict[str, Any] = dict.fromkeys(self.order)
        for outcome in outcomes:
            row.update(outcome.values)
        return row, issues


@dataclass(frozen=True)
class PlainTemplate:
    """The grouped rules' outcome for plain resources sharing their inputs: every variable
    in spec order (those of the resource's own rules still None), and the value issues."""

    row: dict[str, Any]
    issues: tuple[ValueIssue, ...]


@dataclass(frozen=True)
class _FillPlan:
    """The direct rules by what ``own_values`` does for them: variables given by an attribute
    of the subject, by the status, by a date element, by the result as text and as a
    number."""

    context: tuple[tuple[str, str], ...]
    not_done: tuple[str, ...]
    dates: tuple[tuple[str, str], ...]
    text: tuple[str, ...]
    number: tuple[str, ...]

    @cached_property
    def date_elements(self) -> tuple[str, ...]:
        """The element of each date variable, in :attr:`dates` order."""
        return tuple(element for _, element in self.dates)

    @cached_property
    def own(self) -> tuple[tuple[str, int], ...]:
        """Each variable set from the resource itself, with the place of its value in
        :meth:`CompiledSpec.own_values`."""
        last = len(self.dates) + 1
        return (*((var, 0) for var in self.not_done),
                *((var, place) for place, (var, _) in enumerate(self.dates, 1)),
                *((var, last) for var in self.text),
                *((var, last + 1) for var in self.number))


def _fill_plan(rules: list[Rule]) -> _FillPlan | None:
    """The plan for ``rules``, each worked out inline as its algorithm would on a plain
    resource (``own_values`` declines values that need the algorithm: a missing or
    non-numeric result, a comparator on a number, a missing or invalid date); None when
    one of the rules has no inline form."""
    parts: dict[str, list[Any]] = {"context": [], "not_done": [], "dtc": [],
                                   "result_char": [], "result_num": []}
    for rule in rules:
        if rule.fallback is not None or rule.algorithm not in parts:
            return None
        if rule.algorithm == "dtc":
            first = next((path for path in rule.paths if not path.startswith("_specimen.")),
                         None)
            if first is None or "." in first:
                return None
            parts["dtc"].append((rule.var, first))
        elif rule.algorithm == "context":
            parts["context"].append((rule.var, rule.value or ""))
        else:
            parts[rule.algorithm].append(rule.var)
    return _FillPlan(tuple(parts["context"]), tuple(parts["not_done"]), tuple(parts["dtc"]),
                     tuple(parts["result_char"]), tuple(parts["result_num"]))


def compile_specs(specs: dict[str, DomainSpec], domains: tuple[str, ...]
                  ) -> dict[str, CompiledSpec]:
    """Compiled specs for ``domains`` of ``specs``."""
    return {domain: CompiledSpec(specs[domain]) for domain in domains}
