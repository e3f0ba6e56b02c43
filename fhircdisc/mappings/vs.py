"""VS (Vital Signs) <- Observation with category ``vital-signs``.

Blood-pressure panels (LOINC 85354-9) carry systolic and diastolic values as
components; each component becomes its own VS row with the panel's date.
"""

from __future__ import annotations

from fhircdisc.mappings.algorithms import check_spec
from fhircdisc.mappings.spec import DomainSpec, Rule

BODY_POSITION = "http://hl7.org/fhir/StructureDefinition/observation-bodyPosition"
_TEST = ("code",)

SPEC = check_spec(DomainSpec(
    domain="VS",
    resource_type="Observation",
    description="One record per vital sign measurement (panel components become rows).",
    seq_keys=("VSDTC", "VSTESTCD"),
    rules=(
        Rule("STUDYID", "context", value="studyid"),
        Rule("DOMAIN", "hardcode", value="VS"),
        Rule("USUBJID", "context", value="usubjid"),
        Rule("VSSEQ", "derived"),
        Rule("VSTESTCD", "ct", _TEST, table="VSTEST", required=True, note="LOINC -> VSTESTCD"),
        Rule("VSTEST", "ct_decode", _TEST, table="VSTEST", write="code.text"),
        Rule("VSPOS", "ct", (f"extension[url={BODY_POSITION}].valueCodeableConcept",),
             table="VSPOS"),
        Rule("VSORRES", "result_char", write="value"),
        Rule("VSORRESU", "unit", ("valueQuantity",), table="UNIT", value="VSTEST:VSORRESU",
             note="the test's own unit where it names one (HR: beats/min), else UNIT"),
        Rule("VSSTRESC", "result_char", note="standard = original result (no unit conversion)"),
        Rule("VSSTRESN", "result_num"),
        Rule("VSSTRESU", "unit", ("valueQuantity",), table="UNIT",
             value="strict;VSTEST:VSORRESU", write=""),
        Rule("VSSTAT", "not_done"),
        Rule("VSREASND", "assign", ("dataAbsentReason.text",)),
        Rule("VSLOC", "ct", ("bodySite",), table="LOC"),
        Rule("VISITNUM", "visit_number"),
        Rule("VISIT", "text", ("_encounter.type",), write=""),
        Rule("VSDTC", "dtc", ("effectiveDateTime", "effectivePeriod.start", "effectiveInstant"),
             write="effectiveDateTime"),
        Rule("VSDY", "derived"),
    ),
))
