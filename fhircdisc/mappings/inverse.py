"""The mapping algorithms read backwards: SDTM value -> FHIR element (SDTM -> FHIR).

Each domain spec rule is run in reverse with the inverse of its algorithm, writing at
the rule's write path (``Rule.write_path``). Algorithms that derive a value (``derived``,
``ct_decode`` without a write path, ``ct_attribute``, ``count``, ``result_num``) write
nothing: whatever the forward mapping would not reproduce is carried by the
``sdtm-variable`` extension (``converters/sdtm_to_fhir.py``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fhircdisc.mappings import paths
from fhircdisc.mappings.dates import DateFormatError, dtc_to_fhir
from fhircdisc.mappings.spec import DomainSpec, Rule
from fhircdisc.mappings.terminology import Term, Terminology
from fhircdisc.schemas.ct import NCIT

UCUM = "http://unitsofmeasure.org"
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_COMPARATOR = re.compile(r"^(<=|>=|<|>)\s*(.+)$")


@dataclass
class WriteContext:
    terminology: Terminology
    version: str = "R4"


Inverse = Callable[[dict[str, Any], Rule, Any, dict[str, Any], WriteContext], None]
INVERSES: dict[str, Inverse] = {}


def inverse(*names: str) -> Callable[[Inverse], Inverse]:
    def register(func: Inverse) -> Inverse:
        for name in names:
            INVERSES[name] = func
        return func
    return register


def missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


def number(text: Any) -> float | None:
    """A finite number from an SDTM value (numbers, or text that is exactly a number)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text) if math.isfinite(text) else None
    if isinstance(text, str) and _NUMBER.match(text.strip()):
        value = float(text)
        return value if math.isfinite(value) else None
    return None


def coding(term: Term) -> list[dict[str, str]]:
    """The codings of a term: its FHIR code and, when it has one, its CDISC C-code."""
    out = [{"system": term.system, "code": term.code,
            **({"display": term.display} if term.display else {})}]
    if term.system != NCIT and term.nci_code:
        out.append({"system": NCIT, "code": term.nci_code, "display": term.submission_value})
    return out


@inverse("assign")
def _assign(resource: dict[str, Any], rule: Rule, value: Any, row: dict[str, Any],
            ctx: WriteContext) -> None:
    path = rule.write_path(ctx.version)
    if path is None or (path.startswith("_") and not path.startswith("_medication")):
        return
    if path.endswith(".value"):
        parsed = number(value)
        if parsed is None:
            return
        paths.put(resource, path, parsed)
    else:
        paths.put(resource, path, value if isinstance(value, str) else str(value))


@inverse("assign_num")
def _assign_num(resource: dict[str, Any], rule: Rule, value: Any, row: dict[str, Any],
                ctx: WriteContext) -> None:
    path = rule.write_path(ctx.version)
    parsed = number(value)
    if path is not None and parsed is not None:
        paths.put(resource, path, parsed)


@inverse("ct", "ct_multi")
def _ct(resource: dict[str, Any], rule: Rule, value: Any, row: dict[str, Any],
        ctx: WriteContext) -> None:
    path = rule.write_path(ctx.version)
    if path is None or rule.table is None or value == "MULTIPLE":
        return
    term = ctx.terminology.reverse(rule.table, value)
    if term is None:
        return
    if rule.system is not None:                       # a bare code (e.g. Patient.gender)
        if term.system == rule.system:
            paths.put(resource, path, term.code)
        return
    if path.endswith("Coding"):                       # e.g. an extension's valueCoding
        paths.put(resource, path, coding(term)[0])
        return
    paths.put(resource, path, {"coding": coding(term)})


@inverse("ct_decode", "text")
def _text(resource: dict[str, Any], rule: Rule, value: Any, row: dict[str, Any],
          ctx: WriteContext) -> None:
    if rule.write is None and rule.write_r5 is None:
        return
    path = rule.write_path(ctx.version)
    if path is not None:
        paths.put(resource, path, str(value))


