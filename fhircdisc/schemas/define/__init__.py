"""Define-XML 2.1: build it for SDTM datasets, validate it (XSD), check it against the data.

Built on odmlib's ``define_2_1`` model and the Define-XML 2.1 XSD odmlib ships.
"""

from __future__ import annotations

from fhircdisc.schemas.define.build import build_define
from fhircdisc.schemas.define.check import check_define_against_datasets, validate_define
from fhircdisc.schemas.define.safe_xml import parse_xml_safely
from fhircdisc.schemas.define.xsd import validate_define_xsd

__all__ = [
    "build_define",
    "check_define_against_datasets",
    "parse_xml_safely",
    "validate_define",
    "validate_define_xsd",
]
