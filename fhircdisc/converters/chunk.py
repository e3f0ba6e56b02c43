"""One chunk of Bulk Data Observation lines -> finished LB/VS rows.

:func:`convert_lines` is a pure function of the lines and a :class:`StudyContext` (the
subjects, their reference start dates and the context resources other rows point at).
Nothing in it depends on the rest of the input, so any engine can run it over
partitions: the worker processes of :mod:`fhircdisc.converters.streaming` here, or the
partitions of a Spark or Dask job. Only --SEQ needs every row of a subject; it is numbered
after the rows are grouped by USUBJID (:func:`fhircdisc.mappings.derivations.sequence`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import chain, islice
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fhircdisc.converters.enrolment import Enrolment
from fhircdisc.converters.fhir_reader import Origin, SourceResource, parse_ndjson_line
from fhircdisc.converters.lane_block import LaneBlock
from fhircdisc.converters.resource_index import ResourceIndex
from fhircdisc.mappings import derivations
from fhircdisc.mappings.terminology import Terminology
from fhircdisc.report import ConversionReport, FailedLines, UnmappedItem, ValueIssueItem

if TYPE_CHECKING:
    from fhircdisc.converters.observation_batch import LineBatch

#: a lane row: (domain, template, subject, own values, source, line, visit values,
#: component number), as ``LaneBlock.add`` takes it
BlockRow = tuple[str, Any, Any, tuple[Any, ...], str, int, Any, int | None]

#: NDJSON lines whose top-level resource is an Observation (``resourceType`` first, as
#: Bulk Data servers write it); other lines are read with the study context
OBSERVATION_LINE = re.compile(rb'[ \t]*\{[ \t]*"resourceType"[ \t]*:[ \t]*"Observation"')
STREAMED_DOMAINS = ("LB", "VS")
_DAY_PAIRS = {"LB": (("LBDTC", "LBDY"),), "VS": (("VSDTC", "VSDY"),)}

Ordinal = tuple[int, int, int]
"""Read order of a resource: (file rank, line number or 0, resource number in the file)."""


def is_streamed_line(line: bytes) -> bool:
    """Whether an NDJSON line is an Observation converted chunk by chunk."""
    return OBSERVATION_LINE.match(line) is not None


@dataclass
class StudyContext:
    """What a chunk needs from the rest of the input (small: subjects, not results)."""

    index: ResourceIndex
    enrolment: Enrolment
    terminology: Terminology
    #: USUBJID -> RFSTDTC, for study days
    reference: dict[str, str | None]
    #: the worker's fast path, made on first use (keeps caches across chunks)
    lane: Any = field(default=None, repr=False, compare=False)

    @cached_property
    def starts(self) -> dict[str, int | None]:
        """Each subject's RFSTDTC as the study days read it
        (:func:`~fhircdisc.mappings.derivations.start_ordinals`), made once."""
        return derivations.start_ordinals(self.reference)


@dataclass
class ColumnStats:
    """What choosing a dataset's columns needs to know of a variable over all rows."""

    present: bool = False
    numeric: bool = True

    def merge(self, other: ColumnStats) -> None:
        self.present |= other.present
        self.numeric &= other.numeric


@dataclass
class ChunkResult:
    """The rows of one chunk (read order) and its share of the conversion report."""

    #: rows made as dicts (lines read the parsed way, the general engine), in read order
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: the fast lane's rows, as columns (they come before ``rows``)
    blocks: dict[str, LaneBlock] = field(default_factory=dict)
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    unmapped: list[UnmappedItem] = field(default_factory=list)
    #: the Observation lines the fast lane reported itself (their items, made when needed)
    failed: FailedLines = field(default_factory=lambda: FailedLines("Observation"))
    value_issues: list[ValueIssueItem] = field(default_factory=list)
    #: domain -> variable -> stats, over this chunk's rows
    stats: dict[str, dict[str, ColumnStats]] = field(default_factory=dict)
    #: domain -> whether every row carried its own --SEQ
    fixed_seq: dict[str, bool] = field(default_factory=dict)

    def items_handed_over(self) -> None:
        """Forget the unmapped items, failed lines and value issues, once the report (or
        its runs on disk) holds them."""
        self.unmapped, self.value_issues = [], []
        self.failed = FailedLines(self.failed.resource_type)


