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
    version, _ = telling_element(resource)
    return version


def telling_element(resource: dict[str, Any]) -> tuple[str | None, str | None]:
    """The version a resource's elements tell, and the element that tells it."""
    rtype = str(resource.get("resourceType"))
    markers = _MARKERS.get(rtype)
    if markers is None:
        return None, None
    r4, r5 = markers
    in_r4 = [name for name in r4 if name in resource]
    in_r5 = [name for name in r5 if name in resource]
    if in_r5 and not in_r4:
        return "R5", f"{rtype}.{in_r5[0]}"
    if in_r4 and not in_r5:
        return "R4", f"{rtype}.{in_r4[0]}"
    return None, None


class VersionVote:
    """Collect votes while reading; decide once everything is read."""

    def __init__(self) -> None:
        self.first: dict[str, tuple[str, str | None, str]] = {}

    def add(self, resource: dict[str, Any], source: str, location: str | None = None) -> None:
        self.told(*telling_element(resource), source, location)

    def told(self, version: str | None, element: str | None, source: str,
             location: str | None = None) -> None:
        """:meth:`add` of a resource whose :func:`telling_element` is already known."""
        if version is not None and element is not None and version not in self.first:
            self.first[version] = (element, source, location or "")

    def _where(self, version: str) -> str:
        element, source, location = self.first[version]
        return f"{element} in {source}" + (f" [{location}]" if location else "")

    def decide(self, requested: str = "auto") -> str:
        """The version of the input, checked against what the user asked for."""
        requested = requested.upper() if requested.lower() != "auto" else "auto"
        if requested not in (*VERSIONS, "auto"):
            raise InputError(f"unknown FHIR version {requested!r}",
                             hint="use auto, R4, R4B or R5")
        if "R4" in self.first and "R5" in self.first:
            raise InputError(
                f"input mixes FHIR versions: R4 element {self._where('R4')}, "
                f"R5 element {self._where('R5')}",
                hint="convert each version separately")
        found = next(iter(self.first), None)
        if requested == "auto":
            return found or "R4"
        family = "R5" if requested == "R5" else "R4"
        if found is not None and found != family:
            _, source, location = self.first[found]
            raise InputError(f"--fhir-version {requested} given, but the input has the {found} "
                             f"element {self.first[found][0]}", source, location or None,
                             hint="use --fhir-version auto")
        return requested


def check_versions(resources: Iterable[tuple[dict[str, Any], str]], requested: str = "auto"
                   ) -> str:
    """Decide the FHIR version of ``(resource, where)`` pairs."""
    vote = VersionVote()
    for resource, where in resources:
        vote.add(resource, where)
    return vote.decide(requested)
