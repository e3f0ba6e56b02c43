"""Row findings of a streamed conversion, kept on disk until the report is written.

A dataset in which every row breaks a rule (a coded result no codelist knows, in each
of a million lab rows) has a finding per row: held in memory, they grow with the input.
Each finished bucket's row findings are pickled as a *run*, in the order its check gave
them: rule by rule in the rule table's order, rows in order; so are the row findings of
the datasets made in memory (DM: a hospital export's DM can have one a Patient). The
report's findings are then a merge of the runs, rows renumbered from the dataset's
start, with the findings kept in memory (the dataset-level ones), which gives the order
a stable sort of them all gives.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from fhircdisc.report_runs import read_run, write_run
from fhircdisc.schemas.findings import Finding, Severity, ValidationResult

Key = tuple[str, int]
"""(dataset, bucket)"""


@dataclass
class BankedFindings:
    """The row findings of one bucket on disk, with their counts."""

    path: Path
    #: rule -> findings
    rules: Counter[str]
    #: severity -> findings
    severities: Counter[str]


def bank(folder: Path, key: Key, findings: list[Finding]
         ) -> tuple[list[Finding], BankedFindings | None]:
    """Put the findings of bucket ``key`` that name a row into a run in ``folder``; give
    back the others, and the run (None when there is no such finding)."""
    rows = [finding for finding in findings if finding.row is not None]
    if not rows:
        return findings, None
    path = folder / f"{key[0]}.{key[1]:05d}.pkl"
    write_run(path, rows)
    return ([finding for finding in findings if finding.row is None],
            BankedFindings(path, Counter(finding.rule_id for finding in rows),
                           Counter(finding.severity for finding in rows)))


class FindingRuns:
    """The runs of row findings of finished buckets, in ``folder``."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.paths: dict[Key, Path] = {}
        #: severity -> row findings on disk
        self.severities: Counter[str] = Counter()

    def add(self, key: Key, banked: BankedFindings) -> None:
        """Count in the run of bucket ``key`` (once)."""
        if key not in self.paths:
            self.paths[key] = banked.path
            self.severities.update(banked.severities)

    def merged(self, memory: list[Finding], starts: Iterable[tuple[Key, int]],
               order: Callable[[Finding], Any]) -> Iterator[Finding]:
        """Every finding in ``order``: those of ``memory`` (sorted in that order) and the
        runs of the buckets ``starts`` lists (in the order they were checked), each
        bucket's rows counted from its start row in the dataset. Findings that tie keep
        that order, ``memory`` first."""
        runs = [_moved(read_run(self.paths[key]), start) for key, start in starts
                if key in self.paths]
        return heapq.merge(memory, *runs, key=order)


def _moved(findings: Iterator[Finding], rows: int) -> Iterator[Finding]:
    for finding in findings:
        yield finding.moved(rows)


@dataclass
class StreamedValidation(ValidationResult):
    """The conformance result of a streamed conversion. ``findings`` holds the
    dataset-level ones; the row findings, of the streamed datasets and of those made in
    memory, are counted in ``stored`` (by severity) and are in the report file only."""

    stored: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, result: ValidationResult) -> StreamedValidation:
        return cls(**{item.name: getattr(result, item.name) for item in fields(result)})

    def count(self, severity: Severity) -> int:
        return super().count(severity) + self.stored[severity]

    def to_dict(self) -> dict[str, Any]:
        if sum(self.stored.values()):
            raise RuntimeError("the row findings of the streamed datasets were written to "
                               "the report file; read them from there")
        return super().to_dict()

    def head(self) -> dict[str, Any]:
        """``to_dict`` with an empty list of findings (they are written a batch at a
        time), and the counts of them all."""
        document = super().to_dict()
        document["findings"] = []
        return document


__all__ = ["BankedFindings", "FindingRuns", "StreamedValidation", "bank"]
