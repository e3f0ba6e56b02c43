"""EX (Exposure) <- MedicationAdministration (R4 and R5 shapes).

The HL7 FHIR-to-CDISC mapping IG has no EX rows; this mapping is ours. The
administered product is ``medicationCodeableConcept`` or the Medication that
``medicationReference`` points at (R5: ``medication.concept`` / ``.reference``),
resolved into the view as ``_medication``.
"""

from __future__ import annotations

from fhircdisc.mappings.algorithms import check_spec
from fhircdisc.mappings.spec import DomainSpec, Rule

SPEC = check_spec(DomainSpec(
    domain="EX",
    resource_type="MedicationAdministration",
    description="One record per administration (status completed or in-progress).",
    seq_keys=("EXSTDTC", "EXTRT"),
    rules=(
        Rule("STUDYID", "context", value="studyid"),
        Rule("DOMAIN", "hardcode", value="EX"),
        Rule("USUBJID", "context", value="usubjid"),
        Rule("EXSEQ", "derived"),
        Rule("EXTRT", "text", ("_medication.code", "_medication.ingredient.itemCodeableConcept",
                               "_medication.ingredient.item.concept"), required=True,
             write="_medication.code.text",
             note="medicationCodeableConcept or Medication.code (else its first ingredient): "
                  "text, else display"),
        Rule("EXDOSE", "assign_num", ("dosage.dose.value",)),
        Rule("EXDOSU", "unit", ("dosage.dose",), table="UNIT"),
        Rule("EXDOSFRM", "ct", ("_medication.form", "_medication.doseForm"), table="DOSFRM",
             write_r5="_medication.doseForm"),
        Rule("EXROUTE", "ct", ("dosage.route",), table="ROUTE"),
        Rule("EXSTDTC", "dtc", ("effectiveDateTime", "effectivePeriod.start",
                                "occurenceDateTime", "occurencePeriod.start"), required=True,
             write="effectivePeriod.start", write_r5="occurencePeriod.start"),
        Rule("EXENDTC", "dtc", ("effectivePeriod.end", "effectiveDateTime",
                                "occurencePeriod.end", "occurenceDateTime"),
             write="effectivePeriod.end", write_r5="occurencePeriod.end"),
        Rule("EXSTDY", "derived"),
        Rule("EXENDY", "derived"),
    ),
))
