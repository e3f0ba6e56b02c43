"""The SDTM rule table: one row per rule, read from ``fhircdisc/schemas/rules/sdtm_rules.csv``.

A rule names a registered check and gives it parameters (``var=--STDTC;other=--ENDTC``);
the engine never changes when a rule is added. Every row is validated when the table is
loaded: a duplicate id, an unknown severity or check, a parameter the check does not
take, or a message placeholder the check does not fill is a :class:`RuleTableError`.
"""

from __future__ import annotations

import csv
import io
import re
import string
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import cast

from fhircdisc.errors import InputError
from fhircdisc.schemas.conformance.checks import CHECKS, COMMON_FIELDS
from fhircdisc.schemas.findings import SEVERITIES, Severity

COLUMNS = ("id", "severity", "domains", "check", "params", "message",
           "core_id", "fda_id", "cg_id", "citation")
_ID = re.compile(r"FC-SD-\d{4}\Z")
_DOMAIN = re.compile(r"[A-Z][A-Z0-9]{1,7}\Z")


class RuleTableError(InputError):
    """The rule table itself is malformed (reported at load time, never mid-validation)."""


@dataclass(frozen=True)
class Rule:
    """One conformance rule as written in the table."""

    id: str
    severity: Severity
    check: str
    message: str
    domains: tuple[str, ...] | None = None  # None: every dataset
    exclude: tuple[str, ...] = ()
    params: dict[str, str] = field(default_factory=dict)
    core_id: str = ""
    fda_id: str = ""
    cg_id: str = ""
    citation: str = ""

    def applies_to(self, dataset: str) -> bool:
        if dataset in self.exclude:
            return False
        return self.domains is None or dataset in self.domains or dataset[:2] in self.domains

    def scope(self) -> str:
        """The domains in words, for a skip reason ("LB or VS", "SDTM", "non-DM")."""
        if self.domains:
            return " or ".join(self.domains)
        return "non-" + "/".join(self.exclude) if self.exclude else "SDTM"


def default_rules_path() -> Path:
    return Path(str(resources.files("fhircdisc.schemas") / "rules" / "sdtm_rules.csv"))


def parse_params(text: str) -> dict[str, str]:
    """``"var=--STDTC;other=--ENDTC"`` -> ``{"var": "--STDTC", "other": "--ENDTC"}``."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise ValueError(f"parameter {part!r} is not name=value")
        if key in out:
            raise ValueError(f"parameter {key!r} given twice")
        out[key] = value
    return out


def parse_domains(text: str) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
    """``"*"`` / ``"*;!DM"`` / ``"LB;VS"`` -> (included or None for all, excluded)."""
    tokens = [t.strip() for t in text.split(";") if t.strip()]
    include = [t for t in tokens if not t.startswith("!") and t != "*"]
    exclude = [t[1:] for t in tokens if t.startswith("!")]
    if not tokens or ("*" in tokens and include) or ("*" not in tokens and not include):
        raise ValueError(f"domains {text!r}: give '*' (optionally with '!XX' exclusions) "
                         "or a ';'-separated list of datasets")
    bad = [t for t in include + exclude if not _DOMAIN.match(t)]
    if bad:
        raise ValueError(f"domains {text!r}: invalid dataset name(s) {', '.join(bad)}")
    return (None if "*" in tokens else tuple(include)), tuple(exclude)


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def _rule(row: dict[str, str]) -> Rule:
    missing = [c for c in COLUMNS if row.get(c) is None]
    if missing:
        raise ValueError(f"missing column(s) {', '.join(missing)}")
    rule_id, severity, check = row["id"].strip(), row["severity"].strip(), row["check"].strip()
    if not _ID.match(rule_id):
        raise ValueError(f"id {rule_id!r} is not of the form FC-SD-0000")
    if severity not in SEVERITIES:
        raise ValueError(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    spec = CHECKS.get(check)
    if spec is None:
        raise ValueError(f"unknown check {check!r}; registered: {', '.join(sorted(CHECKS))}")
    params = parse_params(row["params"])
    unknown = sorted(set(params) - set(spec.required) - set(spec.optional))
    if unknown:
        raise ValueError(f"check {check} takes no parameter(s) {', '.join(unknown)}")
    absent = [p for p in spec.required if p not in params]
    if absent:
        raise ValueError(f"check {check} needs parameter(s) {', '.join(absent)}")
    message = row["message"].strip()
    extra = _placeholders(message) - set(COMMON_FIELDS) - set(spec.fields)
    if not message or extra:
        raise ValueError(f"message placeholder(s) {', '.join(sorted(extra))} are not filled "
                         f"by check {check}" if extra else "empty message")
    domains, exclude = parse_domains(row["domains"])
    return Rule(id=rule_id, severity=cast(Severity, severity), check=check, message=message,
                domains=domains, exclude=exclude, params=params,
                core_id=row["core_id"].strip(), fda_id=row["fda_id"].strip(),
                cg_id=row["cg_id"].strip(), citation=row["citation"].strip())


def read_rules_text(text: str, source: str = "<rules>") -> list[Rule]:
    """Parse a rule table (CSV; lines starting with ``#`` are comments)."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    reader = csv.DictReader(io.StringIO("\n".join(lines)))
    header = tuple(reader.fieldnames or ())
    if header != COLUMNS:
        raise RuleTableError(f"header is {', '.join(header) or 'empty'}", source=source,
                             hint=f"expected {','.join(COLUMNS)}")
    rules: list[Rule] = []
    seen: set[str] = set()
    for number, row in enumerate(reader, start=1):
        try:
            rule = _rule(row)
        except ValueError as exc:
            raise RuleTableError(str(exc), source=source,
                                 location=f"rule {number} ({row.get('id') or '?'})") from exc
        if rule.id in seen:
            raise RuleTableError(f"duplicate rule id {rule.id}", source=source,
                                 location=f"rule {number}")
        seen.add(rule.id)
        rules.append(rule)
    return rules


def load_rules(path: Path | str | None = None) -> list[Rule]:
    """Read and validate the rule table (the packaged SDTM rules when ``path`` is None:
    read once a process, a streamed conversion checking each bucket of rows with them)."""
    if path is None:
        return list(_packaged_rules())
    return _read_rules(Path(path))


@cache
def _packaged_rules() -> tuple[Rule, ...]:
    return tuple(_read_rules(default_rules_path()))


def _read_rules(file: Path) -> list[Rule]:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleTableError(f"cannot read rule table: {exc.strerror}", source=str(file)) from exc
    return read_rules_text(text, source=str(file))
