"""TS (Trial Summary) <- ResearchStudy (the top-level study, not site-level ones).

TS is a parameter/value dataset: each rule here is one TSPARMCD and yields one
TS row when the study carries a value for it.
"""

from __future__ import annotations

from fhircdisc.mappings.algorithms import check_spec
from fhircdisc.mappings.spec import DomainSpec, Rule

#: TSPARMCD -> TSPARM (CDISC CT codelists TSPARMCD C66738 / TSPARM C67152)
PARAMETERS = {
    "TITLE": "Trial Title",
    "REGID": "Registry Identifier",
    "TPHASE": "Trial Phase Classification",
    "STYPE": "Study Type",
    "TTYPE": "Trial Type",
    "SSTDTC": "Study Start Date",
    "SENDTC": "Study End Date",
    "NARMS": "Planned Number of Arms",
    "SPONSOR": "Clinical Study Sponsor",
}

SPEC = check_spec(DomainSpec(
    domain="TS",
    resource_type="ResearchStudy",
    description="One record per trial summary parameter value.",
    extra=PARAMETERS,
    rules=(
        Rule("TITLE", "assign", ("title",)),
        Rule("REGID", "assign", ("_registry_ids",), write="",
             note="identifier naming a trial registry"),
        Rule("TPHASE", "ct", ("phase",), table="TPHASE"),
        Rule("STYPE", "ct", ("category", "studyDesign"), table="STYPE", write=""),
        Rule("TTYPE", "ct", ("primaryPurposeType",), table="TTYPE"),
        Rule("SSTDTC", "dtc", ("period.start", "effectivePeriod.start")),
        Rule("SENDTC", "dtc", ("period.end", "effectivePeriod.end")),
        Rule("NARMS", "count", ("arm", "comparisonGroup"), write=""),
        Rule("SPONSOR", "assign", ("_sponsor.name",
                                   "associatedParty[role.coding.code=sponsor].name"), write=""),
    ),
))
