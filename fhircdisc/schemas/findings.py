"""Validation findings as records, and the outcome of each rule run.

A finding is frozen data: rule id, severity, dataset (or resource type), row number
(1-based, or None), USUBJID and --SEQ where the row has them, variable (or element
path), value and message. Each rule also reports how its run went, separately from
its findings: ``success`` (ran, nothing found), ``issues`` (ran, found some),
``skipped`` (could not apply, with the reason) or ``error`` (the check itself failed):
a rule that could not run is never counted as passed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

Severity = Literal["error", "warning", "notice"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "notice")
RunStatus = Literal["success", "issues", "skipped", "error"]


@dataclass(frozen=True)
class Finding:
    """One problem found in one place."""

    rule_id: str
    severity: Severity
    dataset: str
    message: str
    row: int | None = None
    usubjid: str | None = None
    seq: float | None = None
    variable: str | None = None
    value: str | None = None
    source: str | None = None
    #: how ``message`` was made (a rule's template, the names of its fields and their
    #: values), so that it can be made again for rows numbered from elsewhere
    #: (:meth:`moved`); the names are one tuple shared by a rule's findings
    wording: tuple[str, tuple[str, ...], tuple[Any, ...]] | None = field(
        default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _FINDING_FIELDS}

    def moved(self, rows: int) -> Finding:
        """The finding of a dataset piece seen in the whole dataset, where the piece
        starts ``rows`` rows further down: its row and the rows its message names."""
        row = None if self.row is None else self.row + rows
        if self.wording is None:
            return replace(self, row=row)
        template, names, values = self.wording
        shifted = {name: int(value) + rows if name in ROW_FIELDS and str(value).isdigit()
                   else value for name, value in zip(names, values, strict=True)}
        # as ``replace`` would make it, without running ``__init__`` (a streamed dataset
        # can have a finding in each of millions of rows)
        moved = object.__new__(Finding)
        object.__setattr__(moved, "__dict__", {
            **self.__dict__, "row": row, "message": template.format_map(shifted),
            "wording": (template, names, tuple(shifted.values()))})
        return moved


def shared_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """One tuple for every equal tuple of field names (:attr:`Finding.wording`): a
    dataset with a finding in each row holds the names once."""
    return _NAMES.setdefault(names, names)


_NAMES: dict[tuple[str, ...], tuple[str, ...]] = {}


#: message fields that are row numbers of the dataset
ROW_FIELDS = frozenset({"row", "first_row"})
_FINDING_FIELDS = tuple(item.name for item in fields(Finding) if item.name != "wording")


@dataclass(frozen=True)
class RuleRun:
    """How one rule's run went."""

    rule_id: str
    status: RunStatus
    findings: int = 0
    reason: str | None = None


@dataclass
class ValidationResult:
    """Every finding of a validation, and the run status of every rule."""

    target: str
    kind: str
    findings: list[Finding] = field(default_factory=list)
    runs: list[RuleRun] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def extend(self, other: ValidationResult) -> None:
        self.findings.extend(other.findings)
        self.runs.extend(other.runs)

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    def worst(self) -> Severity | None:
        for severity in SEVERITIES:
            if self.count(severity):
                return severity
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "kind": self.kind,
            "metadata": self.metadata,
            "counts": {s: self.count(s) for s in SEVERITIES},
            "rules": [asdict(r) for r in self.runs],
            "findings": [f.to_dict() for f in self.findings],
        }
