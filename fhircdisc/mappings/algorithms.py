"""The closed vocabulary of mapping algorithms that domain specs choose from.

Each algorithm reads one SDTM value from a *view* of a resource (the resource's
JSON plus resolved context under keys that start with ``_``: ``_subject``,
``_encounter``, ``_medication``). A spec naming an algorithm that is not
registered fails when the spec is loaded.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fhircdisc.caches import remember
from fhircdisc.mappings import paths
from fhircdisc.mappings.dates import DateFormatError, fhir_to_dtc
from fhircdisc.mappings.spec import DomainSpec, Rule, Unmapped
from fhircdisc.mappings.terminology import Term, Terminology, normalize_system


@dataclass
class ValueIssue:
    """A value that could not be mapped although the row was kept."""

    var: str
    reason_code: str
    message: str
    element: str | None = None
    system: str | None = None
    code: str | None = None


@dataclass
class MapContext:
    """What algorithms may consult while mapping one view."""

    terminology: Terminology
    resource_type: str
    issues: list[ValueIssue] = field(default_factory=list)
    _lookups: dict[tuple[str, tuple[str, ...]], Term | None] = field(default_factory=dict)

    def lookup(self, view: dict[str, Any], rule: Rule) -> Term | None:
        """Look up the coded value the rule points at (cached per view and table)."""
        assert rule.table is not None
        key = (rule.table, rule.paths)
        if key not in self._lookups:
            self._lookups[key] = _lookup(self, view, rule)
        return self._lookups[key]


Algorithm = Callable[[dict[str, Any], Rule, MapContext], Any]
ALGORITHMS: dict[str, Algorithm] = {}


def algorithm(name: str) -> Callable[[Algorithm], Algorithm]:
    def register(func: Algorithm) -> Algorithm:
        ALGORITHMS[name] = func
        return func
    return register


def check_spec(spec: DomainSpec) -> DomainSpec:
    """Fail at load time on an unknown algorithm or a rule that lacks what it needs."""
    for rule in spec.rules:
        if rule.algorithm not in ALGORITHMS:
            raise ValueError(f"{spec.domain}.{rule.var}: unknown algorithm {rule.algorithm!r}")
        if rule.algorithm in {"ct", "ct_decode", "ct_attribute", "unit"} and not rule.table:
            raise ValueError(f"{spec.domain}.{rule.var}: {rule.algorithm} needs a table")
        for part in (rule, rule.fallback):
            for path in part.paths if part else ():
                paths.parse(path)
        if rule.fallback is not None and rule.fallback.algorithm not in ALGORITHMS:
            raise ValueError(f"{spec.domain}.{rule.var}: unknown fallback algorithm")
    return spec


def _element(ctx: MapContext, path: str | None) -> str | None:
    return f"{ctx.resource_type}.{path}" if path else None


def _codings(node: Any) -> list[dict[str, Any]]:
    """The codings of a CodeableConcept, a Coding, or a list of either."""
    if isinstance(node, list):
        return [c for item in node for c in _codings(item)]
    if not isinstance(node, dict):
        return []
    if "coding" in node:
        coding = node["coding"]             # an array; of another shape, no codings
        return [c for c in coding if isinstance(c, dict)] if isinstance(coding, list) else []
    if "concept" in node:  # R5 CodeableReference
        return _codings(node["concept"])
    if "code" in node:
        return [node]
    return []


def _lookup(ctx: MapContext, view: dict[str, Any], rule: Rule) -> Term | None:
    assert rule.table is not None
    for path in rule.paths:
        node = paths.get_all(view, path)
        if not node:
            continue
        if all(isinstance(n, (str, int, float, bool)) for n in node):
            candidates = [{"system": rule.system, "code": str(n)} for n in node]
        else:
            candidates = _codings(node)
        for coding in candidates:
            term = ctx.terminology.lookup(rule.table, coding.get("system") or rule.system,
                                          coding.get("code"))
            if term is not None:
                return term
        if candidates:
            first = candidates[0]
            first_system = normalize_system(first.get("system") or rule.system)
            raise Unmapped("unknown-code",
                           f"{rule.table} has no row for code {first.get('code')!r} of system "
                           f"{first_system or '(none)'}",
                           _element(ctx, path), first_system, str(first.get("code")))
    return None


def _require(rule: Rule, ctx: MapContext, what: str) -> None:
    """A required rule found nothing: the resource cannot become a row."""
    if rule.required:
        raise Unmapped("missing-element", f"no {what} at {' or '.join(rule.paths)}",
                       _element(ctx, rule.paths[0] if rule.paths else None))


def _soft(rule: Rule, ctx: MapContext, exc: Unmapped) -> None:
    if rule.required:
        raise exc
    ctx.issues.append(ValueIssue(rule.var, exc.reason_code, exc.message, exc.element, exc.system,
                                 exc.code))


@algorithm("assign")
def assign(view: dict[str, Any], rule: Rule, ctx: MapContext) -> str | None:
    """Copy the first value found as text."""
    _, value = paths.first(view, rule.paths)
    if value is None:
        _require(rule, ctx, "value")
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip() if not isinstance(value, (dict, list)) else None


@algorithm("assign_num")
def assign_num(view: dict[str, Any], rule: Rule, ctx: MapContext) -> float | None:
    """Copy the first value found as a number."""
    path, value = paths.first(view, rule.paths)
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        _soft(rule, ctx, Unmapped("not-a-number", f"{value!r} is not a number",
                                  _element(ctx, path)))
        return None
    return number if math.isfinite(number) else None


@algorithm("hardcode")
def hardcode(view: dict[str, Any], rule: Rule, ctx: MapContext) -> str | None:
    """A constant from the spec."""
    return rule.value


@algorithm("ct")
def ct(view: dict[str, Any], rule: Rule, ctx: MapContext) -> str | None:
    """A FHIR code translated to its CDISC submission value through a terminology table."""
    try:
        term = ctx.lookup(view, rule)
    except Unmapped as exc:
        _soft(rule, ctx, exc)
        return None
    if term is None:
        _require(rule, ctx, "coded value")
    return term.submission_value if term else None


@algorithm("ct_decode")
def ct_decode(view: dict[str, Any], rule: Rule, ctx: MapContext) -> str | None:
    """The CDISC decode (e.g. --TEST) of the same lookup another rule made."""
    try:
        term = ctx.lookup(view, rule)
    except Unmapped:
        return None
    return (term.decode or term.display) if term else None


@algorithm("ct_attribute")
def ct_attribute(view: dict[str, Any], rule: Rule, ctx: MapContext) -> str | None:
    """An attribute (``rule.value``) of a terminology row, e.g. the default LBSPEC of a test."""
    try:
        term = ctx.lookup(view, rule)
    except Unmapped:
        return None
    return term.attributes.get(rule.value or "") or None if term else None


@algorithm("ct_multi")
def ct_multi(view: dict[str, Any], rule: Rule, ctx: MapContext) -> str | None:
    """Like ``ct`` over a repeating element; several distinct values give ``MULTIPLE``."""
    assert rule.table is not None
    values: list[str] = []
    for path in rule.paths:
        for coding in _codings(paths.get_all(view, path)):
            term = ctx.terminology.lookup(rule.table, coding.get("system") or rule.system,
                                          coding.get("code"))
            if term is None:
                _soft(rule, ctx, Unmapped(
                    "unknown-code", f"{rule.table} has no row for code {coding.get('code')!r} of "
                    f"system {coding.get('system')}", _element(ctx, path), coding.get("system"),
                    coding.get("code")))
            elif term.submission_value not in values:
                values.append(term.submission_value)
    if not values:
        return None
    return values[0] if len(values) == 1 else "MULTIPLE"


@algorithm("coding_code")
def coding_code(view: dict[str, Any], rule: Rule, ctx: MapContext) -> str | None:
    """The bare code at a path (e.g. the LOINC code for --LOINC)."""
    _, value = paths.first(view, rule.paths)
    return str(value) if value is not None else None


@algorithm("text")
def text(view: dict[str, Any], rule: Rule, ctx: MapContext) -> str | None:
    """A CodeableConcept as text: its ``text``, else the first coding's display, else code."""
    for path in rule.paths:
        node = paths.get(view, path)
        if node is None:
            continue
        if isinstance(node, str):
            return node.strip()
        if isinstance(node, dict):
            concept = node.get("concept")       # an R5 CodeableReference
            if isinstance(concept, dict):
                node = concept
            if node.get("text"):
                return str(node["text"]).strip()
            for coding in _codings(node):
                if coding.get("display") or coding.get("code"):
                    return str(coding.get("display") or coding.get("code")).strip()
    _require(rule, ctx, "value")
    return None


