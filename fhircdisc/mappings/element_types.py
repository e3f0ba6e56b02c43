"""The JSON shapes of the FHIR elements the mappings read, checked before mapping.

Full structural validation with the FHIR models costs about 150 µs per Observation;
the mappings read a dozen elements, so those are checked here, as FHIR JSON defines
them (a repeating element is an array, a decimal a JSON number, a CodeableConcept an
object whose ``coding`` is an array of Codings ...), at a few microseconds per resource.
A failure names the element by its path, with what was expected and what was found,
and the resource is reported unmapped (``invalid-element``) rather than mapped from a
value of the wrong kind. ``--strict`` adds the full validation.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec

Shape = str | list[str]
"""A type name; in a list: an array of that type."""

PRIMITIVES: dict[str, tuple[type, ...]] = {
    "string": (str,), "code": (str,), "uri": (str,), "dateTime": (str,), "date": (str,),
    "decimal": (int, float), "integer": (int,), "boolean": (bool,),
}

COMPLEX: dict[str, dict[str, Shape]] = {
    "Coding": {"system": "uri", "code": "code", "display": "string"},
    "CodeableConcept": {"coding": ["Coding"], "text": "string"},
    "Quantity": {"value": "decimal", "comparator": "code", "unit": "string", "system": "uri",
                 "code": "code"},
    "Reference": {"reference": "string", "display": "string"},
    "Period": {"start": "dateTime", "end": "dateTime"},
    "Range": {"low": "Quantity", "high": "Quantity"},
    "ReferenceRange": {"low": "Quantity", "high": "Quantity", "text": "string"},
    "Extension": {"url": "uri"},
    "Identifier": {"system": "uri", "value": "string"},
    "Component": {"code": "CodeableConcept", "valueQuantity": "Quantity",
                  "valueString": "string", "valueInteger": "integer", "valueBoolean": "boolean",
                  "valueCodeableConcept": "CodeableConcept", "dataAbsentReason":
                  "CodeableConcept", "interpretation": ["CodeableConcept"],
                  "referenceRange": ["ReferenceRange"], "extension": ["Extension"]},
}

RESOURCES: dict[str, dict[str, Shape]] = {
    "Observation": {
        "status": "code", "category": ["CodeableConcept"], "code": "CodeableConcept",
        "subject": "Reference", "encounter": "Reference", "specimen": "Reference",
        "effectiveDateTime": "dateTime", "effectivePeriod": "Period",
        "effectiveInstant": "dateTime", "valueQuantity": "Quantity", "valueString": "string",
        "valueInteger": "integer", "valueBoolean": "boolean",
        "valueCodeableConcept": "CodeableConcept", "valueDateTime": "dateTime",
        "valueTime": "string", "dataAbsentReason": "CodeableConcept",
        "interpretation": ["CodeableConcept"], "referenceRange": ["ReferenceRange"],
        "method": "CodeableConcept", "bodySite": "CodeableConcept",
        "component": ["Component"], "extension": ["Extension"], "hasMember": ["Reference"],
    },
    "Patient": {"gender": "code", "birthDate": "date", "deceasedBoolean": "boolean",
                "deceasedDateTime": "dateTime", "extension": ["Extension"]},
    # the other mapped resources: the carried SDTM variables are read from their extensions
    "MedicationAdministration": {"extension": ["Extension"]},
    "AdverseEvent": {"extension": ["Extension"]},
    "ResearchStudy": {"extension": ["Extension"], "identifier": ["Identifier"]},
}

_ARTICLE = {"array": "an array", "object": "an object", "string": "a string",
            "number": "a number", "boolean": "a boolean", "null": "null", "integer": "an integer"}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _expected(type_name: str) -> str:
    if type_name in ("decimal",):
        return "number"
    if type_name == "integer":
        return "integer"
    if type_name == "boolean":
        return "boolean"
    return "string" if type_name in PRIMITIVES else "object"


def _describe(value: Any) -> str:
    found = _ARTICLE[_kind(value)]
    if isinstance(value, (str, int, float, bool)) and value is not None:
        text = repr(value)
        found += f" ({text[:40] + '...' if len(text) > 40 else text})"
    return found


def _check(value: Any, shape: Shape, path: str) -> tuple[str, str] | None:
    if value is None:        # JSON null: read as absent, as the mappings do
        return None
    if isinstance(shape, list):
        if not isinstance(value, list):
            return path, f"expected an array, found {_describe(value)}"
        for number, item in enumerate(value):
            if item is None:
                return f"{path}[{number}]", "expected an item, found null"
            problem = _check(item, shape[0], f"{path}[{number}]")
            if problem is not None:
                return problem
        return None
    allowed = PRIMITIVES.get(shape)
    if allowed is not None:
        ok = isinstance(value, allowed) and (shape == "boolean" or not isinstance(value, bool))
        if not ok:
            return path, f"expected {_ARTICLE[_expected(shape)]}, found {_describe(value)}"
        return None
    if not isinstance(value, dict):
        return path, f"expected {_ARTICLE['object']} ({shape}), found {_describe(value)}"
    for name, inner in COMPLEX[shape].items():
        if name in value:
            problem = _check(value[name], inner, f"{path}.{name}")
            if problem is not None:
                return problem
    return None


_PYTHON: dict[str, Any] = {"string": str, "code": str, "uri": str, "dateTime": str,
                           "date": str, "decimal": int | float, "integer": int, "boolean": bool}


@cache
def _struct(shape: str) -> Any:
    """The msgspec type checking a shape (unknown fields ignored, null read as absent).
    Not tracked by the garbage collector: what msgspec decodes is a tree, never a cycle."""
    if shape in _PYTHON:
        return _PYTHON[shape]
    fields = COMPLEX.get(shape) or RESOURCES[shape]
    return msgspec.defstruct(f"{shape}Shape", [
        (name, _annotation(inner) | None, None) for name, inner in fields.items()],
        gc=False)


def _annotation(shape: Shape) -> Any:
    if isinstance(shape, list):
        item = _struct(shape[0])
        return list[item]  # type: ignore[valid-type]
    return _struct(shape)


def element_type(resource_type: str, name: str) -> Any:
    """The msgspec type checking element ``name`` of ``resource_type`` (null allowed)."""
    return _annotation(RESOURCES[resource_type][name]) | None


def element_problem(resource: dict[str, Any]) -> tuple[str, str] | None:
    """``(element path, message)`` of the first element the mappings read whose JSON shape
    is wrong, or ``None``. Elements the mappings do not read are not looked at.

    The check itself is msgspec's (compiled); the path and message are then worked out
    here, in FHIR's terms.
    """
    rtype = resource.get("resourceType")
    shapes = RESOURCES.get(rtype) if isinstance(rtype, str) else None
    if shapes is None:
        return None
    try:
        msgspec.convert(resource, _struct(rtype))
        return None
    except msgspec.ValidationError as exc:
        fallback = str(exc)
    for name, shape in shapes.items():
        if name in resource:
            problem = _check(resource[name], shape, f"{rtype}.{name}")
            if problem is not None:
                return problem
    message, _, where = fallback.partition(" - at `$")
    return f"{rtype}{where.rstrip('`')}", message
