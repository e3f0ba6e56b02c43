"""The project's own FHIR extensions and identifier systems.

``sdtm-variable`` carries an SDTM variable that has no FHIR home, or whose value the
FHIR elements cannot reproduce exactly (a partial time, a sponsor-defined term, a
standardized result), so that SDTM -> FHIR -> SDTM is lossless::

    {"url": SDTM_VARIABLE, "extension": [{"url": "name", "valueCode": "EPOCH"},
                                         {"url": "value", "valueString": "TREATMENT"}]}

A numeric variable uses ``valueDecimal``; an extension with a name and no value
records that the variable is empty. ``sdtm-record`` carries a whole SDTM record (one
``sdtm-variable`` per non-empty variable): TS rows ride on their ResearchStudy so.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import NoneType
from typing import Any

from fhircdisc.mappings.inverse import missing

BASE = "https://fhircdisc.org/fhir"
SDTM_VARIABLE = f"{BASE}/StructureDefinition/sdtm-variable"
SDTM_RECORD = f"{BASE}/StructureDefinition/sdtm-record"
STUDYID_SYSTEM = f"{BASE}/sid/studyid"
SITEID_SYSTEM = f"{BASE}/sid/siteid"
SUBJID_SYSTEM = f"{BASE}/sid/subjid"
USUBJID_SYSTEM = f"{BASE}/sid/usubjid"
VISITNUM_SYSTEM = f"{BASE}/sid/visitnum"


def variable_extension(name: str, value: Any) -> dict[str, Any]:
    """One ``sdtm-variable`` extension (no value part when the value is empty)."""
    parts: list[dict[str, Any]] = [{"url": "name", "valueCode": name}]
    if not missing(value):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            parts.append({"url": "value", "valueDecimal": float(value)})
        else:
            parts.append({"url": "value", "valueString": str(value)})
    return {"url": SDTM_VARIABLE, "extension": parts}


def record_extension(values: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """One ``sdtm-record`` extension holding a record's non-empty variables."""
    return {"url": SDTM_RECORD, "extension": [variable_extension(name, value)
                                              for name, value in values if not missing(value)]}


def _decode(extension: dict[str, Any]) -> tuple[str, Any] | None:
    """The variable an ``sdtm-variable`` extension carries; None for one that carries none
    or is not of the shape this module writes (a name as text, a value as text or number)."""
    name, value = None, None
    parts = extension.get("extension")
    if not isinstance(parts, list):
        return None
    for part in parts:
        if not isinstance(part, dict):
            return None
        if part.get("url") == "name":
            name = part.get("valueCode") or part.get("valueString")
        elif part.get("url") == "value":
            value = part.get("valueDecimal", part.get("valueString"))
            if isinstance(value, bool) or not isinstance(value, (str, int, float, NoneType)):
                return None
            if isinstance(value, int):
                value = float(value)
    return (name, value) if isinstance(name, str) and name else None


def _extensions(node: dict[str, Any]) -> list[Any]:
    found = node.get("extension")
    return found if isinstance(found, list) else []


def read_variables(node: dict[str, Any]) -> dict[str, Any]:
    """The ``sdtm-variable`` extensions directly on ``node``: name -> value (None = empty).
    Extensions of another shape carry nothing (the element check reports a top-level
    ``extension`` that is not an array of objects)."""
    out: dict[str, Any] = {}
    for extension in _extensions(node):
        if isinstance(extension, dict) and extension.get("url") == SDTM_VARIABLE:
            decoded = _decode(extension)
            if decoded is not None:
                out[decoded[0]] = decoded[1]
    return out


def read_records(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``sdtm-record`` extensions on ``node``, each as name -> value."""
    return [read_variables(ext) for ext in _extensions(node)
            if isinstance(ext, dict) and ext.get("url") == SDTM_RECORD]