@algorithm("dtc")
def dtc(view: dict[str, Any], rule: Rule, ctx: MapContext) -> str | None:
    """A FHIR date/dateTime/instant as an SDTM ISO 8601 date, precision kept, offset dropped."""
    path, value = paths.first(view, rule.paths)
    if value is None:
        _require(rule, ctx, "date")
        return None
    try:
        return fhir_to_dtc(value)
    except DateFormatError as exc:
        raise Unmapped("invalid-date", str(exc), _element(ctx, path)) from exc


def _test_specific_unit(view: dict[str, Any], options: set[str], code: Any, ctx: MapContext
                        ) -> str | None:
    """The unit a test row fixes for its usual UCUM unit (``/min`` is ``beats/min`` for HR).

    Enabled by an option ``TABLE:ATTRIBUTE`` (e.g. ``VSTEST:VSORRESU``) on the rule.
    """
    for option in options:
        if ":" not in option:
            continue
        table, attribute = option.split(":", 1)
        try:
            test = ctx.lookup(view, Rule(attribute, "ct", ("code",), table=table))
        except Unmapped:
            return None
        if test is not None and test.attributes.get("unit") == code and \
                test.attributes.get(attribute):
            return test.attributes[attribute]
    return None


@algorithm("unit")
def unit(view: dict[str, Any], rule: Rule, ctx: MapContext) -> str | None:
    """A Quantity's unit as a CDISC UNIT: by its UCUM code, else its text as written."""
    for path in rule.paths:
        quantity = paths.get(view, path)
        if not isinstance(quantity, dict):
            continue
        code, system = quantity.get("code"), quantity.get("system")
        assert rule.table is not None
        options = set((rule.value or "").split(";"))
        specific = _test_specific_unit(view, options, code, ctx)
        if specific is not None:
            return specific
        term = ctx.terminology.lookup(rule.table, system or "http://unitsofmeasure.org", code) \
            if code else None
        if term is not None:
            return term.submission_value
        if "strict" in options:
            return None
        written = quantity.get("unit") or code
        if written:
            ctx.issues.append(ValueIssue(rule.var, "unknown-unit",
                                         f"unit {code or written!r} has no CDISC UNIT row; "
                                         "kept as written", _element(ctx, path), system, code))
            return str(written)
    return None


