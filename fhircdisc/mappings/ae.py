"""AE (Adverse Events) <- AdverseEvent, R4 (event/date/severity) and R5 (code/occurrence[x]).

R4 has no end date of its own; following the IG we read the R5 cross-version
extension ``AdverseEvent.occurrence[x]`` (``valuePeriod.end``). R5 has no
severity; it is read from the R4 cross-version extension when present.
"""

from __future__ import annotations

from fhircdisc.mappings.algorithms import check_spec
from fhircdisc.mappings.spec import DomainSpec, Rule

R5_OCCURRENCE = "http://hl7.org/fhir/5.0/StructureDefinition/extension-AdverseEvent.occurrence[x]"
R4_SEVERITY = "http://hl7.org/fhir/4.0/StructureDefinition/extension-AdverseEvent.severity"
MEDDRA = "http://terminology.hl7.org/CodeSystem/mdr"

SPEC = check_spec(DomainSpec(
    domain="AE",
    resource_type="AdverseEvent",
    description="One record per adverse event (actuality actual).",
    seq_keys=("AESTDTC", "AETERM"),
    rules=(
        Rule("STUDYID", "context", value="studyid"),
        Rule("DOMAIN", "hardcode", value="AE"),
        Rule("USUBJID", "context", value="usubjid"),
        Rule("AESEQ", "derived"),
        Rule("AETERM", "text", ("event", "code"), required=True, write="event.text",
             write_r5="code.text",
             note="the reported term: CodeableConcept.text, else display"),
        Rule("AEDECOD", "assign", (f"event.coding[system={MEDDRA}].display",
                                   f"code.coding[system={MEDDRA}].display",
                                   "event.coding.display", "code.coding.display"),
             write=f"event.coding[system={MEDDRA}].display",
             write_r5=f"code.coding[system={MEDDRA}].display",
             note="MedDRA preferred term when coded in MedDRA, else the coding's display"),
        Rule("AESEV", "ct", ("severity", f"extension[url={R4_SEVERITY}].valueCodeableConcept"),
             table="AESEV", write="severity",
             write_r5=f"extension[url={R4_SEVERITY}].valueCodeableConcept"),
        Rule("AESER", "ct", ("seriousness",), table="AESER"),
        Rule("AEACN", "ct", ("mitigatingAction.itemCodeableConcept",), table="AEACN",
             write="", write_r5="mitigatingAction[].itemCodeableConcept",
             note="R4 has no home for the action taken"),
        Rule("AEREL", "ct", ("suspectEntity.causality.assessment",
                             "suspectEntity.causality.entityRelatedness"), table="AEREL",
             write="suspectEntity[].causality[].assessment",
             write_r5="suspectEntity[].causality.entityRelatedness"),
        Rule("AEOUT", "ct", ("outcome",), table="AEOUT", write_r5="outcome[]"),
        Rule("AESDTH", "derived", note="Y when AEOUT is FATAL"),
        Rule("AESTDTC", "dtc", ("date", "occurrenceDateTime", "occurrencePeriod.start",
                                f"extension[url={R5_OCCURRENCE}].valuePeriod.start"),
             write="date", write_r5="occurrencePeriod.start"),
        Rule("AEENDTC", "dtc", (f"extension[url={R5_OCCURRENCE}].valuePeriod.end",
                                "occurrencePeriod.end", "resolveDate"),
             write_r5="occurrencePeriod.end"),
        Rule("AESTDY", "derived"),
        Rule("AEENDY", "derived"),
    ),
))