def convert_lines(lines: Iterable[tuple[int, bytes]], file: str, file_rank: int,
                  context: StudyContext, finish: bool = True) -> ChunkResult:
    """Map the Observation lines of one file (``(line number, bytes)``) to LB/VS rows.

    Rows come back finished but for --SEQ: values carried in ``sdtm-variable``
    extensions applied, study days derived, ``_order`` set to the read order; the lines
    read from their text (a batch at a time, ``observation_batch.read_batch``, those a
    batch leaves one by one in their places) as one :class:`LaneBlock` per domain, the
    others as dicts.
    Without ``finish``, the blocks come back unfrozen, with neither study days nor
    column facts (their domains hold an empty place in ``stats``, before the dict rows'
    facts): the caller joins the blocks of several files, then calls
    :func:`finish_block` once.
    """
    from fhircdisc.converters.fhir_to_sdtm import COMPILED
    from fhircdisc.converters.observation_batch import (
        ALONE_BATCHES,
        BATCH_LINES,
        BATCH_SHARE,
        read_batch,
    )
    from fhircdisc.converters.observation_lane import (
        DECLINED,
        LineFailure,
        ObservationLane,
        line_key,
    )

    if context.lane is None:
        context.lane = ObservationLane(context.index, context.enrolment, context.terminology)
    lane = context.lane
    result = ChunkResult()
    rows: dict[str, list[dict[str, Any]]] = {}
    blocks: dict[str, LaneBlock] = {}
    ordinals: list[Ordinal] = []
    others: list[SourceResource] = []
    other_ordinals: list[Ordinal] = []
    issues = result.value_issues
    fail = result.failed.add            # lines reported as the general engine would

    def block_of(domain: str) -> LaneBlock:
        block = blocks.get(domain)
        if block is None:
            block = blocks[domain] = LaneBlock(COMPILED[domain], file, file_rank)
        return block

    def report(number: int, failure: LineFailure) -> None:
        fail(file, number, line_key(failure.rid, file, number), failure.error)

    def one_line(number: int, line: bytes, decoded: Any) -> list[BlockRow] | int:
        """One line of a batch read on its own: its lane rows; else -1 when it is
        reported as unmapped, 0 when it went another way."""
        parts = lane.read_line(line, decoded)
        if parts is not None:
            if parts.__class__ is LineFailure:
                report(number, parts)
                return -1
            domain, template, subject, own, rid, visit = parts
            return [(domain, template, subject, own,
                     lane.note(domain, rid, file, number, template.issues, issues)
                     if template.issues else line_key(rid, file, number), number, visit, None)]
        panel = lane.read_panel(line) if b'"component"' in line else None
        if panel.__class__ is LineFailure:
            report(number, panel)
            return -1
        if panel is not None:
            return [(domain, template, subject, own,
                     lane.note(domain, rid, file, number, template.issues, issues),
                     number, visit, component)
                    for domain, template, subject, own, rid, visit, component in panel]
        data = parse_ndjson_line(line, number, file)
        mapped = lane.map(data, file, number, issues)
        if mapped is None:
            others.append(SourceResource(data, Origin(file, f"line {number}")))
            other_ordinals.append((file_rank, number, 0))
            return 0
        domain, row = mapped
        row["_order"] = len(ordinals)
        ordinals.append((file_rank, number, 0))
        rows.setdefault(domain, []).append(row)
        result.outcomes[("Observation", "mapped")] += 1
        return 0

    def block_rows(batch: LineBatch, numbers: Sequence[int], alone: list[tuple[int, BlockRow]]
                   ) -> None:
        """A batch's lane rows into their blocks, in line order: those read together, and
        ``alone``, those of lines read on their own (with each line's place)."""
        places = batch.taken
        lines_of = list(map(numbers.__getitem__, places))
        ids: list[Any] = batch.ids
        sources = ["Observation/" + rid for rid in ids] if all(ids) else [
            line_key(rid or "", file, number)
            for rid, number in zip(ids, lines_of, strict=True)]
        kinds = dict.fromkeys(batch.domains)
        if alone:
            kinds.update(dict.fromkeys(row[0] for _, row in alone))
        if sum(domain not in blocks for domain in kinds) > 1:
            # blocks are made in the order their domains' first rows come
            first: dict[str, int] = {}
            for place, domain in zip(places, batch.domains, strict=True):
                first.setdefault(domain, place)
            for place, row in alone:
                first[row[0]] = min(first.get(row[0], place), place)
            kinds = dict.fromkeys(sorted(kinds, key=first.__getitem__))
        columns: list[list[Any]] = [batch.templates, batch.subjects, sources, lines_of,
                                    batch.visits]
        for domain in kinds:
            pick = _picker([at for at, d in enumerate(batch.domains) if d == domain]) \
                if len(kinds) > 1 else _whole
            templates, subjects, sources_of, lines_at, visits = map(pick, columns)
            own = list(map(pick, batch.own))
            components: list[int | None] | None = None
            rows_alone = [(place, row) for place, row in alone if row[0] == domain]
            if rows_alone:
                # the rows of lines read on their own in their places (a panel's in order)
                more = list(zip(*(row for _, row in rows_alone), strict=True))
                at = pick(places) + [place for place, _ in rows_alone]
                order = _picker(sorted(range(len(at)), key=at.__getitem__))
                templates, subjects, sources_of, lines_at, visits = (
                    order(first + list(more[place])) for first, place in zip(
                        (templates, subjects, sources_of, lines_at, visits), (1, 2, 4, 5, 6),
                        strict=True))
                components = order([None] * len(own[0]) + list(more[7]))
                extra = list(zip(*more[3], strict=True))
                # a domain with no row of the batch's own: its places may be others
                own = [order(values + list(added)) for values, added in zip(
                    own if own[0] else [[]] * len(extra), extra, strict=True)]
            block_of(domain).extend(templates, subjects, own, sources_of, lines_at, visits,
                                    components)

    taken = failed = 0
    one_by_one = 0                      # batches' worth of lines to read one by one
    for numbers, texts in _batches(lines, BATCH_LINES):
        if one_by_one:
            one_by_one -= 1
            for number, line in zip(numbers, texts, strict=True):
                outcome = one_line(number, line, DECLINED)
                if isinstance(outcome, list):
                    for row in outcome:
                        block_of(row[0]).add(*row[1:])
                    taken += 1
                else:
                    failed += outcome < 0
            continue
        batch = read_batch(lane, texts)
        if len(batch.taken) < len(texts) * BATCH_SHARE:
            # lines of other kinds cost more in a batch than one by one
            one_by_one = ALONE_BATCHES
        alone: list[tuple[int, BlockRow]] = []
        if len(batch.taken) < len(texts):
            for place in sorted(set(range(len(texts))).difference(batch.taken)):
                failure = batch.failures.get(place)
                if failure is not None:
                    report(numbers[place], failure)
                    failed += 1
                    continue
                outcome = one_line(numbers[place], texts[place],
                                   batch.decoded.get(place, DECLINED))
                if isinstance(outcome, list):
                    alone += [(place, row) for row in outcome]
                    taken += 1
                else:
                    failed += outcome < 0
        if batch.taken or alone:
            block_rows(batch, numbers, alone)
        taken += len(batch.taken)
    if taken:
        result.outcomes[("Observation", "mapped")] += taken
    if failed:
        result.outcomes[("Observation", "unmapped")] += failed
    if others:
        _reference(others, other_ordinals, context, rows, result, ordinals)
    for domain, block in blocks.items():
        result.blocks[domain] = block
        result.stats[domain] = finish_block(domain, block, context) if finish else {}
        result.fixed_seq[domain] = False
    for domain, domain_rows in rows.items():
        finish_rows(domain, domain_rows, ordinals, context.reference)
        result.rows[domain] = domain_rows
        stats = result.stats.setdefault(domain, {})
        for name, column in column_stats(domain_rows).items():
            stats.setdefault(name, ColumnStats(False, True)).merge(column)
        result.fixed_seq[domain] = result.fixed_seq.get(domain, True) and \
            derivations.all_fixed(domain_rows, f"{domain}SEQ")
    return result


