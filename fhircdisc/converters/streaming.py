"""FHIR -> SDTM for Bulk Data exports larger than memory, straight into the output folder.

Same rows, values, report and files as :func:`fhircdisc.to_sdtm` followed by
``Study.write``; what differs is where the rows live. Three passes:

1. **Context** (:func:`prepare`). Every file is read once. NDJSON lines that are
   Observations (the bulk of an export) are only counted and their place noted, as
   :class:`Task` chunks; everything else (Patients, ResearchSubjects, Encounters,
   Specimens, exposures, adverse events, Bundles) is read, indexed and mapped as in the
   in-memory engine, and DM is derived, which gives each subject's reference start date.
2. **Observations.** Each chunk is mapped with
   :func:`fhircdisc.converters.chunk.convert_lines`; its rows are grouped in *buckets*
   (:func:`by_bucket`): consecutive ranges of subjects in USUBJID order. The chunks'
   report shares and column facts are folded together (:func:`settle`), which completes
   the :class:`DatasetPlan`.
3. **Datasets.** Bucket by bucket, rows are sorted, --SEQ numbered and typed, and
   checked by the conformance rules (:func:`finish_bucket`); then
   :func:`write_output` writes them, in bucket order, through the streaming dataset
   writers, with the small datasets, provenance and report.

Passes 2 and 3 are the engine's part. :func:`stream_to_sdtm` runs them in forked worker
processes that spill rows to disk by bucket; :mod:`fhircdisc.converters.spark_engine`
runs them as Spark jobs. Memory here holds the context resources, one chunk per worker
and one bucket per worker, never the whole input.
"""

from __future__ import annotations

import gc
import gzip
import io
import math
import os
import pickle
import queue
import shutil
import threading
import time
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache, partial
from itertools import chain, islice, repeat
from multiprocessing.pool import AsyncResult, Pool
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from fhircdisc.column_values import ColumnValues, PackedFrame, pack_frame, text_or_none

# Pass 2 reads lines with observation_batch; pass 3 and the writers use dataset_stream,
# conformance and these encoders: imported here, not where first used, the forked
# workers have them from the start (each would import them again otherwise: 0.2 s a
# worker when Python keeps no bytecode)
from fhircdisc.converters import csv_io, dataset_json, observation_batch, xpt  # noqa: F401
from fhircdisc.converters.atomic import cannot_write, publish, staging_folder
from fhircdisc.converters.chunk import (
    STREAMED_DOMAINS,
    ChunkResult,
    ColumnStats,
    NumberedLines,
    Ordinal,
    StudyContext,
    column_stats,
    convert_lines,
    finish_block,
    finish_rows,
    is_streamed_line,
)
from fhircdisc.converters.dataset_stream import (
    EncodedRows,
    EncodedXpt,
    encode_apart,
    merge_stats,
    open_dataset_writer,
    stats_of,
    write_piece,
)
from fhircdisc.converters.datasets import write_dataset
from fhircdisc.converters.enrolment import Enrolment
from fhircdisc.converters.fhir_reader import (
    GZIP_READ_ERRORS,
    LineResource,
    Origin,
    ReadProblem,
    SourceResource,
    expand_sources,
    is_ndjson,
    line_items,
    parse_ndjson_line,
    read_file,
)
from fhircdisc.converters.fhir_to_sdtm import SPECS, Converter, read_context
from fhircdisc.converters.lane_block import (
    ABSENT,
    LaneBlock,
    gathered,
    joined,
    object_array,
)
from fhircdisc.converters.processes import can_fork, forked_pool
from fhircdisc.converters.provenance_rows import line_tails, tabled_provenance
from fhircdisc.converters.resource_index import ResourceIndex
from fhircdisc.errors import InputError
from fhircdisc.finding_runs import BankedFindings, FindingRuns, StreamedValidation, bank
from fhircdisc.mappings import derivations
from fhircdisc.mappings import terminology as terminology_module
from fhircdisc.mappings.terminology import Terminology
from fhircdisc.report import ConversionReport
from fhircdisc.report_runs import SharedRuns
from fhircdisc.schemas.conformance import validate_sdtm
from fhircdisc.schemas.conformance.context import Dataset
from fhircdisc.schemas.ct import codelists
from fhircdisc.schemas.findings import Finding, RuleRun, RunStatus, ValidationResult
from fhircdisc.streamed_json import write_streamed
from fhircdisc.study import (
    PROVENANCE_NAME,
    REPORT_NAME,
    Study,
    csv_rows,
    csv_texts,
    dataset_meta,
    relative_files,
    relative_names,
    relative_path,
    tidy_columns,
    typed_frame,
)

#: Observation lines per chunk handed to a worker
CHUNK_LINES = 40_000
#: rows per bucket aimed at (a bucket is sorted and written in one piece)
BUCKET_ROWS = 50_000
_HIDDEN = list(derivations.HIDDEN)
_DATASET_RANK = {name: rank for rank, name in enumerate(("DM", "EX", "AE", "LB", "VS", "TS"))}

Rows = list[dict[str, Any]]
Parts = list[LaneBlock | Rows]
"""Rows in read order: lane blocks and lists of row dicts."""
Key = tuple[str, int]
"""(domain, bucket): the rows of one range of subjects of a streamed dataset."""


