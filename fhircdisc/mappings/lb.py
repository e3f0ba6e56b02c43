"""LB (Laboratory Test Results) <- Observation with category ``laboratory``.

Follows the HL7 FHIR-to-CDISC Joint Mapping IG (LB rows); the IG leaves CT and
unit translation to the sponsor, which the terminology tables do here.
"""

from __future__ import annotations

from fhircdisc.mappings.algorithms import check_spec
from fhircdisc.mappings.spec import DomainSpec, Rule

LOINC = "http://loinc.org"
_TEST = ("code",)

SPEC = check_spec(DomainSpec(
    domain="LB",
    resource_type="Observation",
    description="One record per lab test result (panel components become rows).",
    seq_keys=("LBDTC", "LBTESTCD"),
    rules=(
        Rule("STUDYID", "context", value="studyid"),
        Rule("DOMAIN", "hardcode", value="LB"),
        Rule("USUBJID", "context", value="usubjid"),
        Rule("LBSEQ", "derived"),
        Rule("LBTESTCD", "ct", _TEST, table="LBTEST", required=True, note="LOINC -> LBTESTCD"),
        Rule("LBTEST", "ct_decode", _TEST, table="LBTEST", write="code.text"),
        Rule("LBCAT", "ct_attribute", _TEST, table="LBTEST", value="LBCAT"),
        Rule("LBORRES", "result_char", write="value"),
        Rule("LBORRESU", "unit", ("valueQuantity",), table="UNIT"),
        Rule("LBORNRLO", "assign", ("referenceRange.low.value",),
             write="referenceRange[].low.value"),
        Rule("LBORNRHI", "assign", ("referenceRange.high.value",),
             write="referenceRange[].high.value"),
        Rule("LBSTRESC", "result_char", note="standard = original result (no unit conversion)"),
        Rule("LBSTRESN", "result_num"),
        Rule("LBSTRESU", "unit", ("valueQuantity",), table="UNIT", value="strict", write=""),
        Rule("LBSTNRLO", "assign_num", ("referenceRange.low.value",), write=""),
        Rule("LBSTNRHI", "assign_num", ("referenceRange.high.value",), write=""),
        Rule("LBNRIND", "ct", ("interpretation",), table="NRIND", write="interpretation[]"),
        Rule("LBSTAT", "not_done", note="status cancelled or dataAbsentReason"),
        Rule("LBREASND", "assign", ("dataAbsentReason.text",)),
        Rule("LBLOINC", "coding_code", (f"code.coding[system={LOINC}].code",
                                        "code.coding[system=https://loinc.org].code")),
        Rule("LBSPEC", "ct", ("_specimen.type",), table="SPEC", write="",
             fallback=Rule("LBSPEC", "ct_attribute", _TEST, table="LBTEST", value="LBSPEC")),
        Rule("LBMETHOD", "text", ("method",), write="method.text"),
        Rule("VISITNUM", "visit_number"),
        Rule("VISIT", "text", ("_encounter.type",), write=""),
        Rule("LBDTC", "dtc", ("_specimen.collection.collectedDateTime",
                              "_specimen.collection.collectedPeriod.start",
                              "effectiveDateTime", "effectivePeriod.start", "effectiveInstant"),
             write="effectiveDateTime"),
        Rule("LBDY", "derived"),
    ),
))
