"""DM (Demographics) <- Patient + ResearchSubject + ResearchStudy (+ first/last exposure)."""

from __future__ import annotations

from fhircdisc.mappings.algorithms import check_spec
from fhircdisc.mappings.spec import DomainSpec, Rule

US_CORE_RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
US_CORE_ETHNICITY = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"
GENDER_SYSTEM = "http://hl7.org/fhir/administrative-gender"
ISO_3166 = "urn:iso:std:iso:3166"

SPEC = check_spec(DomainSpec(
    domain="DM",
    resource_type="Patient",
    description="One record per subject: the Patient of each enrolled ResearchSubject.",
    seq_keys=(),
    rules=(
        Rule("STUDYID", "context", value="studyid",
             note="ResearchSubject.study -> ResearchStudy(.partOf).identifier"),
        Rule("DOMAIN", "hardcode", value="DM"),
        Rule("USUBJID", "context", value="usubjid", note="STUDYID-SITEID-SUBJID"),
        Rule("SUBJID", "context", value="subjid", note="ResearchSubject.identifier"),
        Rule("RFSTDTC", "derived", note="RFXSTDTC, else ResearchSubject.period.start"),
        Rule("RFENDTC", "derived", note="ResearchSubject.period.end, else RFXENDTC"),
        Rule("RFXSTDTC", "derived", note="first EXSTDTC"),
        Rule("RFXENDTC", "derived", note="last EXENDTC"),
        Rule("RFICDTC", "context", value="rficdtc",
             note="ResearchSubject.consent -> Consent.dateTime"),
        Rule("DTHDTC", "dtc", ("deceasedDateTime",)),
        Rule("DTHFL", "flag", ("deceasedDateTime", "deceasedBoolean"), write="deceasedBoolean"),
        Rule("SITEID", "context", value="siteid", note="site-level ResearchStudy.identifier"),
        Rule("BRTHDTC", "dtc", ("birthDate",)),
        Rule("AGE", "derived", note="completed years from BRTHDTC to RFSTDTC"),
        Rule("AGEU", "derived", note="YEARS when AGE is known"),
        Rule("SEX", "ct", ("gender",), table="SEX", system=GENDER_SYSTEM),
        Rule("RACE", "ct_multi", (f"extension[url={US_CORE_RACE}].extension[url=ombCategory]"
                                  ".valueCoding",), table="RACE"),
        Rule("ETHNIC", "ct", (f"extension[url={US_CORE_ETHNICITY}].extension[url=ombCategory]"
                              ".valueCoding",), table="ETHNIC"),
        Rule("ARMCD", "context", value="armcd", note="R4 assignedArm / R5 assignedComparisonGroup"),
        Rule("ARM", "context", value="arm", note="the arm's description"),
        Rule("ACTARMCD", "context", value="actarmcd",
             note="R4 actualArm / R5 actualComparisonGroup"),
        Rule("ACTARM", "context", value="actarm"),
        Rule("ARMNRS", "derived", note="NOT ASSIGNED when the subject has no arm"),
        Rule("COUNTRY", "ct", ("address.country",), table="COUNTRY", system=ISO_3166,
             write="address[].country"),
        Rule("DMDTC", "dtc", ("meta.lastUpdated",), write="",
             note="not written back: meta.lastUpdated is an instant with a time zone"),
        Rule("DMDY", "derived"),
    ),
))