@inverse("coding_code")
def _coding_code(resource: dict[str, Any], rule: Rule, value: Any, row: dict[str, Any],
                 ctx: WriteContext) -> None:
    path = rule.write_path(ctx.version)
    if path is not None:
        paths.put(resource, path, str(value))


@inverse("dtc")
def _dtc(resource: dict[str, Any], rule: Rule, value: Any, row: dict[str, Any],
         ctx: WriteContext) -> None:
    path = rule.write_path(ctx.version)
    if path is None:
        return
    try:
        paths.put(resource, path, dtc_to_fhir(str(value)))
    except DateFormatError:
        return                                        # carried by the extension


@inverse("unit")
def _unit(resource: dict[str, Any], rule: Rule, value: Any, row: dict[str, Any],
          ctx: WriteContext) -> None:
    path = rule.write_path(ctx.version)
    if path is None or rule.table is None:
        return
    if path == "valueQuantity" and "valueQuantity" not in resource:
        return                                        # the result is not a quantity
    paths.put(resource, f"{path}.unit", str(value))
    for option in (rule.value or "").split(";"):
        if ":" not in option:
            continue
        table, attribute = option.split(":", 1)
        test = ctx.terminology.reverse(table, row.get(f"{rule.var[:2]}TESTCD"))
        if test is not None and test.attributes.get(attribute) == value and \
                test.attributes.get("unit"):
            # the test's own unit (heart rate /min as beats/min): its usual UCUM code
            paths.put(resource, f"{path}.system", UCUM)
            paths.put(resource, f"{path}.code", test.attributes["unit"])
            return
    term = ctx.terminology.reverse(rule.table, value)
    if term is not None and term.system == UCUM:
        paths.put(resource, f"{path}.system", UCUM)
        paths.put(resource, f"{path}.code", term.code)


@inverse("result_char")
def _result(resource: dict[str, Any], rule: Rule, value: Any, row: dict[str, Any],
            ctx: WriteContext) -> None:
    if rule.write != "value":
        return
    text = str(value).strip()
    comparator = _COMPARATOR.match(text)
    parsed = number(comparator.group(2) if comparator else text)
    if parsed is not None:
        quantity: dict[str, Any] = {"value": parsed}
        if comparator:
            quantity["comparator"] = comparator.group(1)
        resource["valueQuantity"] = quantity
    else:
        resource["valueString"] = str(value)


@inverse("not_done")
def _not_done(resource: dict[str, Any], rule: Rule, value: Any, row: dict[str, Any],
              ctx: WriteContext) -> None:
    if value == "NOT DONE":
        resource["status"] = "cancelled"
        paths.put(resource, "dataAbsentReason.coding", [{"system": DATA_ABSENT,
                                                         "code": "not-performed"}])


@inverse("flag")
def _flag(resource: dict[str, Any], rule: Rule, value: Any, row: dict[str, Any],
          ctx: WriteContext) -> None:
    path = rule.write_path(ctx.version)
    if value == "Y" and path is not None and not any(
            k.startswith(path.rsplit("Boolean", 1)[0]) for k in resource):
        paths.put(resource, path, True)


@inverse("hardcode", "derived", "context", "ct_attribute", "count", "result_num",
         "visit_number")
def _nothing(resource: dict[str, Any], rule: Rule, value: Any, row: dict[str, Any],
             ctx: WriteContext) -> None:
    return None


def write_row(spec: DomainSpec, row: dict[str, Any], resource: dict[str, Any],
              ctx: WriteContext) -> dict[str, Any]:
    """Write every mapped variable of an SDTM row into ``resource`` (in spec order)."""
    for rule in spec.rules:
        value = row.get(rule.var)
        if missing(value):
            continue
        INVERSES[rule.algorithm](resource, rule, value, row, ctx)
    return resource


def check_inverses() -> None:
    """Every registered algorithm has an inverse (a spec cannot name one that has none)."""
    from fhircdisc.mappings.algorithms import ALGORITHMS

    absent = set(ALGORITHMS) - set(INVERSES)
    if absent:
        raise ValueError(f"algorithms without an inverse: {sorted(absent)}")


check_inverses()