_NUMBER = itemgetter(0)
_TEXT = itemgetter(1)


class NumberedLines:
    """The lines of a file from line ``first`` on, one after the other (``lines``):
    iterated as ``(number, line)``, and read by :func:`convert_lines` a batch at a time
    as a range of numbers and a list of lines, without a tuple a line."""

    def __init__(self, first: int, lines: Iterator[bytes]) -> None:
        self.first = first
        self.lines = lines

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        return enumerate(self.lines, self.first)

    def batches(self, size: int) -> Iterator[tuple[range, list[bytes]]]:
        """The lines ``size`` at a time, with their numbers."""
        first = self.first
        while texts := list(islice(self.lines, size)):
            yield range(first, first + len(texts)), texts
            first += len(texts)


def _batches(lines: Iterable[tuple[int, bytes]], size: int
             ) -> Iterator[tuple[Sequence[int], list[bytes]]]:
    """Numbered lines ``size`` at a time, as their numbers and their texts."""
    if isinstance(lines, NumberedLines):
        yield from lines.batches(size)
        return
    source = iter(lines)
    while chunk := list(islice(source, size)):
        yield list(map(_NUMBER, chunk)), list(map(_TEXT, chunk))


def _whole(values: list[Any]) -> list[Any]:
    return values


def _picker(places: list[int]) -> Callable[[list[Any]], list[Any]]:
    """A function giving the items at ``places`` of a list, as a list."""
    if not places:
        return lambda values: []
    if len(places) == 1:
        only = places[0]
        return lambda values: [values[only]]
    get = itemgetter(*places)
    return lambda values: list(get(values))


