"""Validation results in the terminal (rich): counts, the findings, rules that did not run.

User data (values, messages, subject ids) is printed as plain text, never read as
rich markup.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from rich.console import Console
from rich.table import Table
from rich.text import Text

from fhircdisc.schemas.findings import SEVERITIES, Finding, RuleRun, ValidationResult

SEVERITY_STYLES = {"error": "bold red", "warning": "yellow", "notice": "cyan"}
STATUS_STYLES = {"success": "green", "issues": "yellow", "skipped": "dim", "error": "bold red"}
_SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}
_STATUS_RANK = {"error": 0, "issues": 1, "skipped": 2, "success": 3}


def format_seq(seq: float | None) -> str:
    """--SEQ as written: ``3`` rather than ``3.0``."""
    if seq is None or seq != seq:  # None or NaN
        return ""
    return str(int(seq)) if float(seq).is_integer() else f"{seq:g}"


def ordered_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Errors first, then warnings, then notices; within one severity, as found."""
    return sorted(findings, key=lambda f: _SEVERITY_RANK.get(f.severity, len(SEVERITIES)))


def ordered_runs(runs: Iterable[RuleRun]) -> list[RuleRun]:
    """Failed runs first, then runs with issues, skipped, successful; else as run."""
    return sorted(runs, key=lambda r: _STATUS_RANK.get(r.status, len(_STATUS_RANK)))


def print_findings(result: ValidationResult, console: Console, limit: int = 50) -> None:
    """Counts per dataset and severity, up to ``limit`` findings, and rules not run."""
    _print_counts(result, console)
    findings = ordered_findings(result.findings)
    if findings:
        _print_table(findings[:max(limit, 0)], console)
        if len(findings) > limit:
            console.print(Text(f"... and {len(findings) - max(limit, 0)} more "
                               "(see the JSON/HTML report)", style="bold"))
    _print_runs(result.runs, console)


def _print_counts(result: ValidationResult, console: Console) -> None:
    title = f"{result.kind} validation of {result.target}" if result.target else (
        f"{result.kind} validation")
    if not result.findings:
        console.print(Text(f"{title}: no findings", style="green"))
        return
    counts = Counter((f.dataset, f.severity) for f in result.findings)
    table = Table(title=title, show_edge=False)
    table.add_column("dataset")
    for severity in SEVERITIES:
        table.add_column(severity, justify="right", style=SEVERITY_STYLES[severity])
    table.add_column("total", justify="right")
    names = sorted({f.dataset for f in result.findings})
    for name in names:
        row = [counts.get((name, s), 0) for s in SEVERITIES]
        table.add_row(Text(name), *(str(n) if n else "" for n in row), str(sum(row)),
                      end_section=name == names[-1])
    table.add_row(Text("all", style="bold"), *(str(result.count(s)) for s in SEVERITIES),
                  str(len(result.findings)))
    console.print(table)


#: Below this console width the findings table puts where a finding is in one column.
COMPACT_WIDTH = 120


def _print_table(findings: list[Finding], console: Console) -> None:
    table = Table(title="findings", show_edge=False)
    compact = console.width < COMPACT_WIDTH
    columns = ("rule", "severity", "where") if compact else (
        "rule", "severity", "dataset", "row", "USUBJID", "--SEQ", "variable")
    for column in columns:
        # Identifiers stay on one line; value and message wrap on a narrow terminal.
        table.add_column(column, justify="right" if column in ("row", "--SEQ") else "left",
                         no_wrap=column != "where",
                         min_width=18 if column == "where" else None)
    if not compact:
        table.add_column("value", overflow="fold", max_width=40)
    table.add_column("message", overflow="fold")
    for f in findings:
        severity = Text(f.severity, style=SEVERITY_STYLES.get(f.severity, ""))
        value = Text("(null)", style="dim") if f.value is None else Text(f.value)
        if compact:
            where = " ".join(p for p in (f.dataset, "" if f.row is None else f"row {f.row}",
                                         f.variable or "") if p)
            subject = " ".join(p for p in (f.usubjid or "",
                                           f"seq {format_seq(f.seq)}" if f.seq is not None
                                           else "") if p)
            table.add_row(Text(f.rule_id), severity,
                          Text("\n".join(p for p in (where, subject) if p)),
                          Text.assemble(f.message, "\n", ("value: ", "dim"), value))
        else:
            table.add_row(Text(f.rule_id), severity, Text(f.dataset),
                          Text("" if f.row is None else str(f.row)), Text(f.usubjid or ""),
                          Text(format_seq(f.seq)), Text(f.variable or ""), value,
                          Text(f.message))
    console.print(table)


def _print_runs(runs: list[RuleRun], console: Console) -> None:
    if not runs:
        return
    statuses: Counter[str] = Counter(r.status for r in runs)
    parts = [Text(f"rules: {len(runs)} run — ")]
    for i, status in enumerate(("success", "issues", "skipped", "error")):
        if i:
            parts.append(Text(", "))
        parts.append(Text(f"{statuses.get(status, 0)} {status}",
                          style=STATUS_STYLES[status] if statuses.get(status) else ""))
    console.print(Text.assemble(*parts))
    not_run = [r for r in ordered_runs(runs) if r.status in ("skipped", "error")]
    if not not_run:
        return
    table = Table(title="rules that did not run (not passed)", show_edge=False)
    table.add_column("rule")
    table.add_column("status")
    table.add_column("reason", overflow="fold")
    for run in not_run:
        table.add_row(Text(run.rule_id), Text(run.status, style=STATUS_STYLES[run.status]),
                      Text(run.reason or ""))
    console.print(table)
