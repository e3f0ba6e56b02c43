"""Readable terminal summaries of a conversion (rich tables)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fhircdisc.converters.sdtm_to_fhir import FhirReport
from fhircdisc.report import ConversionReport
from fhircdisc.study import Study

#: Unmapped reasons that mean the input has a problem (exit code 1), as opposed to
#: resources that are simply outside what SDTM DM/EX/LB/VS/AE/TS hold.
PROBLEM_REASONS = frozenset({
    "missing-subject", "invalid-date", "missing-resourceType", "entry-without-resource",
    "not-a-resource", "invalid-research-subject", "unknown-code", "missing-element",
    "unresolved-reference", "invalid-element",
})


def problems(report: ConversionReport) -> int:
    """How many unmapped items are input problems rather than out-of-scope resources."""
    return sum(n for code, n in report.reasons().items() if code in PROBLEM_REASONS)


def datasets_of(study: Study) -> dict[str, tuple[int, int]]:
    """Rows and subjects of each dataset of a study."""
    return {name: (len(frame), int(frame["USUBJID"].nunique()) if "USUBJID" in frame else 0)
            for name, frame in study.domains.items()}


def print_summary(report: ConversionReport, datasets: dict[str, tuple[int, int]],
                  console: Console, out_dir: Path | None = None) -> None:
    """Rows per domain, resources per type, unmapped reasons and where files went.

    ``datasets``: domain -> (rows, subjects), e.g. :func:`datasets_of` of a study.
    """
    rows = Table(title="SDTM datasets", show_edge=False)
    rows.add_column("domain")
    rows.add_column("rows", justify="right")
    rows.add_column("subjects", justify="right")
    for name, (count, subjects) in datasets.items():
        rows.add_row(name, str(count), str(subjects) if subjects else "")
    console.print(rows)
    resources = Table(title=f"FHIR {report.fhir_version} resources", show_edge=False)
    for column in ("type", "read", "mapped", "context", "unmapped"):
        resources.add_column(column, justify="left" if column == "type" else "right")
    for rtype, counts in report.counts().items():
        resources.add_row(rtype, *(str(counts[c]) for c in ("read", "mapped", "context",
                                                             "unmapped")))
    console.print(resources)
    reasons_found = report.reasons()
    if reasons_found:
        reasons = ", ".join(f"{code} {n}" for code, n in reasons_found.items())
        console.print(f"unmapped: {report.unmapped_count} resource(s) ({reasons})")
    else:
        console.print("unmapped: 0 — every resource became a row or was used as context")
    if report.issue_count:
        console.print(f"value issues: {report.issue_count} (see the report)")
    if not report.reconciles():
        console.print("[red]counts do not reconcile: this is a bug, please report it[/red]")
    if out_dir is not None:
        console.print(f"written to {out_dir}")


def print_fhir_summary(report: FhirReport, console: Console, out_dir: Path | None = None
                       ) -> None:
    """Rows in per dataset, resources out per type, rejected rows, carried variables."""
    rows = Table(title="SDTM datasets read", show_edge=False)
    for column in ("dataset", "rows", "converted", "rejected"):
        rows.add_column(column, justify="left" if column == "dataset" else "right")
    rejected = Counter(r.dataset for r in report.rejected if r.row is not None)
    for name, count in report.rows_in.items():
        rows.add_row(name, str(count), str(report.rows_converted.get(name, 0)),
                     str(rejected.get(name, 0)))
    console.print(rows)
    out = Table(title=f"FHIR {report.fhir_version} resources written", show_edge=False)
    out.add_column("type")
    out.add_column("count", justify="right")
    for rtype, count in sorted(report.resources_out.items()):
        out.add_row(rtype, str(count))
    console.print(out)
    for item in report.rejected[:20]:
        where = f"row {item.row}" if item.row else "dataset"
        console.print(f"rejected: {item.file} [{where}, {item.variable}]: {item.message}")
    carried = sorted((f"{d}.{v}" for d, c in report.carried.items() for v in c))
    if carried:
        console.print(f"carried in the sdtm-variable extension: {len(carried)} variable(s) "
                      "(see the report)")
    if out_dir is not None:
        console.print(f"written to {out_dir}")
