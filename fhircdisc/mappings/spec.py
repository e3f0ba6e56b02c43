"""The shape of a domain mapping: which FHIR element feeds which SDTM variable, how.

A domain spec is a list of rules, one per SDTM variable. Each rule names an
algorithm from a closed vocabulary (``mappings/algorithms.py``), the FHIR
path(s) it reads (alternatives tried in order: R4 spelling first, then R5) and
the terminology table it uses. The engine runs the rules; nothing about a domain
lives outside its spec except what the spec names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Rule:
    """How one SDTM variable is filled from FHIR.

    ``algorithm`` is a registered name; ``paths`` FHIR paths (first that has a value
    wins); ``table`` a terminology table; ``system`` the code system of a bare code
    (e.g. ``Patient.gender``); ``value`` a constant or the name of an attribute;
    ``required``: without a value the resource cannot become a row. ``write`` /
    ``write_r5``: the path SDTM -> FHIR writes (default: the first of ``paths``).
    """

    var: str
    algorithm: str
    paths: tuple[str, ...] = ()
    table: str | None = None
    system: str | None = None
    value: str | None = None
    required: bool = False
    fallback: Rule | None = None
    write: str | None = None
    write_r5: str | None = None
    note: str = ""

    def write_path(self, version: str) -> str | None:
        """Where SDTM -> FHIR puts this variable: ``write`` (R4) / ``write_r5``, else the
        first read path; ``""`` means the variable is not written (derived or read-only)."""
        path = self.write_r5 if version == "R5" and self.write_r5 is not None else self.write
        if path is None:
            path = self.paths[0] if self.paths else None
        return path or None


@dataclass(frozen=True)
class DomainSpec:
    """A domain's mapping: its source resources, rules and the keys that order --SEQ."""

    domain: str
    resource_type: str
    rules: tuple[Rule, ...]
    seq_keys: tuple[str, ...] = ()
    description: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def rule(self, var: str) -> Rule:
        for rule in self.rules:
            if rule.var == var:
                return rule
        raise KeyError(var)

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(rule.var for rule in self.rules)


class Unmapped(Exception):
    """A resource (or one of its values) that cannot be mapped, with the reason."""

    def __init__(self, reason_code: str, message: str, element: str | None = None,
                 system: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message
        self.element = element
        self.system = system
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        # an exception pickles as its class and ``args`` (here the message alone)
        return Unmapped, (self.reason_code, self.message, self.element, self.system,
                          self.code)
