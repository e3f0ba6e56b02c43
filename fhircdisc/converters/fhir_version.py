"""Tell FHIR R4 (and R4B) from R5 by the elements a resource carries.

Neither a Bundle nor an NDJSON line states its FHIR version. The resources we map
differ between R4 and R5 in named elements, so each resource votes by the
elements it uses; a mixed set is an error, a set without any telling element is
taken as R4 (the version hospital systems export).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fhircdisc.errors import InputError

VERSIONS = ("R4", "R4B", "R5")

#: resourceType -> (elements only R4/R4B has, elements only R5 has)
_MARKERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "ResearchSubject": (("individual", "assignedArm", "actualArm"),
                        ("subject", "assignedComparisonGroup", "actualComparisonGroup",
                         "progress")),
    "ResearchStudy": (("arm", "enrollment", "sponsor", "principalInvestigator"),
                      ("comparisonGroup", "studyDesign", "associatedParty", "recruitment",
                       "name")),
    "AdverseEvent": (("event", "date", "severity", "detected"),
                     ("code", "occurrenceDateTime", "occurrencePeriod", "occurrenceTiming",
                      "status", "resolveDate", "mitigatingAction")),
    "MedicationAdministration": (("medicationCodeableConcept", "medicationReference",
                                  "effectiveDateTime", "effectivePeriod", "context"),
                                 ("medication", "occurenceDateTime", "occurencePeriod",
                                  "occurenceTiming", "encounter")),
}


def resource_version(resource: dict[str, Any]) -> str | None:
    """``"R4"``, ``"R5"`` or ``None`` when the resource does not tell."""
    markers = _MARKERS.get(str(resource.get("resourceType")))
    if markers is None:
        return None
    r4, r5 = markers
    has_r4 = any(name in resource for name in r4)
    has_r5 = any(name in resource for name in r5)
    if has_r5 and not has_r4:
        return "R5"
    if has_r4 and not has_r5:
        return "R4"
    return None


class VersionVote:
    """Collect votes while reading; decide once everything is read."""

    def __init__(self) -> None:
        self.first: dict[str, str] = {}

    def add(self, resource: dict[str, Any], where: str) -> None:
        version = resource_version(resource)
        if version is not None and version not in self.first:
            self.first[version] = where

    def decide(self, requested: str = "auto") -> str:
        """The version of the input, checked against what the user asked for."""
        requested = requested.upper() if requested.lower() != "auto" else "auto"
        if requested not in (*VERSIONS, "auto"):
            raise InputError(f"unknown FHIR version {requested!r}",
                             hint="use auto, R4, R4B or R5")
        if "R4" in self.first and "R5" in self.first:
            raise InputError(
                f"input mixes FHIR versions: R4 elements at {self.first['R4']}, "
                f"R5 elements at {self.first['R5']}",
                hint="convert each version separately")
        found = next(iter(self.first), None)
        if requested == "auto":
            return found or "R4"
        family = "R5" if requested == "R5" else "R4"
        if found is not None and found != family:
            raise InputError(f"--fhir-version {requested} given, but the input has {found} "
                             f"elements (first at {self.first[found]})",
                             hint="use --fhir-version auto")
        return requested


def check_versions(resources: Iterable[tuple[dict[str, Any], str]], requested: str = "auto"
                   ) -> str:
    """Decide the FHIR version of ``(resource, where)`` pairs."""
    vote = VersionVote()
    for resource, where in resources:
        vote.add(resource, where)
    return vote.decide(requested)
