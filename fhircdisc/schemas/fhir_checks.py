"""FHIR validation: structure (fhir.resources), reference integrity, codes we depend on.

Structure: every resource against the fhir.resources models of its version (R4B models
for R4/R4B, R5 models for R5), with the pydantic error's element path. References:
every relative (``Type/id``), ``urn:uuid`` and contained (``#id``) reference must
resolve inside the input; resolution goes through an index, so it is linear in the
number of references. Codes: the codes the SDTM mapping reads (test codes, units,
gender, route) are recognised by the terminology tables or reported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import NoneType
from typing import Any

from fhircdisc.caches import remember
from fhircdisc.converters.fhir_reader import ReadProblem, SourceResource
from fhircdisc.converters.fhir_validation import resource_errors
from fhircdisc.mappings import paths
from fhircdisc.mappings.terminology import Terminology
from fhircdisc.schemas.findings import Finding, RuleRun, ValidationResult

RULES = {
    "FC-FH-0001": ("error", "resource is not valid FHIR"),
    "FC-FH-0002": ("error", "reference does not resolve inside the input"),
    "FC-FH-0003": ("warning", "code not in the terminology tables: the value will not map"),
    "FC-FH-0004": ("error", "entry is not a resource"),
}


def _walk_references(node: Any, path: str) -> list[tuple[str, str]]:
    """``(path, reference)`` of every ``reference`` text under ``node`` (not in contained
    resources), in document order."""
    found: list[tuple[str, str]] = []
    _gather_references(node, path, found)
    return found


def _gather_references(node: Any, path: str, found: list[tuple[str, str]]) -> None:
    # only objects and arrays are walked into: a leaf holds no reference
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                found.append((path, value))
            elif key != "contained" and isinstance(value, (dict, list)):
                _gather_references(value, f"{path}.{key}", found)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            if isinstance(item, (dict, list)):
                _gather_references(item, f"{path}[{index}]", found)


def _resolves(reference: str, keys: set[str], urls: set[str], contained: set[str]) -> bool | None:
    """True/False for references we can check, None for ones we cannot (other servers)."""
    if reference.startswith("#"):
        return reference[1:] in contained
    if reference.startswith("urn:"):
        return reference in urls
    if reference.startswith(("http://", "https://")):
        if reference in urls:
            return True
        parts = reference.rstrip("/").split("/")
        return f"{parts[-2]}/{parts[-1]}" in keys or None
    if "?" in reference:
        return None                                  # conditional reference
    parts = reference.split("/")
    if len(parts) >= 2:
        return f"{parts[0]}/{parts[1]}" in keys
    return None


_CODE_CHECKS = (
    # (resource type, path to codings or code, table, system for bare codes, label)
    ("Observation", "code", ("LBTEST", "VSTEST"), None, "test code"),
    ("Observation", "valueQuantity", ("UNIT",), "http://unitsofmeasure.org", "unit"),
    ("Patient", "gender", ("SEX",), "http://hl7.org/fhir/administrative-gender", "gender"),
    ("MedicationAdministration", "dosage.route", ("ROUTE",), None, "route"),
)
_Check = tuple[str, tuple[str, ...], str | None, str]


def _checks_by_type() -> dict[str, list[_Check]]:
    """Resource type -> its checks of ``_CODE_CHECKS`` (path, tables, system, label)."""
    found: dict[str, list[_Check]] = {}
    for rtype, path, tables, system, label in _CODE_CHECKS:
        found.setdefault(rtype, []).append((path, tables, system, label))
    return found


_CHECKS_OF = _checks_by_type()
_KNOWN_LIMIT = 50_000


def _code_findings(resource: SourceResource, terms: Terminology,
                   known: dict[tuple[Any, ...], bool]) -> Iterator[Finding]:
    """The FC-FH-0003 findings of one resource; ``known`` keeps, for the run, whether
    some table knows each set of codings already looked up (they repeat)."""
    data = resource.data
    rtype = data.get("resourceType")
    if not isinstance(rtype, str) or rtype not in _CHECKS_OF:
        return
    checks = _CHECKS_OF[rtype]
    if rtype == "Observation" and data.get("component") \
            and not any(k.startswith("value") for k in data):
        # a panel: its components are what maps (elements of another shape are the
        # structure check's to report; this one looks at codes only)
        components = data["component"]
        for component in components if isinstance(components, list) else ():
            if isinstance(component, dict):
                yield from _code_findings(SourceResource(
                    {"resourceType": "Observation", **component}, resource.origin), terms,
                    known)
        return
    for path, tables, system, label in checks:
        node = paths.get(data, path)
        if isinstance(node, str):
            codings = [{"system": system, "code": node}]
        elif not isinstance(node, dict):
            continue
        elif path == "valueQuantity":
            if not node.get("code"):
                continue
            codings = [{"system": node.get("system") or system, "code": node.get("code")}]
        else:
            found = node.get("coding")
            codings = [c for c in found if isinstance(c, dict)] if isinstance(found, list) else []
        codings = [c for c in codings if isinstance(c.get("code"), str)
                   and isinstance(c.get("system"), (str, NoneType))]
        if not codings:
            continue
        key = (tables, *((c.get("system"), c.get("code")) for c in codings))
        found = known.get(key)
        if found is None:
            found = remember(known, key, any(terms.lookup(t, c.get("system"), c.get("code"))
                                             for t in tables for c in codings), _KNOWN_LIMIT)
        if found:
            continue
        first = codings[0]
        yield Finding("FC-FH-0003", "warning", rtype,
                      f"{label} {first.get('code')!r} ({first.get('system')}) is in no "
                      f"terminology table; add a row with --terminology to map it",
                      variable=f"{rtype}.{path}", value=str(first.get("code")),
                      source=f"{resource.key} @ {resource.origin}")


@dataclass
class InputIndex:
    """What the checks need of the whole input before they look at any resource: the
    keys (``Type/id``) and full URLs that references may resolve to, and the findings of
    the entries that are not resources, in input order."""

    keys: set[str] = field(default_factory=set)
    urls: set[str] = field(default_factory=set)
    problems: list[Finding] = field(default_factory=list)


def index_input(items: Iterable[SourceResource | ReadProblem],
                each: Callable[[SourceResource], None] | None = None) -> InputIndex:
    """The :class:`InputIndex` of ``items``, read once (``each`` is shown each resource,
    to learn more of the input in the same read)."""
    index = InputIndex()
    for item in items:
        if isinstance(item, ReadProblem):
            index.problems.append(Finding(
                "FC-FH-0004", "error", item.resource_type or "(entry)", item.message,
                source=str(item.origin)))
            continue
        if item.id:
            index.keys.add(item.key)
        if item.origin.full_url:
            index.urls.add(item.origin.full_url)
        if each is not None:
            each(item)
    return index


def validate_fhir(items: Iterable[SourceResource | ReadProblem], version: str,
                  terms: Terminology, target: str = "", structure: bool = True,
                  index: InputIndex | None = None) -> ValidationResult:
    """Findings of every FHIR check over resources read from one input.

    ``index``: :func:`index_input` of the same input, when it was read before (then
    ``items`` is read once more, resource by resource, and nothing holds the input);
    without it, ``items`` is read twice, so it must be a collection."""
    if index is None:
        index = index_input(items)
    result = ValidationResult(target=target, kind="fhir", metadata={"fhir_version": version})
    findings: dict[str, list[Finding]] = {rule: [] for rule in RULES}
    findings["FC-FH-0004"] = index.problems
    model_version = "R5" if version == "R5" else "R4"
    known: dict[tuple[Any, ...], bool] = {}
    for resource in items:
        if not isinstance(resource, SourceResource):
            continue
        if structure:
            for path, message in resource_errors(resource.data, model_version):
                findings["FC-FH-0001"].append(Finding(
                    "FC-FH-0001", "error", resource.type, message,
                    variable=f"{resource.type}.{path}", source=f"{resource.key} @ "
                    f"{resource.origin}"))
        contained = {str(c.get("id")) for c in resource.data.get("contained") or []
                     if isinstance(c, dict)}
        for path, reference in _walk_references(resource.data, resource.type):
            if _resolves(reference, index.keys, index.urls, contained) is False:
                findings["FC-FH-0002"].append(Finding(
                    "FC-FH-0002", "error", resource.type,
                    f"reference {reference!r} does not resolve inside the input",
                    variable=path, value=reference,
                    source=f"{resource.key} @ {resource.origin}"))
        findings["FC-FH-0003"].extend(_code_findings(resource, terms, known))
    for rule, found in findings.items():
        if rule == "FC-FH-0001" and not structure:
            result.runs.append(RuleRun(rule, "skipped", reason="structure check not asked for"))
            continue
        result.findings.extend(found)
        result.runs.append(RuleRun(rule, "issues" if found else "success", len(found)))
    return result