@dataclass
class StreamResult:
    """What a streamed conversion wrote, with its report and conformance findings."""

    report: ConversionReport
    written: list[Path]
    validation: ValidationResult | None = None
    #: domain -> (rows, subjects)
    datasets: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: seconds spent in each pass (``context``, ``observations``, ``datasets``,
    #: ``writing``) when the local engine ran it
    timings: dict[str, float] = field(default_factory=dict)
    #: CPU seconds of each pass, summed over the main process and its workers (user and
    #: system time; the workers' counted once they have ended, as each pass ends them)
    cpu: dict[str, float] = field(default_factory=dict)


@dataclass
class Task:
    """One chunk of Observation lines: a byte range of a file (``file`` names it in the
    report), read from ``path`` when that is set: the uncompressed copy of a gzipped file,
    which cannot be read from an offset."""

    number: int
    file: str
    rank: int
    start: int = 0
    stop: int = 0
    first_line: int = 1
    path: str | None = None
    #: whether the byte range holds lines other than Observations (read in pass 1)
    mixed: bool = False
    #: how many Observation lines it holds
    size: int = 0


@dataclass
class SubjectBuckets:
    """Subjects cut into ``count`` consecutive ranges of USUBJID (their sort order)."""

    count: int
    exact: dict[str, int]
    #: the first USUBJID of each bucket
    starts: list[str]

    @classmethod
    def make(cls, usubjids: list[str], count: int) -> SubjectBuckets:
        """``count`` buckets of about as many subjects each (``usubjids`` sorted)."""
        exact = {u: i * count // max(1, len(usubjids)) for i, u in enumerate(usubjids)}
        starts: list[str] = []
        for usubjid, bucket in exact.items():
            if bucket == len(starts):
                starts.append(usubjid)
        return cls(count, exact, starts)

    def of(self, usubjid: str | None) -> int:
        """The bucket of a row: its subject's, or, for a USUBJID the enrolment does not
        know (one carried in an ``sdtm-variable`` extension), where it sorts."""
        found = self.exact.get(usubjid or "")
        if found is not None:
            return found
        return max(0, bisect_right(self.starts, usubjid or "") - 1)


@dataclass
class DatasetPlan:
    """What finishing a bucket of a streamed dataset needs, known once every chunk is
    mapped: the columns kept, which are numeric, whether --SEQ is carried, and DM for the
    conformance rules. Small and picklable, for any engine's workers."""

    columns: dict[str, list[str]] = field(default_factory=dict)
    all_columns: dict[str, list[str]] = field(default_factory=dict)
    numeric: dict[str, set[str]] = field(default_factory=dict)
    fixed_seq: dict[str, bool] = field(default_factory=dict)
    dm: pd.DataFrame | None = None
    dm_meta: Any = None
    validate: bool = True
    #: the output folder, which the provenance's file names are made relative to
    out: Path | None = None
    #: the output formats: a finished bucket carries its rows encoded for each of them
    #: (``FinishedBucket.encoded``), and its frame only when one of them needs it
    formats: tuple[str, ...] = ()

    def meta(self, domain: str) -> Any:
        """Writer metadata of a streamed dataset."""
        return dataset_meta(domain, self.columns[domain], self.numeric[domain])

    def dm_dataset(self) -> Any:
        """DM as the conformance rules see it, made once per process: the column codes
        the cross-dataset rules make of it (USUBJID, RFSTDTC ...) serve every bucket
        after the first, instead of 100,000 subjects coded again for each."""
        made = self.__dict__.get("_dm_dataset")
        if made is None:
            assert self.dm is not None
            made = self.__dict__["_dm_dataset"] = Dataset(
                "DM", self.dm.reset_index(drop=True), self.dm_meta)
        return made

    def __getstate__(self) -> dict[str, Any]:
        return {name: value for name, value in self.__dict__.items() if name != "_dm_dataset"}


@dataclass
class Setup:
    """What pass 1 leaves to the engine that runs passes 2 and 3."""

    out: Path
    formats: list[str]
    creation_datetime: str
    #: the Observation lines, chunk by chunk, in read order
    tasks: list[Task]
    report: ConversionReport
    #: the datasets made whole in pass 1 (DM, EX, AE, TS)
    small: Study
    context: StudyContext
    #: USUBJID -> bucket
    buckets: SubjectBuckets
    bucket_count: int
    #: columns, numeric types and --SEQ carrying are completed by :func:`settle`
    plan: DatasetPlan
    #: LB/VS rows of Observations read in pass 1 (in Bundles), as a chunk read first
    early: ChunkResult
    #: the row findings of finished buckets, once :func:`keep_findings_on_disk` is called
    finding_runs: FindingRuns | None = None
    #: Observation lines per task, at most (tasks end with their file)
    chunk_lines: int = CHUNK_LINES

    def streamed(self) -> list[str]:
        """The streamed datasets that have rows, in writing order (once settled)."""
        return [domain for domain in STREAMED_DOMAINS if domain in self.plan.columns]

    def bucket_keys(self) -> list[Key]:
        """Every (domain, bucket) of the streamed datasets, in writing order."""
        return [(domain, bucket) for domain in self.streamed()
                for bucket in range(self.bucket_count)]


@dataclass
class Piece:
    """A finished bucket as the writing step sees it before its rows: their count, the
    writer statistics and the conformance results."""

    domain: str
    bucket: int
    rows: int
    subjects: int
    stats: Any
    findings: list[Finding]
    runs: list[RuleRun]
    #: the row findings, once on disk (:func:`bank_findings`): then not in ``findings``
    banked: BankedFindings | None = None


@dataclass
class FinishedBucket:
    """One bucket of a dataset, ready to write.

    ``provenance`` is its rows of the provenance table, as CSV lines. ``coded`` holds the
    columns of ``frame`` already made into codes (by the conformance checks); with them
    the bucket pickles as integer codes and distinct values. ``encoded`` holds its rows
    encoded for each output format that could take them before the rest of the dataset
    was known (``dataset_stream.encode_apart``). When every output format is there, the
    bucket pickles without its frame, unless a writer may still turn the encoded rows
    down (Dataset-JSON rows whose integer columns turn out double in the dataset): then
    the frame waits in a file of its own (:meth:`park`), read only when needed, or
    travels with the bucket.
    """

    frame: pd.DataFrame | None
    provenance: bytes
    stats: Any
    findings: list[Finding]
    runs: list[RuleRun]
    coded: dict[str, ColumnValues] = field(default_factory=dict)
    encoded: dict[str, EncodedXpt | EncodedRows] = field(default_factory=dict)
    #: some output format has no encoded rows: the writers need the frame
    needs_frame: bool = True
    #: where the frame waits when only a writer turning encoded rows down needs it
    parked: Path | None = None
    rows: int = 0
    subjects: int = 0

    def may_need_frame(self) -> bool:
        """Whether a writer may need the frame: an output format has no encoded rows, or
        Dataset-JSON rows encoded with an integer column that the dataset may hold as
        double."""
        return self.needs_frame or any(
            getattr(piece, "fmt", "") in ("json", "ndjson")
            and "integer" in piece.stats.num_kinds.values() for piece in self.encoded.values())

    def park(self, path: Path) -> None:
        """Keep the frame in ``path`` (with its codes) instead of in the bucket, when the
        writers need it only if they turn encoded rows down."""
        if self.needs_frame or self.frame is None or not self.may_need_frame():
            return
        packed = pack_frame(self.frame, self.coded)
        with path.open("wb") as handle:
            pickle.dump(packed if packed is not None else (self.frame, self.coded), handle,
                        protocol=pickle.HIGHEST_PROTOCOL)
        self.parked = path

    def whole(self) -> tuple[pd.DataFrame, dict[str, ColumnValues]]:
        """The frame and its codes, read back from where it was parked if need be."""
        if self.frame is None and self.parked is not None:
            with self.parked.open("rb") as handle:
                kept = pickle.load(handle)
            self.parked.unlink()
            self.parked = None
            if isinstance(kept, PackedFrame):
                self.frame, self.coded = kept.frame(), kept.column_values()
            else:
                self.frame, self.coded = kept
        assert self.frame is not None, "a finished bucket without its frame"
        return self.frame, self.coded

    def discard(self) -> None:
        """Remove the parked frame, once no writer needs it."""
        if self.parked is not None:
            self.parked.unlink(missing_ok=True)
            self.parked = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if not self.needs_frame and (self.parked is not None or not self.may_need_frame()):
            state["frame"], state["coded"] = None, {}
        elif self.frame is not None:
            packed = pack_frame(self.frame, self.coded)
            if packed is not None:
                state["frame"], state["coded"] = packed, {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if isinstance(state["frame"], PackedFrame):
            state["coded"] = state["frame"].column_values()
            state["frame"] = state["frame"].frame()
        self.__dict__.update(state)

    def piece(self, domain: str, bucket: int) -> Piece:
        """This bucket without its rows."""
        return Piece(domain, bucket, self.rows, self.subjects, self.stats, self.findings,
                     self.runs)


def stream_to_sdtm(sources: Iterable[str | Path], out_dir: str | Path,
                   formats: Iterable[str] = ("xpt",), *, study_id: str | None = None,
                   site_id: str | None = None, subjects: str | Path | None = None,
                   fhir_version: str = "auto", terminology: Iterable[str | Path] = (),
                   enrol_all: bool = False, workers: int | None = None,
                   progress: Callable[[str, int], None] | None = None, validate: bool = True,
                   creation_datetime: str | None = None, chunk_lines: int = CHUNK_LINES,
                   bucket_rows: int = BUCKET_ROWS) -> StreamResult:
    """Convert FHIR input to SDTM files in ``out_dir`` without holding the Observations
    in memory. Arguments as :func:`fhircdisc.to_sdtm` and ``Study.write``; ``validate``
    puts the conformance findings in the report. Output is written into a staging folder
    and moved into ``out_dir`` only when every file succeeded.

    ``progress(label, count)`` is told the resources read so far with the file being
    read, then, once every resource is read, with the step under way (``finishing
    datasets: 3 of 40 buckets``, ``writing the output files``)."""
    with fewer_collections(), staging_folder(Path(out_dir)) as staging:
        start, spent = time.perf_counter(), _cpu_seconds()
        setup = prepare(sources, out_dir, formats, study_id=study_id, site_id=site_id,
                        subjects=subjects, fhir_version=fhir_version,
                        terminology=terminology, enrol_all=enrol_all, progress=progress,
                        validate=validate, creation_datetime=creation_datetime,
                        chunk_lines=chunk_lines, bucket_rows=bucket_rows,
                        work=input_folder(staging))
        context, context_cpu = time.perf_counter() - start, _cpu_seconds() - spent
        result = _stream(setup, staging, max(1, workers or os.cpu_count() or 1), progress)
        result.timings = {"context": context, **result.timings}
        result.cpu = {"context": context_cpu, **result.cpu}
        return result


def _cpu_seconds() -> float:
    """User and system seconds of this process and of its ended child processes."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Millions of short-lived rows next to a long-lived context: the cyclic garbage
    collector runs less often, and not over the context :func:`prepare` froze."""
    threshold = gc.get_threshold()
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


# -- pass 1: context ---------------------------------------------------------------------------
def prepare(sources: Iterable[str | Path], out_dir: str | Path,
            formats: Iterable[str] = ("xpt",), *, study_id: str | None = None,
            site_id: str | None = None, subjects: str | Path | None = None,
            fhir_version: str = "auto", terminology: Iterable[str | Path] = (),
            enrol_all: bool = False, progress: Callable[[str, int], None] | None = None,
            validate: bool = True, creation_datetime: str | None = None,
            chunk_lines: int = CHUNK_LINES, bucket_rows: int = BUCKET_ROWS,
            work: Path | None = None) -> Setup:
    """Pass 1: read the context, make the small datasets, cut the Observation lines into
    tasks and the subjects into buckets. Arguments as :func:`stream_to_sdtm`; ``work``:
    the folder a gzipped NDJSON file is decompressed into, once, before it is scanned
    (its tasks read their lines from there), needed when there is one. The gzipped
    files are decompressed, one after the other, on a thread of their own while the
    files before them are scanned.

    The context read here is then left out of garbage collection (``gc.freeze``); call
    this inside :func:`fewer_collections`, which gives it back.
    """
    sources = list(sources)
    stamp = creation_datetime or datetime.now(UTC).replace(microsecond=0).isoformat()
    terms = terminology_module.load(terminology)

    def mapped(items: list[SourceResource | ReadProblem]) -> _MappedContext:
        return _map_context(items, [str(s) for s in sources], terms, study_id=study_id,
                            site_id=site_id, subjects=subjects, fhir_version=fhir_version,
                            enrol_all=enrol_all)

    with _reading_context(expand_sources(sources), chunk_lines, progress, work) as reading:
        # mapped while the large files of Observations are cut in other processes
        context_map = mapped(reading.items)
        if reading.finish():        # one of them held other resources too: in their place
            context_map = mapped(reading.items)
    report, enrolment = context_map.report, context_map.enrolment
    usubjids = sorted(s.usubjid for s in enrolment.subjects.values())
    expected = reading.streamed + sum(len(r) for r in context_map.early.values())
    count = max(1, min(len(usubjids), math.ceil(expected / bucket_rows)))
    formats = list(dict.fromkeys(formats))
    small = context_map.small
    plan = DatasetPlan(dm=small.domains.get("DM"), validate=validate, out=Path(out_dir),
                       formats=tuple(formats))
    if plan.dm is not None:
        plan.dm_meta = small.meta("DM")
    context = StudyContext(context_map.index, enrolment, terms, context_map.reference)
    _ = context.starts                  # made once here, shared by the forked workers
    gc.freeze()
    return Setup(Path(out_dir), formats, stamp, reading.tasks, report, small, context,
                 SubjectBuckets.make(usubjids, count), count, plan,
                 _early_rows(context_map.early, reading.ordinals, context_map.reference),
                 chunk_lines=chunk_lines)


@dataclass
class _MappedContext:
    """What pass 1 makes of the resources it reads: the report so far, the index and
    enrolment, the small datasets, the LB/VS rows of resources read here (Observations in
    Bundles), and each subject's reference start date."""

    report: ConversionReport
    index: ResourceIndex
    enrolment: Enrolment
    small: Study
    early: dict[str, Rows]
    reference: dict[str, str | None]


def _map_context(items: list[SourceResource | ReadProblem], sources: list[str],
                 terms: Terminology, **options: Any) -> _MappedContext:
    """Map the resources pass 1 read (``options``: the subjects' and study's, as
    :func:`~fhircdisc.converters.fhir_to_sdtm.read_context` takes them)."""
    report, resources, index, enrolment = read_context(
        items, sources=sources, terminology=terms, **options)
    rows = Converter(index, enrolment, terms, report).run(resources, 1)
    early = {domain: rows.pop(domain, []) for domain in STREAMED_DOMAINS}
    frames = derivations.derive(rows, SPECS)
    reference = {row["USUBJID"]: row.get("RFSTDTC") for row in rows.get("DM", [])}
    # a hospital export has a row per Patient here: each copy goes as soon as it is used
    del rows, resources
    small = Study.from_frames(frames, report=report)
    del frames
    return _MappedContext(report, index, enrolment, small, early, reference)


def input_folder(staging: Path) -> Path:
    """The folder in a run's staging folder for the uncompressed copies of its gzipped
    input (see :func:`prepare`)."""
    return staging / ".input"


def _read_context(files: list[Path], chunk_lines: int,
                  progress: Callable[[str, int], None] | None, work: Path | None = None
                  ) -> tuple[list[SourceResource | ReadProblem], list[Ordinal], list[Task], int]:
    """Read everything but the Observation lines; cut those into tasks (``work``: as in
    :func:`prepare`): the resources read, their ordinals, the tasks and how many lines
    they hold."""
    with _reading_context(files, chunk_lines, progress, work) as reading:
        reading.finish()
    return reading.items, reading.ordinals, reading.tasks, reading.streamed


@contextmanager
def _reading_context(files: list[Path], chunk_lines: int,
                     progress: Callable[[str, int], None] | None, work: Path | None = None
                     ) -> Iterator[_ContextReading]:
    """Pass 1's read of ``files`` (as :func:`_read_context`), the files that may hold
    nothing but Observation lines in their usual form (of at least :data:`CUT_MIN_BYTES`,
    beginning with such a line) cut in forked processes (:class:`_TaskCuts`): every other
    file is read on entering, the cuts are taken by :meth:`_ContextReading.finish`; those
    not yet taken are given up on leaving."""
    zipped = [(rank, path) for rank, path in enumerate(files)
              if is_ndjson(path) and path.name.lower().endswith(".gz")]
    # (where the system does not fork, every file is scanned here, block by block)
    plain = [(rank, path) for rank, path in enumerate(files)
             if is_ndjson(path) and not path.name.lower().endswith(".gz")
             and _size(path) >= CUT_MIN_BYTES and _starts_usual(path)] \
        if can_fork() else []
    # the cutting processes forked first, while this process runs no other thread
    with _TaskCuts(plain, chunk_lines) as cutting, \
            _Decompressions(zipped, work) as unzipping:
        reading = _ContextReading(files, _ContextScan(chunk_lines, progress, work, unzipping),
                                  cutting)
        reading.scan_others()
        yield reading


def _starts_usual(path: Path) -> bool:
    """Whether the file begins with an Observation line in its usual form."""
    try:
        with path.open("rb") as handle:
            return handle.read(len(_USUAL_START)) == _USUAL_START
    except OSError:
        return False                    # its scan reports why


class _ContextReading:
    """The resources, ordinals and tasks of pass 1, read in two steps:
    :meth:`scan_others` reads every file that is not being cut in another process,
    :meth:`finish` takes the cuts, scanning in its place a file that held other lines,
    and puts everything in file order (the order a scan of one file after the other
    gives)."""

    def __init__(self, files: list[Path], scan: _ContextScan, cutting: _TaskCuts) -> None:
        self.files = files
        self.scan = scan
        self.cutting = cutting
        #: each scanned file's rank and the range of ``scan.items`` it read
        self.spans: list[tuple[int, int, int]] = []
        self.items: list[SourceResource | ReadProblem] = scan.items
        self.ordinals: list[Ordinal] = []
        self.tasks: list[Task] = []
        self.streamed = 0

    def scan_others(self) -> None:
        for rank, path in enumerate(self.files):
            if not self.cutting.cuts(rank):
                self._scan(rank, path)

    def finish(self) -> bool:
        """Take the cuts and put the resources, ordinals and tasks in file order; whether
        the resources read changed (a file being cut held lines other than Observations,
        then scanned)."""
        scan = self.scan
        before = len(scan.items)
        for rank, path in enumerate(self.files):
            if self.cutting.cuts(rank):
                cut = self.cutting.cut(rank)
                if cut is not None:
                    scan.cut(path, rank, cut)
                else:
                    self._scan(rank, path)
        changed = len(scan.items) > before
        if changed:
            self.spans.sort(key=lambda span: span[0])
            self.items = [item for _, start, stop in self.spans
                          for item in scan.items[start:stop]]
        self.ordinals = sorted(scan.ordinals, key=lambda ordinal: ordinal[0])
        self.tasks = sorted(scan.tasks, key=lambda task: task.rank)
        for number, task in enumerate(self.tasks):
            task.number = number
        self.streamed = scan.streamed
        return changed

    def _scan(self, rank: int, path: Path) -> None:
        scan = self.scan
        start = len(scan.items)
        if not is_ndjson(path):
            number_in_file = 0
            for item in read_file(path):
                scan.items.append(item)
                if isinstance(item, SourceResource):
                    number_in_file += 1
                    scan.ordinals.append((rank, 0, number_in_file))
        elif path.name.lower().endswith(".gz"):
            scan.gzipped(path, rank)
        else:
            scan.plain(path, rank)
        self.spans.append((rank, start, len(scan.items)))


@dataclass(frozen=True)
class _Cut:
    """A file of nothing but Observation lines in their usual form, cut into tasks:
    where each task starts (byte offset, line number), and the file's lines and bytes."""

    starts: list[tuple[int, int]]
    lines: int
    size: int


def _cut_observations(path: Path, chunk_lines: int) -> _Cut | None:
    """The tasks :meth:`_ContextScan.plain` cuts a file into when each of its lines is an
    Observation in its usual form; None for any other file (then given up at its first
    other line)."""
    starts: list[tuple[int, int]] = []
    number = 1
    size = 0
    for offset, data, end in _blocks(path):
        breaks, count, usual = _block_lines(data, end)
        if not usual:
            return None
        # the lines of the block are number .. number + count - 1; a task starts at each
        # line whose place in the file is a multiple of chunk_lines
        for index in range((1 - number) % chunk_lines, count, chunk_lines):
            starts.append((offset + (0 if index == 0 else int(breaks[index - 1]) + 1),
                           number + index))
        number += count
        size = offset + end
    return _Cut(starts, number - 1, size)


class _TaskCuts:
    """The uncompressed NDJSON files of a run, each cut into tasks
    (:func:`_cut_observations`) in forked processes, in file order, while the main
    process reads the other files and maps the context (on threads, the cuts would wait
    for the interpreter lock at each of their steps); those not yet taken are given up
    when the read fails."""

    def __init__(self, plain: list[tuple[int, Path]], chunk_lines: int) -> None:
        self.plain = plain
        self.chunk_lines = chunk_lines
        self.pool: Pool | None = None
        self.jobs: dict[int, AsyncResult[_Cut | None]] = {}

    def __enter__(self) -> _TaskCuts:
        if self.plain:
            self.pool = forked_pool(min(CUT_PROCESSES, len(self.plain)))
            for rank, path in self.plain:
                self.jobs[rank] = self.pool.apply_async(_cut_observations,
                                                        (path, self.chunk_lines))
        return self

    def cuts(self, rank: int) -> bool:
        """Whether the ``rank``-th file is being cut (and its cut not taken yet)."""
        return rank in self.jobs

    def cut(self, rank: int) -> _Cut | None:
        """The cut of the ``rank``-th file; None when it is to be scanned line by line."""
        job = self.jobs.pop(rank, None)
        return None if job is None else job.get()

    def __exit__(self, *failure: object) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()


#: how many files are cut into tasks at once (see :class:`_TaskCuts`), and the smallest
#: file worth it (handing a small file to a process costs more than scanning it)
CUT_PROCESSES = 2
CUT_MIN_BYTES = 4 * 2**20


def _size(path: Path) -> int:
    """The size of a file in bytes; 0 when it cannot be told (its scan reports why)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


class _Stopped(Exception):
    """A decompression given up: the scan failed before it needed the file."""


#: how much text the decompression thread asks for at a time: each read takes the
#: interpreter lock back from the scan, which may hold it for a switch interval
UNZIP_STEP = 8 * 2**20


class _Decompression:
    """One gzipped file being decompressed into its copy on a thread of its own (zlib
    lets other threads run while it inflates)."""

    def __init__(self, path: Path, copy: Path, pool: ThreadPoolExecutor,
                 stop: threading.Event) -> None:
        self.copy = copy
        #: bytes of text written so far (set by the thread, read by the scan)
        self.written = 0
        self._stop = stop
        self.future = pool.submit(_decompress, path, copy, UNZIP_STEP, self._wrote)

    def _wrote(self, size: int) -> None:
        if self._stop.is_set():
            raise _Stopped
        self.written = size


class _Decompressions:
    """The gzipped files of a run, decompressed ahead of the scan, in file order, on one
    thread (two at once are slower: writing their text is what limits them); those not
    yet needed are given up when the scan fails."""

    def __init__(self, zipped: list[tuple[int, Path]], work: Path | None) -> None:
        self.zipped = zipped
        self.work = work
        self.pool: ThreadPoolExecutor | None = None
        self.stop = threading.Event()
        self.jobs: dict[int, _Decompression] = {}

    def __enter__(self) -> _Decompressions:
        if self.zipped and self.work is not None:
            self.work.mkdir(exist_ok=True)
            self.pool = ThreadPoolExecutor(1, thread_name_prefix="gunzip")
            for rank, path in self.zipped:
                self.jobs[rank] = _Decompression(path, _gzipped_copy(self.work, rank),
                                                 self.pool, self.stop)
        return self

    def __exit__(self, *failure: object) -> None:
        if self.pool is not None:
            self.stop.set()          # every job the scan needed is over by now
            self.pool.shutdown(wait=True, cancel_futures=True)


def _gzipped_copy(work: Path, rank: int) -> Path:
    """Where the text of the ``rank``-th input file, gzipped, is written in ``work``."""
    return work / f".{rank:05d}.ndjson"


#: resources pass 1 holds as their NDJSON lines: an export has one per Patient or visit,
#: all held until the end, and read a few times (Patients twice; an Encounter twice, then
#: twice per worker for the visit, once per Observation the fast lane does not take)
_HELD_AS_TEXT = frozenset({"Patient", "Encounter"})
#: how much of an NDJSON file pass 1 reads at a time: small blocks, for the memory the
#: allocator keeps (with 16 MiB blocks the main process peaked 30 MB higher, as fast)
SCAN_BLOCK = 2**20
#: how much of a gzipped file's text is decompressed between two progress calls
TELL_EVERY = 64 * 2**20
#: the usual start of an Observation line, checked for every line of a block at once
_USUAL_START = b'{"resourceType":"Observation"'
#: its bytes, and their places after a line's start
_USUAL_BYTES = np.frombuffer(_USUAL_START, dtype=np.uint8)
_USUAL_PLACES = np.arange(len(_USUAL_START))


class _ContextScan:
    """Pass 1 over the files: the resources read, and the Observation lines cut into
    tasks of ``chunk_lines`` lines."""

    def __init__(self, chunk_lines: int, progress: Callable[[str, int], None] | None,
                 work: Path | None = None, unzipping: _Decompressions | None = None
                 ) -> None:
        self.chunk_lines = chunk_lines
        self.progress = progress
        self.work = work
        self.unzipping = unzipping
        self.items: list[SourceResource | ReadProblem] = []
        self.ordinals: list[Ordinal] = []
        self.tasks: list[Task] = []
        self.streamed = 0
        self.read = 0
        self.current: Task | None = None
        self.in_task = 0
        self.in_file = 0

    def _take(self, line: bytes, number: int, file: str, rank: int) -> None:
        if not line.strip():
            return
        data = parse_ndjson_line(line, number, file)
        rtype = data.get("resourceType") if isinstance(data, dict) else None
        items: Iterable[SourceResource | ReadProblem]
        if rtype.__class__ is str and rtype in _HELD_AS_TEXT:
            # the usual context line (a Patient, an Encounter): read as it is held
            items = (LineResource.read(data, line, Origin(file, f"line {number}")),)
        else:
            items = line_items(data, number, file)
        for item in items:
            self.items.append(item)
            if isinstance(item, SourceResource):
                self.in_file += 1
                self.ordinals.append((rank, number, self.in_file))

    def _tick(self, file: str, lines: int) -> None:
        before = self.read
        self.read += lines
        if self.progress is not None and before // 20_000 != self.read // 20_000:
            self.progress(file, len(self.ordinals))    # Observations are counted in pass 2

    def _streamed_line(self, file: str, rank: int, number: int, offset: int,
                       path: str | None) -> None:
        """Count one streamed line in, at ``offset`` of the file (read from ``path``)."""
        self.streamed += 1
        if self.current is None or self.in_task == self.chunk_lines:
            if self.current is not None:
                self.current.stop = offset
            self.current = Task(len(self.tasks), file, rank, start=offset, first_line=number,
                                path=path)
            self.tasks.append(self.current)
            self.in_task = 0
        self.in_task += 1
        self.current.size += 1

    def gzipped(self, path: Path, rank: int) -> None:
        """A gzipped file: decompressed into the work folder, that copy cut into tasks as
        :meth:`plain` cuts a file (a gzipped file cannot be read from an offset; the copy
        can, and nothing holds its lines). A damaged file is read up to its last whole
        line before the damage, then refused. The progress is told of every
        :data:`TELL_EVERY` bytes of text decompressed."""
        job = None if self.unzipping is None else self.unzipping.jobs.get(rank)
        if self.work is None or job is None:
            raise ValueError("reading a gzipped NDJSON file needs a work folder")
        told = 0
        while True:
            over = _wait_for(job.future, 0.25)
            if self.progress is not None:
                for _ in range(job.written // TELL_EVERY - told):
                    self.progress(f"{path} (decompressing)", len(self.ordinals))
                told = max(told, job.written // TELL_EVERY)
            if over:
                break
        damage = job.future.result()
        copy = job.copy
        start = self.read
        self.plain(copy, rank, str(path))
        if damage is not None:
            lines = self.read - start
            raise InputError(f"cannot read file: {damage}", str(path),
                             f"after line {lines}" if lines else None) from damage

    def cut(self, path: Path, rank: int, cut: _Cut) -> None:
        """A file of nothing but Observation lines, already cut into tasks (the ones
        :meth:`plain` cuts)."""
        file = str(path)
        starts = cut.starts
        for place, (start, first) in enumerate(starts):
            stop, after = starts[place + 1] if place + 1 < len(starts) \
                else (cut.size, cut.lines + 1)
            self.tasks.append(Task(len(self.tasks), file, rank, start=start, stop=stop,
                                   first_line=first, size=after - first))
        self.streamed += cut.lines
        self.current = None
        self._tick(file, cut.lines)

    def plain(self, path: Path, rank: int, name: str | None = None) -> None:
        """An uncompressed file, a block at a time: a block of nothing but Observation
        lines in their usual form is cut into tasks without looking at each line.
        ``name``: the file as the report names it, when ``path`` is its copy."""
        file = name or str(path)
        copy = None if name is None else str(path)
        self.current, self.in_file = None, 0
        number = 1
        for offset, data, end in _blocks(path):
            breaks, count, usual = _block_lines(data, end)
            if usual:
                self._streamed_run(file, rank, number, offset, breaks, count, copy)
            else:
                block = data[:end]
                position = offset
                for index, line in enumerate(block.removesuffix(b"\n").split(b"\n")):
                    text = line.rstrip(b"\r")
                    if is_streamed_line(text):
                        self._streamed_line(file, rank, number + index, position, copy)
                    else:
                        if self.current is not None:
                            self.current.mixed = True
                        self._take(text, number + index, file, rank)
                    position += len(line) + 1
            number += count
            self._tick(file, count)
        if self.current is not None and self.current.stop == 0:
            self.current.stop = path.stat().st_size

    def _streamed_run(self, file: str, rank: int, number: int, offset: int,
                      ends: np.ndarray, count: int, path: str | None) -> None:
        """``count`` lines that are all Observations (``ends``: where their line breaks
        are in the block): only where tasks start is worked out."""
        index = 0
        while index < count:
            if self.current is not None and self.in_task < self.chunk_lines:
                take = min(self.chunk_lines - self.in_task, count - index)
                self.in_task += take
                self.current.size += take
                self.streamed += take
                index += take
                continue
            start = 0 if index == 0 else int(ends[index - 1]) + 1
            self._streamed_line(file, rank, number + index, offset + start, path)
            index += 1


def _blocks(path: Path) -> Iterator[tuple[int, bytes, int]]:
    """``(offset, data, end)``: the file in blocks of whole lines, ``data[:end]`` (the
    last may lack its end)."""
    offset = 0
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            # never more than what is left: a small file's read allocates no full block
            while data := handle.read(max(1, min(SCAN_BLOCK, size - offset))):
                end = data.rfind(b"\n") + 1
                if offset + len(data) >= size:      # the last block: every byte left
                    end = len(data)
                elif end == 0:                       # a line longer than a block
                    data += handle.readline()
                    end = len(data)
                yield offset, data, end
                offset += end
                handle.seek(offset)
    except OSError as exc:
        raise InputError(f"cannot read file: {exc}", str(path)) from exc


def _block_lines(data: bytes, end: int) -> tuple[np.ndarray, int, bool]:
    """Of the lines of ``data[:end]`` (a block of :func:`_blocks`): where its line breaks
    are, how many lines it holds, and whether every one of them is an Observation in its
    usual form (begins with :data:`_USUAL_START`)."""
    text = np.frombuffer(data, dtype=np.uint8, count=end)
    breaks = np.flatnonzero(text == 10)
    count = len(breaks) + (not data.endswith(b"\n", 0, end))
    # the lines after the first start after a break (one at the very end starts none):
    # their first bytes are gathered and compared at once, not searched for in the block
    starts = breaks[:count - 1] + 1
    usual = data.startswith(_USUAL_START, 0, end) and (
        not len(starts) or (int(starts[-1]) + len(_USUAL_START) <= end and bool(
            (text[starts[:, None] + _USUAL_PLACES] == _USUAL_BYTES).all())))
    return breaks, count, usual


def _wait_for(future: Future[Any], seconds: float) -> bool:
    """Whether ``future`` is over, waiting at most ``seconds`` for it."""
    return bool(futures_wait([future], timeout=seconds).done)


def _decompress(path: Path, copy: Path, step: int = 2**20,
                wrote: Callable[[int], None] | None = None) -> Exception | None:
    """Write the text of the gzipped file ``path`` into ``copy``, read ``step`` bytes at a
    time; ``wrote(size)`` is told the bytes written so far after each write. For a damaged
    file, the error that stopped the reading, ``copy`` then holding the whole lines read
    before it: as many as the line by line read of the in-memory engine gives, a damaged
    file being read again in small steps for that (a failed read loses the text it had
    decompressed)."""
    try:
        target = copy.open("wb")
    except OSError as exc:
        raise cannot_write(str(copy), exc) from exc
    damage: Exception | None = None
    with target:
        try:   # opened apart from the reading: its errors are not the stream's damage
            source = gzip.open(path, "rb")  # noqa: SIM115
        except OSError as exc:
            raise InputError(f"cannot read file: {exc}", str(path)) from exc
        with source:
            while True:
                try:
                    data = source.read1(step)
                except GZIP_READ_ERRORS as exc:
                    damage = exc
                    break
                if not data:
                    break
                try:
                    target.write(data)
                except OSError as exc:
                    raise cannot_write(str(copy), exc) from exc
                if wrote is not None:
                    wrote(target.tell())
    if damage is not None:
        if step > io.DEFAULT_BUFFER_SIZE:
            return _decompress(path, copy, io.DEFAULT_BUFFER_SIZE, wrote)
        _cut_after_last_line(copy)          # the line cut short is not read
    return damage


def _cut_after_last_line(path: Path) -> None:
    """Truncate ``path`` after its last line break (to nothing when it has none)."""
    with path.open("r+b") as handle:
        end = handle.seek(0, os.SEEK_END)
        while end > 0:
            start = max(0, end - 2**20)
            handle.seek(start)
            found = handle.read(end - start).rfind(b"\n")
            if found >= 0:
                handle.truncate(start + found + 1)
                return
            end = start
        handle.truncate(0)


def _early_rows(early: dict[str, Rows], ordinals: list[Ordinal],
                reference: dict[str, str | None]) -> ChunkResult:
    """LB/VS rows of resources read in pass 1 (Observations in Bundles), as a chunk's."""
    result = ChunkResult()
    for domain, domain_rows in early.items():
        if not domain_rows:
            continue
        finish_rows(domain, domain_rows, ordinals, reference)
        result.rows[domain] = domain_rows
        result.stats[domain] = column_stats(domain_rows)
        result.fixed_seq[domain] = derivations.all_fixed(domain_rows, f"{domain}SEQ")
    return result


# -- pass 2: Observations ------------------------------------------------------------------------
def task_lines(task: Task) -> Iterable[tuple[int, bytes]]:
    """The Observation lines of a task, numbered, read from its file's byte range."""
    try:
        handle = open(task.path or task.file, "rb", buffering=TASK_READ)  # noqa: SIM115
    except OSError as exc:
        raise InputError(f"cannot read file: {exc}", task.file) from exc
    try:
        handle.seek(task.start)
    except OSError as exc:
        handle.close()
        raise InputError(f"cannot read file: {exc}", task.file) from exc
    if not task.mixed:
        # nothing but Observation lines, task.size of them: read a buffer at a time (a
        # line is split off while its bytes are still in the processor's cache), the
        # handle closed once they are read, the range checked to end there
        lines: Iterator[bytes] = chain(islice(handle, task.size), _range_end(handle, task))
    else:
        with handle:
            block = handle.read(task.stop - task.start)
        lines = io.BytesIO(block)
    # a line holds one line break, at its end: stripping \r\n takes it and any \r before;
    # lines found with memchr and stripped one at a time, by iterators written in C
    numbered = NumberedLines(task.first_line, map(bytes.rstrip, lines, repeat(b"\r\n")))
    if not task.mixed:
        return numbered
    return ((number, line) for number, line in numbered if is_streamed_line(line))


#: how much of a task's file is read at a time
TASK_READ = 2**20


def _range_end(handle: BinaryIO, task: Task) -> Iterator[bytes]:
    """No line: closes ``handle`` once the task's lines are read from it, and checks that
    they ended where the task's range does (they do unless the file changed since
    pass 1 read it)."""
    with handle:
        if handle.tell() != task.stop:
            raise InputError("the file changed while it was being converted", task.file,
                             f"line {task.first_line + task.size - 1}")
    yield from ()


def map_task(task: Task, context: StudyContext, finish: bool = True) -> ChunkResult:
    """Pass 2 of one chunk: its lines mapped to rows (``finish``: as
    :func:`~fhircdisc.converters.chunk.convert_lines` takes it)."""
    try:
        return convert_lines(task_lines(task), task.file, task.rank, context, finish)
    except OSError as exc:                      # the file failed while its lines were read
        raise InputError(f"cannot read file: {exc}", task.file) from exc


def by_bucket(result: ChunkResult, buckets: SubjectBuckets) -> Iterator[tuple[Key, Parts]]:
    """A chunk's rows by (domain, bucket): its lane block's share, then its rows' share,
    each in read order."""
    groups: dict[Key, Parts] = {}
    for domain, block in result.blocks.items():
        tabled = block.table("USUBJID")
        if tabled is not None:       # the subjects' buckets, then each row's subject's
            table, places = tabled
            found = list(map(buckets.exact.get, table.tolist()))  # a known subject's bucket
            if None in found:
                found = [buckets.of(u) if b is None else b
                         for u, b in zip(table.tolist(), found, strict=True)]
            of_rows = np.asarray(found, dtype=np.intp)[places]
        else:
            cache: dict[Any, int] = {}
            of_rows = np.asarray([cache[u] if u in cache else cache.setdefault(u, buckets.of(u))
                                  for u in block.column("USUBJID").tolist()], dtype=np.intp)
        taken = np.unique(of_rows).tolist()
        if len(taken) == 1:
            groups[(domain, taken[0])] = [block]
            continue
        for bucket in taken:
            groups[(domain, bucket)] = [block.take(np.flatnonzero(of_rows == bucket))]
    for domain, rows in result.rows.items():
        parts: dict[int, Rows] = {}
        for row in rows:
            parts.setdefault(buckets.of(row.get("USUBJID")), []).append(row)
        for bucket, group in parts.items():
            groups.setdefault((domain, bucket), []).append(group)
    yield from groups.items()


class ChunkProgress:
    """Reports the resources read so far, chunk by chunk, to ``progress(file, count)``,
    counting on from those ``report`` has read in pass 1; then the steps after the
    reading (:meth:`step`)."""

    def __init__(self, progress: Callable[[str, int], None] | None,
                 report: ConversionReport) -> None:
        self.progress = progress
        self.done = sum(report.read_counts.values())

    def __call__(self, task: Task, result: ChunkResult) -> None:
        self.done += sum(result.outcomes.values())
        if self.progress is not None:
            self.progress(task.file, self.done)

    def step(self, label: str) -> None:
        """The step under way, every resource read."""
        if self.progress is not None:
            self.progress(label, self.done)

    def buckets(self, total: int) -> Callable[[Key, Piece | None], None]:
        """A step of ``total`` buckets to finish: call the result as each one is done."""
        done = [0]
        self.step(f"finishing datasets: 0 of {total} buckets")

        def one(_: Key, __: Piece | None) -> None:
            done[0] += 1
            self.step(f"finishing datasets: {done[0]} of {total} buckets")
        return one


def settle(setup: Setup, shares: Iterable[ChunkResult]) -> None:
    """Fold the report shares and column facts of the pass-1 rows and of every chunk
    (``shares``, in task order) into the report and the plan."""
    stats: dict[str, dict[str, ColumnStats]] = {}
    plan = setup.plan
    for result in (setup.early, *shares):
        setup.report.settle(result.outcomes)
        bank_items(setup.report, result)
        fold_facts(stats, plan.fixed_seq, result)
    for domain, columns in stats.items():
        present = {name for name, column in columns.items() if column.present}
        plan.all_columns[domain] = list(columns) + _HIDDEN
        plan.columns[domain] = tidy_columns(domain, list(columns), present)
        plan.numeric[domain] = {name for name, column in columns.items()
                                if column.present and column.numeric}


def fold_facts(stats: dict[str, dict[str, ColumnStats]], fixed_seq: dict[str, bool],
               result: ChunkResult) -> None:
    """Fold a chunk's column facts into ``stats`` (variables in the order first seen) and
    whether every row carried its --SEQ into ``fixed_seq``, per domain."""
    for domain, columns in result.stats.items():
        merged = stats.setdefault(domain, {})
        for name, column in columns.items():
            merged.setdefault(name, ColumnStats(False, True)).merge(column)
        fixed_seq[domain] = fixed_seq.get(domain, True) and result.fixed_seq[domain]


def keep_items_on_disk(setup: Setup, staging: Path) -> None:
    """Keep the report's items in ``staging`` from now on (a long tail of unmapped
    resources does not grow the memory), those of the pass-1 rows first."""
    setup.report.keep_items_on_disk(staging / ".report-items")
    bank_items(setup.report, setup.early)


def keep_findings_on_disk(setup: Setup, staging: Path) -> None:
    """Keep the row findings of finished buckets in ``staging`` (:func:`bank_findings`)."""
    setup.finding_runs = FindingRuns(staging / ".findings")


def bank_findings(setup: Setup, piece: Piece | None) -> None:
    """Count in a finished bucket's row findings kept on disk, moving them there first if
    they are still in the piece. Done as each bucket comes in, a dataset with a finding
    in every row does not grow the memory."""
    runs = setup.finding_runs
    if piece is None or runs is None:
        return
    key = (piece.domain, piece.bucket)
    if piece.banked is None:
        piece.findings, piece.banked = bank(runs.folder, key, piece.findings)
    if piece.banked is not None:
        runs.add(key, piece.banked)


def bank_items(report: ConversionReport, result: ChunkResult) -> None:
    """Move a chunk's unmapped items and value issues into the report (in task order)."""
    report.add_items(result.unmapped, result.value_issues, result.failed)
    result.items_handed_over()


# -- pass 3: datasets ---------------------------------------------------------------------------
def finish_bucket(domain: str, parts: Parts, plan: DatasetPlan) -> FinishedBucket:
    """The rows of one bucket (every row of its subjects, in ``parts`` in read order) as
    a typed dataset piece: sorted, --SEQ numbered, provenance split off, conformance
    rules run with DM beside it."""
    seq_var = f"{domain}SEQ"
    names = plan.all_columns[domain]
    keys = SPECS[domain].seq_keys
    fixed = plan.fixed_seq[domain]
    parts = _joined_parts(parts)
    starts = np.cumsum([0, *map(len, parts)]).tolist()

    def read_key(i: int) -> tuple[Any, Any]:  # asked only for rows equal in every key
        at = bisect_right(starts, i) - 1
        part, row = parts[at], i - starts[at]
        if isinstance(part, LaneBlock):
            return part.read_place(row)
        return part[row].get("_order", 0), part[row].get("_location", "")

    sorting = [sort_column(parts, key) for key in keys]
    ranking = derivations.sequence_ranking(
        sort_column(parts, "USUBJID"), sorting,
        _present(gather(parts, [seq_var])[seq_var], None, parts, seq_var) if fixed else None,
        read_key)
    order, numbers = ranking.order, ranking.numbers
    at = np.asarray(order, dtype=np.intp)
    # a sort key the rows hold as their own texts (--DTC) was ranked: its codes for the
    # checks come from the ranks, not from hashing every row's text again
    ranked = {} if ranking.key_ranks is None or ranking.key_facts is None else {
        key: ColumnValues.of_ranks(column, ranks, at, *(found or (None, None)))
        for key, column, ranks, found in zip(keys, sorting, ranking.key_ranks,
                                             ranking.key_facts, strict=True)
        if isinstance(column, list) and text_or_none(column)}
    kept = set(plan.columns[domain])
    wanted = list(dict.fromkeys([*(name for name in names if name in kept), "USUBJID",
                                 seq_var]))
    columns: dict[str, np.ndarray] = {}
    coded: dict[str, ColumnValues] = {}
    # variables holding one array of own values (the result as text: --ORRES, --STRESC)
    # are taken in order, and coded, once
    shared = _shared_own(parts, wanted)
    ordered: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for name in (*wanted, "_source"):
        if name == seq_var and numbers is not None:
            columns[name] = numbers if isinstance(numbers, np.ndarray) \
                else object_array(numbers, len(numbers))
            continue
        first = shared.get(name)
        if first is not None and first in columns:
            columns[name] = columns[first]
            if first in coded:
                coded[name] = coded[first]
            continue
        columns[name], values = ordered_column(parts, name, at, ordered)
        if values is not None or name in ranked:
            coded[name] = values if values is not None else ranked[name]
        elif first is not None and text_or_none(columns[name].tolist()):
            coded[name] = ColumnValues.of(pd.Series(columns[name], dtype=object, copy=False))
    raw = raw_columns(domain, wanted, columns, exact=("USUBJID", seq_var))
    provenance = _provenance(domain, parts, at, raw["USUBJID"], raw[seq_var],
                             pd.Series(columns["_source"], dtype=object, copy=False), plan.out,
                             coded.get("USUBJID"))
    frame = typed_frame(domain, raw, plan.columns[domain], coded)
    meta = plan.meta(domain)
    # typing keeps a Char value as it is (a missing one becomes None): the codes still hold
    finished = FinishedBucket(frame, provenance, None, [], [], coded={
        name: values for name, values in coded.items()
        if (column := meta.column(name)) is not None and column.type == "Char"},
        rows=len(frame), subjects=len(coded["USUBJID"].uniques) if "USUBJID" in coded
        else int(frame["USUBJID"].nunique()))        # (codes name only values rows take)
    if plan.validate and plan.dm is not None:
        dataset = Dataset(domain, frame, meta)
        dataset.adopt(finished.coded)
        result = validate_sdtm({"DM": plan.dm_dataset(), domain: dataset},
                               target="converted study", tested=(domain,))
        finished.findings = result.findings
        finished.runs = result.runs
        finished.coded = dataset.known_values()
    finished.stats = stats_of(frame, meta, finished.coded)
    finished.encoded = encode_apart(frame, meta, finished.stats, finished.coded, plan.formats)
    finished.needs_frame = len(finished.encoded) < len(plan.formats)
    return finished


def _joined_parts(parts: Parts) -> Parts:
    """``parts`` with each run of lane blocks joined into one block (rows in the same
    order): the columns are then made once, not once per part."""
    out: Parts = []
    run: list[LaneBlock] = []
    for part in parts:
        if isinstance(part, LaneBlock):
            if len(part):
                run.append(part)
            continue
        if run:
            out.append(joined(run))
            run = []
        out.append(part)
    if run:
        out.append(joined(run))
    return out


def _shared_own(parts: Parts, names: list[str]) -> dict[str, str]:
    """Of ``names``, those a single lane block holds as one array of own values with some
    other name, each mapped to the first of ``names`` holding that array."""
    if len(parts) != 1 or not isinstance(parts[0], LaneBlock):
        return {}
    own = parts[0].own
    first: dict[int, str] = {}
    shared: dict[str, str] = {}
    for name in names:
        values = own.get(name)
        if values is None:
            continue
        first.setdefault(id(values), name)
        shared[name] = first[id(values)]
    return {name: origin for name, origin in shared.items()
            if sum(1 for other in shared.values() if other == origin) > 1}


def _provenance(domain: str, parts: Parts, at: np.ndarray, subjects: pd.Series,
                seqs: pd.Series, sources: pd.Series, out: Path | None,
                subject_codes: ColumnValues | None = None) -> bytes:
    """The provenance rows of a bucket (rows in the order ``at``) as CSV: from tables
    (:func:`tabled_provenance`) when one lane block is the only part (``subject_codes``:
    the subjects' codes, when known)."""
    block = parts[0] if len(parts) == 1 else None
    if isinstance(block, LaneBlock) and block.components is None \
            and seqs.dtype == np.float64 and (texts := csv_texts(sources)) is not None:
        names = [file for file, _ in block.files]
        if out is not None:
            names = relative_names(names, out)
        codes = subject_codes if subject_codes is not None else ColumnValues.of(subjects)
        data = tabled_provenance(
            domain, codes, seqs.to_numpy(), texts, names,
            None if block.origins is None else block.origins[at], block.lines[at])
        if data is not None:
            return data
    file = pd.Series(ordered_column(parts, "_file", at)[0], dtype=object)
    location = pd.Series(ordered_column(parts, "_location", at)[0], dtype=object)
    return csv_rows(pd.DataFrame({"DOMAIN": domain, "USUBJID": subjects, "SEQ": seqs,
                                  "SOURCE": sources,
                                  "FILE": file if out is None else relative_files(file, out),
                                  "LOCATION": location}, copy=False))


def gather(parts: Parts, names: Iterable[str]) -> dict[str, np.ndarray]:
    """The values of each of ``names`` over the rows of ``parts``, in order, as object
    arrays (:data:`ABSENT` where a row does not have the variable); a column every part
    holds as float64 (a lane block's result numbers) as float64."""
    columns: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for part in parts:
        for name, found in columns.items():
            found.append(_part_column(part, name))
    return {name: np.concatenate(found) if found else object_array((), 0)
            for name, found in columns.items()}


def sort_column(parts: Parts, name: str) -> derivations.Column:
    """The values of ``name`` over the rows of ``parts`` as ``sequence_order`` reads them
    (None where a row does not have it); when every part holds it as places in a table,
    as the tables' values the rows take and each row's place."""
    joined = _joined_tables(parts, name)
    if joined is None:
        return _present(gather(parts, [name])[name], None, parts, name)
    table, rows = joined
    taken = np.bincount(rows, minlength=len(table)) > 0
    renumber = np.cumsum(taken) - 1
    return derivations.Tabled(table[taken].tolist(), renumber[rows])


def _joined_tables(parts: Parts, name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """When every part holds ``name`` as places in a table (``LaneBlock.table``): the
    parts' tables one after the other, and each row's place in them, rows in read order;
    None otherwise."""
    found = [part.table(name) if isinstance(part, LaneBlock) else None for part in parts]
    tabled = [table for table in found if table is not None]
    if not tabled or len(tabled) < len(parts):
        return None
    if len(tabled) == 1:        # one block: its own places (the same array for every column)
        return tabled[0]
    offsets = np.cumsum([0, *(len(table) for table, _ in tabled)]).tolist()
    rows = np.concatenate([places.astype(np.intp) + offset
                           for (_, places), offset in zip(tabled, offsets[:-1], strict=True)])
    return np.concatenate([table for table, _ in tabled]), rows


def _part_column(part: LaneBlock | Rows, name: str) -> np.ndarray:
    """The values of ``name`` over the rows of one part, :data:`ABSENT` where a row does
    not have it."""
    if isinstance(part, LaneBlock):
        return part.column(name)
    return object_array((row.get(name, ABSENT) for row in part), len(part))


def ordered_column(parts: Parts, name: str, at: np.ndarray,
                   ordered: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
                   ) -> tuple[np.ndarray, ColumnValues | None]:
    """The values of ``name`` over the rows of ``parts`` taken in the order ``at`` (as
    ``gather(parts, [name])[name][at]``), and, when every part holds it as numbers into a
    table of values (the templates, the subjects), the column as codes into its distinct
    values, found from the tables alone; or, from a lane block alone that made its result
    texts from their numbers, as codes into those texts (``LaneBlock.coded_texts``).
    ``ordered``: kept between the calls of one ``at``, the places of each table's rows in
    that order, taken once."""
    joined = _joined_tables(parts, name)
    if joined is None:
        if len(parts) == 1:                      # (one part: its column taken as it is)
            part = parts[0]
            return _part_column(part, name)[at], \
                part.coded_texts(name, at) if isinstance(part, LaneBlock) else None
        return gather(parts, [name])[name][at], None
    table, places = joined
    done = None if ordered is None else ordered.get(id(places))
    if done is None:
        # the rows' places in order, and which entries of the table some row takes
        done = (places, places[at], np.bincount(places, minlength=len(table)) > 0)
        if ordered is not None:               # (the places kept: their id stays theirs)
            ordered[id(places)] = done
    _, rows, taken = done
    try:
        codes, uniques = pd.factorize(table)
    except TypeError:  # unhashable values: let the checks make the codes from the rows
        return table[rows], None
    codes, kept = _used(np.asarray(codes, dtype=np.intp), uniques.tolist(), taken)
    return table[rows], ColumnValues(codes[rows], kept)


def _used(codes: np.ndarray, uniques: list[Any], taken: np.ndarray
          ) -> tuple[np.ndarray, list[Any]]:
    """The codes of a table's entries into ``uniques`` and ``uniques`` itself, with the
    values of no entry some row takes (``taken``) left out."""
    used = np.zeros(len(uniques) + 1, dtype=bool)
    used[codes[taken] + 1] = True                # code -1 (missing) at 0
    used = used[1:]
    if used.all():
        return codes, uniques
    renumber = np.append(np.cumsum(used) - 1, -1)   # code -1 stays -1
    return renumber[codes], [u for u, t in zip(uniques, used.tolist(), strict=True) if t]


def _present(values: np.ndarray, absent: Any, parts: Parts, name: str) -> list[Any]:
    """The values of a gathered column ``name``, ``absent`` where a row does not have it
    (as ``row.get(name, absent)`` gives it)."""
    if all(isinstance(part, LaneBlock) and part.has(name) for part in parts):
        return values.tolist()  # every row has it
    return [absent if value is ABSENT else value for value in values.tolist()]


def raw_columns(domain: str, names: list[str], columns: dict[str, np.ndarray],
                exact: tuple[str, ...]) -> dict[str, pd.Series]:
    """``columns`` (``names``) as Series, by name, as ``typed_frame`` takes them: variables
    SDTMIG types as they are (``typed_frame`` gives them their type), the others, and
    those of ``exact``, typed as ``DataFrame.from_records`` of the rows would type them."""
    from fhircdisc.schemas import sdtmig

    inferred = {name for name in names if name in exact or sdtmig.variable(domain, name) is None}
    return {name: _as_records_type(columns[name]).rename(name) if name in inferred
            else _as_given(columns[name], sdtmig.variable(domain, name), name)
            for name in names}


def _as_given(values: np.ndarray, spec: Any, name: str) -> pd.Series:
    """A column SDTMIG types, as it is: an object column, or the float64 column of a Num
    variable (the numbers of a lane block's results), which ``typed_frame`` keeps."""
    if values.dtype == np.float64 and spec.type == "Num":
        return pd.Series(values, copy=False, name=name)
    return pd.Series(values, dtype=object, copy=False, name=name)


@cache
def _records_text_dtype() -> Any:
    """The dtype ``DataFrame.from_records`` gives a column of text."""
    return pd.DataFrame.from_records([("text",)], columns=["x"])["x"].dtype


def _as_records_type(values: np.ndarray) -> Any:
    """An object column as ``DataFrame.from_records`` of the rows types it; text and
    float columns directly, any other through ``from_records`` itself."""
    kind = pd.api.types.infer_dtype(values, skipna=False) if len(values) else "empty"
    if kind == "string":
        return pd.Series(values, dtype=_records_text_dtype())
    if kind == "floating":
        return pd.Series(values.astype(np.float64))
    return pd.DataFrame.from_records([(value,) for value in values.tolist()],
                                     columns=["x"])["x"]


def write_output(setup: Setup, staging: Path, pieces: Mapping[str, list[Piece]],
                 load: Callable[[Piece], FinishedBucket], workers: int = 1,
                 checked: Callable[[], ValidationResult] | None = None,
                 early: Collection[str] = ()) -> StreamResult:
    """Write every output file into ``staging``, then move them into the output folder.

    ``pieces``: per streamed domain, its non-empty buckets in bucket order; ``load``
    gives a bucket's rows, asked for once per piece, in writing order. With ``workers``
    above one, the streamed datasets are written side by side in forked processes
    (``load`` must work there), each with its share of the provenance table.
    ``checked`` gives the small datasets' conformance results when they were checked
    ahead (:class:`_CheckAhead`; asked before any process is forked), else they are
    checked here. ``early``: streamed datasets already in ``staging`` in every format,
    with their provenance shares (:class:`_EarlyWriting`).
    """
    small, report, out = setup.small, setup.report, setup.out
    streamed = setup.streamed()
    if setup.finding_runs is None:
        keep_findings_on_disk(setup, staging)
    assert setup.finding_runs is not None
    for parts in pieces.values():
        for piece in parts:
            bank_findings(setup, piece)
    shares = [_share_path(staging, domain) for domain in streamed]
    prov_path = staging / PROVENANCE_NAME
    ahead = None if checked is None else checked()
    global _WRITING
    _WRITING = (setup, staging, pieces, load)
    try:
        # the small datasets are written by the same workers, first: DM has a row per
        # Patient, and can take as long as a streamed dataset
        jobs: list[tuple[str, Path | None]] = [*((name, None) for name in small.domains),
                                               *((domain, share) for domain, share in zip(
                                                   streamed, shares, strict=True)
                                                 if domain not in early)]
        with _started(_write_domain, jobs, workers) as finish:
            if ahead is None and setup.plan.validate and small.domains:
                ahead = _small_checked(setup, *_banked_rows(setup, small.validate()))
            validation = None if ahead is None else StreamedValidation.of(ahead)
            provenance = small.provenance.copy()
            provenance["FILE"] = relative_files(provenance["FILE"], out)
            before = provenance[provenance["DOMAIN"].isin(("DM", "EX", "AE"))]
            before.to_csv(prov_path, index=False)
            # the report while the workers write the datasets: it needs none of them
            datasets = _write_report(setup, staging, pieces, validation)
            finish()
    finally:
        _WRITING = None
    with prov_path.open("ab") as handle:
        for share in shares:
            with share.open("rb") as part:
                shutil.copyfileobj(part, handle)
            share.unlink()
    provenance[provenance["DOMAIN"] == "TS"].to_csv(prov_path, index=False, header=False,
                                                    mode="a")
    report.items_written()
    written = publish(staging, out)
    return StreamResult(report, written, validation,
                        {name: datasets[name] for name in _ordered(datasets)})


def _write_report(setup: Setup, staging: Path, pieces: Mapping[str, list[Piece]],
                  validation: StreamedValidation | None) -> dict[str, tuple[int, int]]:
    """Write the conversion report into ``staging`` (row counts, items, and the
    conformance findings, merged from disk in dataset and row order); each dataset's rows
    and subjects."""
    small, report, out = setup.small, setup.report, setup.out
    assert setup.finding_runs is not None
    datasets = {name: (len(frame), _subjects(frame)) for name, frame in small.domains.items()}
    report.rows = {name: len(frame) for name, frame in small.domains.items()}
    report.sort_items()
    starts: list[tuple[Key, int]] = [(_SMALL_FINDINGS, 0)]  # rows from each dataset's start
    for domain in setup.streamed():
        parts = pieces.get(domain, [])
        total = sum(part.rows for part in parts)
        report.rows[domain] = total
        datasets[domain] = (total, sum(part.subjects for part in parts))
        if validation is not None:
            starts += _add_findings(validation, domain, parts)
    report.rows = dict(sorted(report.rows.items()))
    document = report.to_dict(objects=True, lazy=True)
    streams: dict[str | tuple[str, ...], Iterable[Any]] = {
        key: document[key] for key in ("unmapped", "value_issues")}
    if validation is not None:
        validation.metadata["datasets"] = {name: datasets[name][0] for name in
                                           _ordered(datasets)}
        validation.stored = setup.finding_runs.severities
        document["validation"] = validation.head()
        findings = setup.finding_runs.merged(validation.findings, starts,
                                             _finding_order(validation))
        streams["validation", "findings"] = map(Finding.to_dict, findings)
    document["sources"] = [relative_path(s, out) for s in document["sources"]]
    with (staging / REPORT_NAME).open("wb") as handle:
        write_streamed(handle, document, streams)
    return datasets


def _ordered(datasets: dict[str, Any]) -> list[str]:
    from fhircdisc.study import DOMAIN_ORDER

    return sorted(datasets, key=lambda n: DOMAIN_ORDER.index(n) if n in DOMAIN_ORDER else 99)


def _subjects(frame: pd.DataFrame) -> int:
    return int(frame["USUBJID"].nunique()) if "USUBJID" in frame else 0


_WRITING: tuple[Setup, Path, Mapping[str, list[Piece]], Callable[[Piece], FinishedBucket]] \
    | None = None


def _share_path(staging: Path, domain: str) -> Path:
    """Where a streamed dataset's provenance rows wait until the table is put together."""
    return staging / f".{domain}.{PROVENANCE_NAME}"


def _write_domain(job: tuple[str, Path | None]) -> None:
    """One streamed dataset in every format, its provenance rows into their own file
    (``share``); a small dataset (no ``share``: made in pass 1, its provenance written
    with the rest) in every format."""
    assert _WRITING is not None
    setup, staging, pieces, load = _WRITING
    domain, share = job
    if share is None:
        small = setup.small
        for fmt in setup.formats:
            write_dataset(small.domains[domain], staging, small.meta(domain), fmt,
                          creation_datetime=setup.creation_datetime)
        return
    share.touch()
    _write_streamed(setup, staging, domain, pieces.get(domain, []), load, share)


def _write_streamed(setup: Setup, staging: Path, domain: str, parts: list[Piece],
                    load: Callable[[Piece], FinishedBucket], prov_path: Path) -> None:
    meta = setup.plan.meta(domain)
    stats = merge_stats(part.stats for part in parts)
    writers = [open_dataset_writer(staging, meta, fmt, stats,
                                   creation_datetime=setup.creation_datetime)
               for fmt in setup.formats]
    try:
        with prov_path.open("ab") as provenance:
            for part in parts:
                finished = load(part)
                rest = []
                for writer in writers:
                    encoded = finished.encoded.get(writer.fmt)
                    if encoded is not None and writer.takes(encoded):
                        writer.append_encoded(encoded)
                    else:
                        rest.append(writer)
                if rest:
                    write_piece(rest, *finished.whole())
                finished.discard()
                provenance.write(finished.provenance)
        for writer in writers:
            writer.close()
    except BaseException:
        for writer in writers:
            writer.abort()
        raise


def _add_findings(validation: ValidationResult, domain: str, parts: list[Piece]
                  ) -> list[tuple[Key, int]]:
    """Bucket findings into the study's result: rows counted from the dataset's start,
    dataset-level findings once, each rule's run merged as if it had seen the whole
    dataset. Gives the row each bucket starts at, for its findings kept on disk."""
    offset = 0
    seen: set[Finding] = set(validation.findings)
    counts: Counter[str] = Counter()
    starts: list[tuple[Key, int]] = []
    for part in parts:
        starts.append(((part.domain, part.bucket), offset))
        if part.banked is not None:
            counts.update(part.banked.rules)
        for finding in part.findings:
            if finding.row is not None:
                finding = finding.moved(offset)
            elif finding in seen:
                continue
            seen.add(finding)
            validation.findings.append(finding)
            counts[finding.rule_id] += 1
        offset += part.rows
    runs = {run.rule_id: run for run in validation.runs}
    for rule_id, run in runs.items():
        bucket_runs = [r for part in parts for r in part.runs if r.rule_id == rule_id]
        if bucket_runs:
            runs[rule_id] = _merge_run(run, bucket_runs, domain, counts[rule_id])
    validation.runs = list(runs.values())
    validation.findings.sort(key=_finding_order(validation))
    return starts


#: the run the row findings of the small datasets (DM, EX, AE, TS) are banked in: with
#: one a Patient (a hospital export without sites), they would hold 550 bytes each
_SMALL_FINDINGS: Key = ("small", 0)


def _banked_rows(setup: Setup, result: ValidationResult
                ) -> tuple[ValidationResult, BankedFindings | None]:
    """The small datasets' check with the findings that name a row put into a run on
    disk (:data:`_SMALL_FINDINGS`); the run, to count in from the main thread
    (:func:`_small_checked`)."""
    assert setup.finding_runs is not None
    result.findings, banked = bank(setup.finding_runs.folder, _SMALL_FINDINGS,
                                   result.findings)
    return result, banked


def _small_checked(setup: Setup, result: ValidationResult, banked: BankedFindings | None
                  ) -> ValidationResult:
    """``result`` of :func:`_banked_rows`, its run counted in."""
    if banked is not None:
        assert setup.finding_runs is not None
        setup.finding_runs.add(_SMALL_FINDINGS, banked)
    return result


def _finding_order(validation: ValidationResult) -> Callable[[Finding], Any]:
    """The report's order of findings: by rule (in the order of the rule runs, which is
    the rule table's, as a bucket's check gives them), dataset, then row."""
    order = {run.rule_id: rank for rank, run in enumerate(validation.runs)}
    return lambda f: (order.get(f.rule_id, len(order)), _DATASET_RANK.get(f.dataset, 99),
                      f.row is not None, f.row or 0)


_NOT_CHECKED = "not checked: "


def _notes(run: RuleRun) -> list[str]:
    reason = run.reason or ""
    if run.status == "skipped" and run.findings == 0 and reason.startswith("no ") \
            and ": " not in reason:
        return []                      # the rule had no dataset to run on
    reason = reason.removeprefix(_NOT_CHECKED)
    return [note for note in reason.split("; ") if note]


def _merge_run(study_run: RuleRun, bucket_runs: list[RuleRun], domain: str,
               found: int) -> RuleRun:
    """One rule's run over the small datasets and over every bucket of ``domain``."""
    notes = _notes(study_run)
    applied = bool(notes) or study_run.status != "skipped"
    for run in bucket_runs:
        for note in _notes(run):
            if note.startswith(f"{domain}: ") and note not in notes:
                notes.append(note)
    notes.sort(key=lambda note: _DATASET_RANK.get(note.split(": ", 1)[0], 99))
    statuses = {study_run.status} | {run.status for run in bucket_runs}
    findings = study_run.findings + found
    ran = (applied and study_run.status != "skipped") or any(
        run.status != "skipped" for run in bucket_runs)
    if "error" in statuses:
        return RuleRun(study_run.rule_id, "error", findings, "; ".join(notes))
    status: RunStatus
    if findings:
        status = "issues"
    elif ran:
        status = "success"
    elif notes:
        return RuleRun(study_run.rule_id, "skipped", 0, "; ".join(notes))
    else:
        return study_run              # applies to no dataset of the study
    return RuleRun(study_run.rule_id, status, findings,
                   _NOT_CHECKED + "; ".join(notes) if notes else None)


# -- the local engine: forked workers, rows spilled to disk -------------------------------------
@dataclass
class _Spill:
    """Where a chunk's rows went: (domain, bucket) -> (offset, size) in one file."""

    path: Path
    places: dict[Key, tuple[int, int]]


@dataclass
class _Shared:
    """State the forked workers inherit."""

    setup: Setup
    spill_dir: Path
    spills: list[_Spill] = field(default_factory=list)


_SHARED: _Shared | None = None


def _stream(setup: Setup, staging: Path, workers: int,
            progress: Callable[[str, int], None] | None) -> StreamResult:
    """Passes 2 and 3 in forked worker processes, then the writing."""
    global _SHARED
    spill_dir = staging / ".spill"
    spill_dir.mkdir()
    _SHARED = shared = _Shared(setup, spill_dir)
    try:
        marks, spent = [time.perf_counter()], [_cpu_seconds()]
        tick = ChunkProgress(progress, setup.report)
        keep_items_on_disk(setup, staging)
        shared.spills.append(_spill(dict(by_bucket(setup.early, setup.buckets)), "early",
                                    shared))

        def each(job: list[Task], done: tuple[ChunkResult, _Spill, SharedRuns | None]
                 ) -> None:
            if done[2] is not None and setup.report.runs is not None:
                setup.report.runs.adopt(done[2])
            bank_items(setup.report, done[0])
            tick(job[-1], done[0])

        def pass_3_tables() -> None:
            # read while the workers map the Observations (the main process only waits
            # then), not between the passes; the pass-3 workers are forked with them
            if setup.plan.validate:
                codelists()             # read here once, not by each worker checking buckets
            line_tails()                # (as the provenance rows' line ends)

        results = _run(_map_tasks, task_groups(setup.tasks, setup.chunk_lines), workers, each,
                       pass_3_tables)
        shutil.rmtree(input_folder(staging), ignore_errors=True)   # read by pass 2 alone
        shared.spills += [spill for _, spill, _ in results]
        settle(setup, [result for result, _, _ in results])
        marks.append(time.perf_counter())
        spent.append(_cpu_seconds())
        pieces: dict[str, list[Piece]] = {}
        keep_findings_on_disk(setup, staging)
        keys = setup.bucket_keys()
        finished = tick.buckets(len(keys))

        lasts = {key[0]: key for key in keys}          # each dataset's last bucket

        def arrived(key: Key, piece: Piece | None) -> None:
            bank_findings(setup, piece)
            finished(key, piece)
            if piece is not None:
                pieces.setdefault(piece.domain, []).append(piece)
            if early is not None and lasts[key[0]] == key and key != keys[-1]:
                early.write(key[0], pieces.get(key[0], []))

        ahead = _CheckAhead(setup) if workers > 1 and setup.plan.validate \
            and setup.small.domains else None
        load = partial(_load_bucket, spill_dir)
        early = _EarlyWriting(setup, staging, load) if workers > 1 else None

        def started() -> None:
            if ahead is not None:
                ahead.start()
            if early is not None:
                early.start()

        try:
            _run(_finish_bucket, keys, workers, arrived, started)
        except BaseException:
            if early is not None:
                early.abandon()
            raise
        written = set() if early is None else early.finish()
        marks.append(time.perf_counter())
        spent.append(_cpu_seconds())
        tick.step("writing the output files")
        result = write_output(setup, staging, pieces, load, workers,
                              None if ahead is None else ahead.result, written)
        marks.append(time.perf_counter())
        spent.append(_cpu_seconds())
        result.timings = dict(zip(("observations", "datasets", "writing"),
                                  np.diff(marks).tolist(), strict=True))
        result.cpu = dict(zip(("observations", "datasets", "writing"),
                              np.diff(spent).tolist(), strict=True))
        return result
    finally:
        _SHARED = None


def task_groups(tasks: list[Task], chunk_lines: int) -> list[list[Task]]:
    """The tasks, in order, as jobs of consecutive tasks holding at most ``chunk_lines``
    lines together: the short tasks at the ends of files, and every task of an export cut
    into many small files, are mapped a chunk's worth at a time (a job has one spill
    file and one report share, which pass 3 and the report read as one)."""
    groups: list[list[Task]] = []
    lines = 0
    for task in tasks:
        if groups and lines + task.size <= chunk_lines:
            groups[-1].append(task)
            lines += task.size
        else:
            groups.append([task])
            lines = task.size
    return groups


def map_tasks(tasks: list[Task], context: StudyContext, buckets: SubjectBuckets
              ) -> tuple[ChunkResult, dict[Key, Parts]]:
    """Pass 2 of a job of tasks (:func:`task_groups`): their report share and column
    facts as one chunk's, and their rows by (domain, bucket): the lane rows of every task
    as one block (:func:`~fhircdisc.converters.lane_block.gathered`), then the other rows,
    each in read order."""
    merged = ChunkResult()
    blocks: dict[str, list[LaneBlock]] = {}
    rows: dict[str, Rows] = {}
    results = [map_task(task, context, finish=False) for task in tasks]
    for result in results:
        for domain, block in result.blocks.items():
            blocks.setdefault(domain, []).append(block)
        for domain, found in result.rows.items():
            rows.setdefault(domain, []).extend(found)
    # the tasks' lane rows as one block a domain, frozen once: one part a bucket, not one
    # a file, and a file's rows cost no block of their own
    together = {domain: gathered(found) for domain, found in blocks.items()}
    facts = {domain: finish_block(domain, block, context) for domain, block in together.items()}
    for result in results:
        for domain in result.blocks:
            # the block's facts where the task's own would have been, its rows' after
            own = {name: ColumnStats(column.present, column.numeric)
                   for name, column in facts[domain].items()}
            for name, column in result.stats[domain].items():
                own.setdefault(name, ColumnStats(False, True)).merge(column)
            result.stats[domain] = own
        merged.outcomes.update(result.outcomes)
        merged.unmapped += result.unmapped
        merged.failed.extend(result.failed)
        merged.value_issues += result.value_issues
        fold_facts(merged.stats, merged.fixed_seq, result)
    return merged, dict(by_bucket(ChunkResult(rows=rows, blocks=together), buckets))


def _map_tasks(tasks: list[Task]) -> tuple[ChunkResult, _Spill, SharedRuns | None]:
    """Pass 2 of a job: its report share (its items already in runs on disk when the
    report keeps them there) and where its rows went."""
    assert _SHARED is not None
    result, parts = map_tasks(tasks, _SHARED.setup.context, _SHARED.setup.buckets)
    name = f"{tasks[0].number:06d}"
    runs, share = _SHARED.setup.report.runs, None
    if runs is not None and (result.unmapped or result.value_issues or result.failed):
        share = runs.write_share(f"t{name}", result.unmapped, result.value_issues,
                                 result.failed)
        result.items_handed_over()
    return result, _spill(parts, name, _SHARED), share


def _spill(parts: dict[Key, Parts], name: str, shared: _Shared) -> _Spill:
    """Write rows, by (domain, bucket), to disk."""
    path = shared.spill_dir / f"{name}.pkl"
    places: dict[Key, tuple[int, int]] = {}
    with path.open("wb") as handle:
        for key, found in parts.items():
            data = pickle.dumps(found, protocol=pickle.HIGHEST_PROTOCOL)
            places[key] = (handle.tell(), len(data))
            handle.write(data)
    return _Spill(path, places)


def _finish_bucket(key: Key) -> Piece | None:
    """Pass 3 of one bucket: its rows gathered from every spill, finished, parked on disk."""
    assert _SHARED is not None
    shared = _SHARED
    parts: Parts = []
    for spill in shared.spills:
        place = spill.places.get(key)
        if place is None:
            continue
        with spill.path.open("rb") as handle:
            handle.seek(place[0])
            parts.extend(pickle.loads(handle.read(place[1])))
    if not any(len(part) for part in parts):
        return None
    done = finish_bucket(key[0], parts, shared.setup.plan)
    banked = None
    if shared.setup.finding_runs is not None:   # the row findings stay out of this process
        done.findings, banked = bank(shared.setup.finding_runs.folder, key, done.findings)
    done.park(_bucket_path(shared.spill_dir, key).with_suffix(".frame"))
    with _bucket_path(shared.spill_dir, key).open("wb") as handle:
        pickle.dump(done, handle, protocol=pickle.HIGHEST_PROTOCOL)
    piece = done.piece(*key)
    piece.banked = banked
    return piece


class _CheckAhead:
    """The small datasets' conformance check (DM above all: a hospital export has a row
    per Patient), run on a thread of the main process while the forked workers finish
    the buckets, the main process having little else to do then. Started once the
    workers are forked, and waited for before any other process is: a process forked
    while the thread runs could inherit a lock the thread holds."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.outcome: ValidationResult | None = None
        self.banked: BankedFindings | None = None
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        # a daemon: a conversion that fails or is interrupted does not wait for it
        self.thread = threading.Thread(target=self._check, name="check-ahead", daemon=True)
        self.thread.start()

    def _check(self) -> None:
        try:
            # the row findings go to disk at once: the workers run beside this thread
            self.outcome, self.banked = _banked_rows(self.setup, self.setup.small.validate())
        except BaseException as exc:  # raised in the main thread, by result()
            self.error = exc

    def result(self) -> ValidationResult:
        """The check's results, once it is over (its error raised here)."""
        assert self.thread is not None, "the check ahead was never started"
        self.thread.join()
        if self.error is not None:
            raise self.error
        assert self.outcome is not None
        return _small_checked(self.setup, self.outcome, self.banked)


class _EarlyWriting:
    """The streamed datasets written on a thread of the main process as soon as their
    last bucket is finished, while the forked workers finish the next dataset's buckets
    (the last dataset is written after them, beside the small ones). Started once the
    workers are forked, and finished before any other process is (as
    :class:`_CheckAhead`)."""

    def __init__(self, setup: Setup, staging: Path,
                 load: Callable[[Piece], FinishedBucket]) -> None:
        self.setup, self.staging, self.load = setup, staging, load
        self.jobs: queue.SimpleQueue[tuple[str, list[Piece]] | None] = queue.SimpleQueue()
        self.written: set[str] = set()
        self.error: BaseException | None = None
        self.stopped = False
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._work, name="early-writing", daemon=True)
        self.thread.start()

    def write(self, domain: str, parts: list[Piece]) -> None:
        """Write ``domain`` from its finished buckets ``parts`` (every one of them)."""
        self.jobs.put((domain, list(parts)))

    def _work(self) -> None:
        while (job := self.jobs.get()) is not None:
            if self.error is not None or self.stopped:
                continue                        # (a failed dataset: the rest is not written)
            domain, parts = job
            try:
                share = _share_path(self.staging, domain)
                share.touch()
                _write_streamed(self.setup, self.staging, domain, parts, self.load, share)
                self.written.add(domain)
            except BaseException as exc:  # raised in the main thread, by finish()
                self.error = exc

    def finish(self) -> set[str]:
        """The datasets written, once every one asked for is (an error raised here)."""
        self._join()
        if self.error is not None:
            raise self.error
        return self.written

    def abandon(self) -> None:
        """Wait for the dataset being written, and write no other."""
        self.stopped = True
        self._join()

    def _join(self) -> None:
        if self.thread is not None:
            self.jobs.put(None)
            self.thread.join()
            self.thread = None


def _bucket_path(spill_dir: Path, key: Key) -> Path:
    return spill_dir / f"{key[0]}.{key[1]:05d}.bucket"


def _load_bucket(spill_dir: Path, piece: Piece) -> FinishedBucket:
    path = _bucket_path(spill_dir, (piece.domain, piece.bucket))
    with path.open("rb") as handle:
        finished: FinishedBucket = pickle.load(handle)
    path.unlink()
    return finished


@contextmanager
def _pool(workers: int, jobs: list[Any]) -> Iterator[Any]:
    """Forked worker processes for ``jobs`` when there are several of both and the system
    forks; else None. Stopped on leaving."""
    if workers <= 1 or len(jobs) <= 1 or not can_fork():
        yield None
        return
    pool = forked_pool(min(workers, len(jobs)))
    try:
        yield pool
    finally:
        pool.terminate()
        pool.join()


@contextmanager
def _started(function: Callable[[Any], Any], jobs: list[Any], workers: int
             ) -> Iterator[Callable[[], None]]:
    """``function`` over ``jobs``, started in forked workers when there are several (the
    caller goes on meanwhile), else run when the caller asks; yields that asking."""
    with _pool(workers, jobs) as pool:
        if pool is None:
            def run_here() -> None:
                for job in jobs:
                    function(job)
            yield run_here
        else:
            pending = pool.map_async(function, jobs)

            def wait() -> None:
                pending.get()
            yield wait


def _run(function: Callable[[Any], Any], jobs: list[Any], workers: int,
         each: Callable[[Any, Any], None] | None = None,
         started: Callable[[], None] | None = None) -> list[Any]:
    """``function`` over ``jobs`` in order, over forked workers when there are several;
    ``each(job, result)`` as results come in; ``started()`` once the workers are forked
    (before the first job when there are none)."""
    results: list[Any] = []
    with _pool(workers, jobs) as pool:
        mapped = map(function, jobs) if pool is None else pool.imap(function, jobs)
        if started is not None:             # (the workers have their jobs by then)
            started()
        for job, result in zip(jobs, mapped, strict=True):
            results.append(result)
            if each is not None:
                each(job, result)
    return results


__all__ = ["BUCKET_ROWS", "CHUNK_LINES", "DatasetPlan", "FinishedBucket", "Piece", "Setup",
           "StreamResult", "Task", "bank_findings", "bank_items", "by_bucket",
           "finish_bucket", "input_folder", "keep_findings_on_disk", "keep_items_on_disk",
           "map_task", "map_tasks", "prepare", "settle", "stream_to_sdtm", "task_groups",
           "write_output"]
