"""Validate Define-XML 2.1 against the XSD that odmlib ships, offline.

The schema set lives in ``odmlib/schemas/define/2.1`` (Define-XML 2.1.9 enumerations,
CDISC CT package 59 of 2025-03-28) with the ODM 1.3.2 foundation beside it; every
``schemaLocation`` in it is a relative local path, and the parser used to load it never
goes to the network.
"""

from __future__ import annotations

from functools import cache, lru_cache
from pathlib import Path

from lxml import etree
from odmlib.schema_manager import get_schema_path

from fhircdisc.schemas.define.safe_xml import parse_xml_safely, safe_parser
from fhircdisc.schemas.findings import Finding

__all__ = ["XSD_RULE", "enumeration", "parse_xml_safely", "schema_path", "validate_define_xsd"]

XSD_RULE = "FC-DF-XSD"
_XS = "{http://www.w3.org/2001/XMLSchema}"


def schema_path() -> Path:
    """The Define-XML 2.1 entry-point XSD (``define2-1-0.xsd``) inside odmlib."""
    return Path(get_schema_path("define", "2.1"))


@lru_cache(maxsize=1)
def _schema() -> etree.XMLSchema:
    doc = etree.parse(str(schema_path()), safe_parser())
    return etree.XMLSchema(doc)


@cache
def enumeration(type_name: str) -> frozenset[str]:
    """The values of one enumerated simple type of ``define-enumerations.xsd``.

    E.g. ``enumeration("ItemGroupClass")`` -> {"FINDINGS", "SPECIAL PURPOSE", ...}; these
    track CDISC CT, so a generator reads them here rather than hard-coding them.
    """
    path = schema_path().parent / "define-enumerations.xsd"
    root = etree.parse(str(path), safe_parser()).getroot()
    values: set[str] = set()
    for simple in root.iter(f"{_XS}simpleType"):
        if simple.get("name") == type_name:
            values.update(e.get("value", "") for e in simple.iter(f"{_XS}enumeration"))
    return frozenset(values)


def validate_define_xsd(xml: bytes | str | Path, source: str | None = None) -> list[Finding]:
    """Every XSD error of a Define-XML 2.1 document, one :class:`Finding` each.

    Findings carry rule ``FC-DF-XSD``, severity error, the XSD error's line in ``row`` and
    the element path in ``variable``. A document that cannot be parsed safely (DOCTYPE,
    entities, not well-formed) raises :class:`~fhircdisc.errors.InputError` instead.
    """
    name = source or ("<bytes>" if isinstance(xml, bytes) else str(xml))
    tree = parse_xml_safely(xml, name)
    schema = _schema()
    if schema.validate(tree):
        return []
    return [
        Finding(rule_id=XSD_RULE, severity="error", dataset=Path(name).name,
                message=error.message, row=error.line, variable=error.path or None,
                source=name)
        for error in schema.error_log
    ]
