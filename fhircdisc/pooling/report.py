"""The pooling report: every harmonization step, its changes and what it could not resolve.

``PoolingReport.to_dict()`` is the JSON written beside the pooled datasets;
:func:`print_report` is the terminal summary (rich).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from fhircdisc.pooling.ct_versions import AppliedRename, ValueOutsideCt
from fhircdisc.pooling.ids import Collision, IdMapRow
from fhircdisc.pooling.testcodes import SharedTestCode, TestCodeChange

REPORT_NAME = "pooling-report.json"
ID_MAP_NAME = "usubjid-map.csv"


@dataclass(frozen=True)
class StudySummary:
    study: str
    source: str
    kind: str
    ct_version: str
    ct_version_source: str | None
    subjects: int
    rows: dict[str, int] = field(hash=False)


@dataclass(frozen=True)
class TargetUnit:
    domain: str
    test: str
    unit: str
    reason: str
    units_found: dict[str, int] = field(hash=False)   # unit -> rows


@dataclass(frozen=True)
class UnitConversionRecord:
    study: str
    domain: str
    test: str
    from_unit: str
    to_unit: str
    from_ucum: str
    to_ucum: str
    factor: float
    offset: float
    molecular_weight: float | None
    valence: int | None
    n_rows: int


@dataclass(frozen=True)
class Unconvertible:
    study: str
    domain: str
    usubjid: str | None
    seq: float | None
    test: str
    unit: str | None
    target_unit: str
    reason: str
    message: str


@dataclass(frozen=True)
class VariablesAdded:
    """Variables of the pooled dataset that one study lacked (its rows hold nulls there)."""

    study: str
    domain: str
    variables: tuple[str, ...]


@dataclass(frozen=True)
class TypeChange:
    """A variable whose type differed between studies, and what the pool made of it."""

    domain: str
    variable: str
    pooled_type: str
    types: dict[str, str] = field(hash=False)     # study -> type as read
    reason: str = ""


@dataclass(frozen=True)
class Conflict:
    """Something the pooling could not resolve on its own, down to the record."""

    kind: str
    study: str
    domain: str | None
    usubjid: str | None
    record: str | None        # e.g. "LBSEQ=12" or "row 3"
    variable: str | None
    value: str | None
    message: str


@dataclass
class PoolingReport:
    """What pooling did, step by step (see the module docstring)."""

    studies: list[StudySummary] = field(default_factory=list)
    id_map: list[IdMapRow] = field(default_factory=list)
    id_collisions: list[Collision] = field(default_factory=list)
    subjects_without_dm: dict[str, list[str]] = field(default_factory=dict)
    target_units: list[TargetUnit] = field(default_factory=list)
    unit_conversions: list[UnitConversionRecord] = field(default_factory=list)
    unconvertible: list[Unconvertible] = field(default_factory=list)
    test_code_changes: list[TestCodeChange] = field(default_factory=list)
    shared_test_codes: list[SharedTestCode] = field(default_factory=list)
    ct_reference: str = ""
    ct_renames: list[AppliedRename] = field(default_factory=list)
    ct_values_outside: list[ValueOutsideCt] = field(default_factory=list)
    variables_added: list[VariablesAdded] = field(default_factory=list)
    type_changes: list[TypeChange] = field(default_factory=list)
    row_counts: dict[str, dict[str, int]] = field(default_factory=dict)   # domain -> study/POOLED
    conflicts: list[Conflict] = field(default_factory=list)

    @property
    def ct_versions(self) -> dict[str, str]:
        return {s.study: s.ct_version for s in self.studies}

    @property
    def ct_versions_differ(self) -> bool:
        return len(set(self.ct_versions.values())) > 1

    @property
    def id_changes(self) -> list[IdMapRow]:
        return [row for row in self.id_map if row.changed]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (plain dicts and lists)."""
        return {
            "studies": [_plain(s) for s in self.studies],
            "summary": self.summary(),
            "usubjid": {
                "rule": "a USUBJID found in several studies is prefixed with STUDYID in each "
                        "of them; subjects are never merged",
                "collisions": [_plain(c) for c in self.id_collisions],
                "id_map": [{**_plain(r), "changed": r.changed} for r in self.id_map],
                "subjects_without_dm": self.subjects_without_dm,
            },
            "units": {
                "rule": "per test, the unit of most results across the pooled studies; ties "
                        "broken by the terminology's unit of the test; factors from UCUM",
                "targets": [_plain(t) for t in self.target_units],
                "conversions": [_plain(c) for c in self.unit_conversions],
                "unconvertible": [_plain(u) for u in self.unconvertible],
            },
            "test_codes": {
                "rule": "prefer the test code the terminology maps the row's LOINC code to",
                "changes": [_plain(c) for c in self.test_code_changes],
                "shared_test_codes": [_plain(s) for s in self.shared_test_codes],
            },
            "controlled_terminology": {
                "reference": self.ct_reference,
                "versions": self.ct_versions,
                "differ": self.ct_versions_differ,
                "renames": [_plain(r) for r in self.ct_renames],
                "values_outside_reference": [_plain(v) for v in self.ct_values_outside],
            },
            "variables": {
                "added": [_plain(v) for v in self.variables_added],
                "type_changes": [_plain(t) for t in self.type_changes],
            },
            "row_counts": self.row_counts,
            "conflicts": [_plain(c) for c in self.conflicts],
        }

    def summary(self) -> dict[str, int]:
        return {
            "studies": len(self.studies),
            "subjects": len(self.id_map),
            "usubjid_collisions": len(self.id_collisions),
            "usubjid_changed": len(self.id_changes),
            "unit_conversions": len(self.unit_conversions),
            "rows_converted": sum(c.n_rows for c in self.unit_conversions),
            "unconvertible_results": len(self.unconvertible),
            "test_code_changes": sum(c.n_rows for c in self.test_code_changes),
            "ct_renames": sum(r.n_rows for r in self.ct_renames),
            "variables_added": sum(len(v.variables) for v in self.variables_added),
            "conflicts": len(self.conflicts),
        }