def number_text(value: Any) -> str:
    """A result number as the result-as-text rules write it (a whole float without its
    ``.0``)."""
    if value.__class__ is float:         # results repeat: each float's text made once
        text = _FLOAT_TEXTS.get(value)
        if text is None:
            text = remember(_FLOAT_TEXTS, value, _float_text(value), _FLOAT_TEXTS_LIMIT)
        return text
    if isinstance(value, float):
        return _float_text(value)
    return str(value)


def number_texts(values: list[float]) -> list[str]:
    """:func:`number_text` of each of ``values`` (floats), looked up together."""
    texts = list(map(_FLOAT_TEXTS.get, values))
    if None in texts:
        return [number_text(value) if text is None else text
                for value, text in zip(values, texts, strict=True)]
    return texts  # type: ignore[return-value]


def _float_text(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else str(value)


#: float -> its result text (0.0 and -0.0 share an entry, and a text: "0")
_FLOAT_TEXTS: dict[float, str] = {}
_FLOAT_TEXTS_LIMIT = 20_000


@algorithm("result_char")
def result_char(view: dict[str, Any], rule: Rule, ctx: MapContext) -> str | None:
    """An Observation result as text: quantity (with comparator), string, code, boolean."""
    quantity = view.get("valueQuantity")
    if isinstance(quantity, dict) and quantity.get("value") is not None:
        return (quantity.get("comparator") or "") + number_text(quantity["value"])
    for name in ("valueString", "valueInteger", "valueBoolean", "valueDateTime", "valueTime"):
        if view.get(name) is not None:
            value = view[name]
            if isinstance(value, bool):
                return "Y" if value else "N"
            return number_text(value)
    concept = view.get("valueCodeableConcept")
    if isinstance(concept, dict):
        return text({"v": concept}, Rule(rule.var, "text", ("v",)), ctx)
    return None


@algorithm("result_num")
def result_num(view: dict[str, Any], rule: Rule, ctx: MapContext) -> float | None:
    """An Observation result as a number, when it is one (no comparator)."""
    quantity = view.get("valueQuantity")
    if isinstance(quantity, dict) and quantity.get("value") is not None \
            and not quantity.get("comparator"):
        try:
            number = float(quantity["value"])
        except (TypeError, ValueError):
            return None
        return number if math.isfinite(number) else None
    if isinstance(view.get("valueInteger"), int) and not isinstance(view["valueInteger"], bool):
        return float(view["valueInteger"])
    return None


@algorithm("not_done")
def not_done(view: dict[str, Any], rule: Rule, ctx: MapContext) -> str | None:
    """``NOT DONE`` for a cancelled result or one that carries a data-absent reason."""
    has_value = any(key.startswith("value") and view.get(key) is not None for key in view)
    if view.get("status") == "cancelled" or (view.get("dataAbsentReason") and not has_value):
        return "NOT DONE"
    return None


@algorithm("visit_number")
def visit_number(view: dict[str, Any], rule: Rule, ctx: MapContext) -> float | None:
    """A visit number from a numeric identifier of the resolved Encounter."""
    for value in paths.get_all(view, "_encounter.identifier.value"):
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            return number
    return None


@algorithm("flag")
def flag(view: dict[str, Any], rule: Rule, ctx: MapContext) -> str | None:
    """``Y`` when any path holds a true value or a date; else nothing."""
    for path in rule.paths:
        value = paths.get(view, path)
        if value is True or (isinstance(value, str) and value):
            return "Y"
    return None


@algorithm("count")
def count(view: dict[str, Any], rule: Rule, ctx: MapContext) -> str | None:
    """The number of items at the first path that has any (e.g. planned arms)."""
    for path in rule.paths:
        items = paths.get_all(view, path)
        if items:
            return str(len(items))
    return None


@algorithm("derived")
def derived(view: dict[str, Any], rule: Rule, ctx: MapContext) -> None:
    """Filled after mapping by a study-level derivation (``mappings/derivations.py``)."""
    return None


@algorithm("context")
def context(view: dict[str, Any], rule: Rule, ctx: MapContext) -> Any:
    """A value of the enrolled subject (``rule.value`` names the attribute)."""
    subject = view.get("_subject")
    return getattr(subject, rule.value or "", None) if subject is not None else None


def map_view(spec: DomainSpec, view: dict[str, Any], ctx: MapContext,
             carried: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run every rule of ``spec`` on one view; ``Unmapped`` for a resource that cannot map.

    ``carried`` values (the view's ``sdtm-variable`` extensions) take the place of their
    rules: the source said what the variable is.
    """
    row: dict[str, Any] = {}
    for rule in spec.rules:
        if carried and rule.var in carried:
            row[rule.var] = carried[rule.var]
            continue
        value = ALGORITHMS[rule.algorithm](view, rule, ctx)
        if value is None and rule.fallback is not None:
            value = ALGORITHMS[rule.fallback.algorithm](view, rule.fallback, ctx)
        row[rule.var] = value
    return row