def finish_block(domain: str, block: LaneBlock, context: StudyContext
                 ) -> dict[str, ColumnStats]:
    """Freeze a lane block of ``domain`` after its last row and give its rows their study
    days; its column facts."""
    block.freeze()
    for dtc_var, dy_var in _DAY_PAIRS.get(domain, ()):
        if dy_var in block.names:
            tabled = block.table("USUBJID")
            subjects, places = tabled if tabled is not None \
                else (block.column("USUBJID"), None)
            block.set_column(dy_var, derivations.days_of(
                subjects, block.column(dtc_var), context.reference, places,
                context.starts))
    return block_stats(block)


def _reference(resources: list[SourceResource], own: list[Ordinal], context: StudyContext,
               rows: dict[str, list[dict[str, Any]]], result: ChunkResult,
               ordinals: list[Ordinal]) -> None:
    """Resources the lane does not take, through the general engine."""
    from fhircdisc.converters.fhir_to_sdtm import Converter

    report = ConversionReport()
    for resource in resources:
        report.read(resource.type, resource.report_key)
    converter = Converter(context.index, context.enrolment, context.terminology, report)
    mapped = converter._map_range(resources, 0, len(resources))
    for key, status in report.status.items():
        result.outcomes[(report.types[key], status)] += 1
    result.unmapped.extend(report.unmapped)
    result.value_issues.extend(report.value_issues)
    base = len(ordinals)
    ordinals.extend(own)
    for domain, domain_rows in mapped.items():
        for row in domain_rows:
            row["_order"] += base
        if domain_rows:
            rows.setdefault(domain, []).extend(domain_rows)


def finish_rows(domain: str, rows: list[dict[str, Any]], ordinals: list[Ordinal],
                reference: dict[str, str | None]) -> None:
    """Carried values, study days and read order on mapped rows (in place)."""
    derivations.apply_carried(rows)
    derivations.study_days(rows, reference, _DAY_PAIRS.get(domain, ()))
    for row in rows:
        row["_order"] = ordinals[row["_order"]]


def column_stats(rows: list[dict[str, Any]]) -> dict[str, ColumnStats]:
    """Per variable: whether it has a value, and whether every value is a number."""
    names = [name for name in dict.fromkeys(chain.from_iterable(rows))
             if not name.startswith("_")]
    columns: Iterable[tuple[Any, ...]]
    try:
        if len(names) < 2:
            raise KeyError
        columns = zip(*map(itemgetter(*names), rows), strict=True)
    except KeyError:                        # rows without some of the variables
        columns = (tuple(row.get(name) for row in rows) for name in names)
    return {name: _column_stats(column) for name, column in zip(names, columns, strict=True)}


_NUMBERS = frozenset({int, float})
_TEXT_OR_NUMBERS = frozenset({str, int, float})


def block_stats(block: LaneBlock) -> dict[str, ColumnStats]:
    """:func:`column_stats` of the rows of a block, from their distinct values where the
    templates or the subjects give them."""
    stats: dict[str, ColumnStats] = {}
    if not len(block):
        return stats
    own: dict[int, ColumnStats] = {}        # variables sharing an array of own values
    for name in block.names:
        if name.startswith("_"):
            continue
        distinct = block.distinct(name)
        if distinct is not None:
            stats[name] = _column_stats(tuple(distinct))
            continue
        values = block.own[name]
        found = own.get(id(values))
        if found is None:
            # a result text still to make is a text: the column has one
            found = own[id(values)] = ColumnStats(True, False) \
                if block.derived and name in block.text_vars else _own_stats(values)
        stats[name] = ColumnStats(found.present, found.numeric)
    return stats


def _own_stats(values: np.ndarray) -> ColumnStats:
    """:func:`_column_stats` of an object column: a column of texts or of floats (what
    most own values are) told at once."""
    kind = pd.api.types.infer_dtype(values, skipna=True)   # (None and NaN skipped)
    if kind == "string":                                  # texts, some maybe missing
        return ColumnStats(True, False)
    if kind == "empty":                                   # nothing but None and NaN
        return ColumnStats(False)
    if kind == "floating":                                # floats, some maybe missing
        return ColumnStats(bool(pd.notna(values).any()))
    return _column_stats(tuple(values.tolist()))


def _column_stats(values: tuple[Any, ...]) -> ColumnStats:
    kinds = set(map(type, values))
    kinds.discard(type(None))
    if not kinds:                                          # nothing but None (study days
        return ColumnStats(False)                          # of subjects without a start)
    if kinds <= _NUMBERS:
        return ColumnStats(int in kinds or any(v == v for v in values if v.__class__ is float))
    if str in kinds and kinds <= _TEXT_OR_NUMBERS:
        return ColumnStats(True, False)
    column = ColumnStats()
    for value in values:
        if value is None or value != value:
            continue
        column.present = True
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            column.numeric = False
            break
    return column