def _plain(item: Any) -> Any:
    return dataclasses.asdict(item)


# ------------------------------------------------------------------------------ terminal

def print_report(report: PoolingReport, console: Console, out_dir: Path | None = None,
                 *, conflict_limit: int = 20) -> None:
    """A short terminal account of the pooling: studies, each step, conflicts."""
    studies = Table(title="Pooled studies", show_edge=False)
    for name in ("study", "source", "CT", "subjects", "rows"):
        studies.add_column(name, justify="right" if name == "subjects" else "left",
                           overflow="fold")
    for s in report.studies:
        rows = ", ".join(f"{d} {n}" for d, n in s.rows.items())
        studies.add_row(s.study, s.source, s.ct_version, str(s.subjects), rows)
    console.print(studies)

    counts = Table(title="Rows per dataset", show_edge=False)
    counts.add_column("dataset")
    names = [s.study for s in report.studies]
    for name in names:
        counts.add_column(name, justify="right")
    counts.add_column("pooled", justify="right")
    for domain, per in report.row_counts.items():
        counts.add_row(domain, *(str(per[n]) if n in per else "-" for n in names),
                       str(per.get("POOLED", 0)))
    console.print(counts)

    steps = Table(title="Harmonization", show_edge=False)
    steps.add_column("step", no_wrap=True)
    steps.add_column("result", overflow="fold")
    changed = report.id_changes
    steps.add_row("USUBJID", f"{len(report.id_collisions)} collision(s); {len(changed)} "
                  f"subject(s) renamed (STUDYID prefix); {len(report.id_map)} subjects kept")
    converted = sum(c.n_rows for c in report.unit_conversions)
    steps.add_row("units", f"{len(report.unit_conversions)} conversion(s), {converted} result(s) "
                  f"converted; {len(report.unconvertible)} not convertible")
    for conv in report.unit_conversions:
        steps.add_row("", f"{conv.study} {conv.domain} {conv.test}: {conv.from_unit} -> "
                      f"{conv.to_unit} x{conv.factor:g}"
                      + (f" {conv.offset:+g}" if conv.offset else "")
                      + (f" (MW {conv.molecular_weight:g} g/mol)" if conv.molecular_weight
                         else "") + f", {conv.n_rows} row(s)")
    steps.add_row("test codes", f"{sum(c.n_rows for c in report.test_code_changes)} row(s) "
                  f"recoded by LOINC; {len(report.shared_test_codes)} test code(s) with "
                  "several LOINC codes")
    for change in report.test_code_changes:
        steps.add_row("", f"{change.study} {change.domain} {change.from_testcd} -> "
                      f"{change.to_testcd} (LOINC {change.loinc}), {change.n_rows} row(s)")
    versions = ", ".join(f"{k} {v}" for k, v in report.ct_versions.items())
    steps.add_row("CT versions", f"{versions} (reference {report.ct_reference})"
                  + ("; DIFFERENT" if report.ct_versions_differ else ""))
    if report.ct_renames or report.ct_values_outside:
        steps.add_row("", f"{sum(r.n_rows for r in report.ct_renames)} value(s) renamed; "
                      f"{len(report.ct_values_outside)} value(s) not in CT "
                      f"{report.ct_reference} (reported)")
    added = sum(len(v.variables) for v in report.variables_added)
    steps.add_row("variables", f"{added} variable(s) kept with nulls in studies lacking them; "
                  f"{len(report.type_changes)} type change(s)")
    console.print(steps)

    if report.conflicts:
        table = Table(title=f"Conflicts ({len(report.conflicts)})", show_edge=False)
        for name in ("kind", "study", "subject", "record", "message"):
            table.add_column(name, overflow="fold")
        for c in report.conflicts[:conflict_limit]:
            table.add_row(c.kind, c.study, c.usubjid or "", c.record or "", c.message)
        console.print(table)
        if len(report.conflicts) > conflict_limit:
            console.print(f"... and {len(report.conflicts) - conflict_limit} more in the report")
    else:
        console.print("No conflicts.")
    if out_dir is not None:
        console.print(f"Written to {out_dir} ({REPORT_NAME}, {ID_MAP_NAME})")
