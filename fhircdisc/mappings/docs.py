"""Markdown tables of the domain mappings, generated from the specs themselves."""

from __future__ import annotations

from fhircdisc.mappings import ae, dm, ex, lb, ts, vs
from fhircdisc.mappings.spec import DomainSpec, Rule

SPECS: tuple[DomainSpec, ...] = (dm.SPEC, ex.SPEC, lb.SPEC, vs.SPEC, ae.SPEC, ts.SPEC)


def _source(rule: Rule) -> str:
    parts = [f"`{p}`" for p in rule.paths]
    if rule.algorithm == "context":
        parts = [f"subject `{rule.value}`"]
    elif rule.algorithm == "hardcode":
        parts = [f"`\"{rule.value}\"`"]
    if rule.fallback is not None:
        parts.append("else " + _source(rule.fallback))
    return " or ".join(parts) if parts else ""


def spec_table(spec: DomainSpec) -> str:
    """One Markdown table: variable, algorithm, FHIR source, table, note."""
    lines = [f"### {spec.domain} ← {spec.resource_type}", "", spec.description, "",
             "| variable | algorithm | FHIR source (first with a value) | terminology | note |",
             "|---|---|---|---|---|"]
    for rule in spec.rules:
        table = rule.table or (rule.fallback.table if rule.fallback else None) or ""
        lines.append(f"| {rule.var} | {rule.algorithm} | {_source(rule)} | {table} | "
                     f"{rule.note} |".replace("|  |", "| |"))
    return "\n".join(lines)


def mapping_markdown() -> str:
    """Every domain's mapping table, for docs/mappings.md."""
    head = ("# Mapping tables\n\nGenerated from `fhircdisc/mappings/*.py` by "
            "`python tools/mapping_docs.py`; a test keeps this file current.\n\n"
            "Paths are read in order: the R4 spelling first, then R5. Keys starting with `_` "
            "are resolved context: `_subject` (the enrolled subject), `_encounter`, "
            "`_medication`, `_specimen`, `_sponsor`, `_registry_ids`.\n")
    return head + "\n\n".join(spec_table(spec) for spec in SPECS) + "\n"
