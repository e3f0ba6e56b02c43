"""FHIR -> SDTM on Apache Spark: the streaming conversion with Spark running passes 2 and 3.

The files written are byte for byte those of
:func:`fhircdisc.converters.streaming.stream_to_sdtm` (and so of the in-memory engine):
the passes are the same steps, only run elsewhere.

- **Pass 1, on the driver** (:func:`~fhircdisc.converters.streaming.prepare`): the context
  resources are read, the small datasets (DM, EX, AE, TS) made, the Observation lines cut
  into tasks (byte ranges of files) and the subjects into buckets (ranges of USUBJIDs).
  The study context and the subject -> bucket map are broadcast.
- **Pass 2, on the executors**: the tasks, in jobs of up to a chunk's worth of lines
  (:func:`~fhircdisc.converters.streaming.task_groups`), are an RDD, one job per
  partition. Each task is read from its file and mapped with
  :func:`~fhircdisc.converters.chunk.convert_lines`, a pure function of the lines and the
  context; its rows are keyed by (domain, bucket). The jobs' report shares and column
  facts are collected and folded together on the driver, which completes the dataset
  plan (broadcast in turn).
- **Shuffle** by (domain, bucket), one partition per key: every row of a subject meets in
  one partition, which is what numbering --SEQ per subject needs.
- **Pass 3, on the executors**: each bucket is sorted, --SEQ numbered, typed and checked
  (:func:`~fhircdisc.converters.streaming.finish_bucket`). The result is persisted; the
  buckets' writer statistics and dataset-level findings are collected first (an XPT or
  Dataset-JSON header depends on the whole dataset), and the row findings of each bucket
  that has some are fetched one bucket at a time and kept on the driver's disk; then the
  driver fetches the buckets one at a time, in (domain, bucket) order, and writes them
  through the streaming dataset writers.

The driver holds the context, the report and one bucket at a time.

Executors read the task byte ranges from the input files themselves, by the paths the
driver saw: in local mode any path works, but on a cluster the input must be on storage
every executor can read under the same path (a shared filesystem: NFS, a DBFS or Unity
Catalog volume mount, a FUSE-mounted bucket), and fhircdisc must be installed on the
executors. Reading object storage directly (``s3://``, ``abfss://``) would need pass 1
and :func:`~fhircdisc.converters.streaming.task_lines` to open ranges through a
filesystem layer such as fsspec instead of ``open``. Gzipped NDJSON cannot be read from
an offset: the driver decompresses it once, in pass 1, into the output's staging folder,
and its tasks are byte ranges of that copy (on a cluster, the output folder must then be
on the shared storage too).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fhircdisc.converters.atomic import staging_folder
from fhircdisc.converters.chunk import ChunkResult, StudyContext
from fhircdisc.converters.streaming import (
    BUCKET_ROWS,
    CHUNK_LINES,
    ChunkProgress,
    DatasetPlan,
    FinishedBucket,
    Key,
    Parts,
    Piece,
    Setup,
    StreamResult,
    SubjectBuckets,
    Task,
    bank_findings,
    by_bucket,
    fewer_collections,
    finish_bucket,
    input_folder,
    keep_findings_on_disk,
    keep_items_on_disk,
    map_tasks,
    prepare,
    settle,
    task_groups,
    write_output,
)
from fhircdisc.errors import FhircdiscError
from fhircdisc.schemas.findings import Finding

if TYPE_CHECKING:
    from pyspark import RDD, SparkContext
    from pyspark.broadcast import Broadcast
    from pyspark.sql import SparkSession

#: a chunk's rows of one bucket, with the chunk's number (-1: rows read in pass 1)
ChunkRows = tuple[int, Parts]


def spark_to_sdtm(sources: Iterable[str | Path], out_dir: str | Path,
                  formats: Iterable[str] = ("xpt",), *, spark: SparkSession | None = None,
                  study_id: str | None = None, site_id: str | None = None,
                  subjects: str | Path | None = None, fhir_version: str = "auto",
                  terminology: Iterable[str | Path] = (), enrol_all: bool = False,
                  progress: Callable[[str, int], None] | None = None, validate: bool = True,
                  creation_datetime: str | None = None, chunk_lines: int = CHUNK_LINES,
                  bucket_rows: int = BUCKET_ROWS) -> StreamResult:
    """Convert FHIR input to SDTM files in ``out_dir``, with Spark mapping the Observations
    and finishing the datasets.

    ``spark``: the session to run on (default: the active one, or a new local one).
    Other arguments as :func:`~fhircdisc.converters.streaming.stream_to_sdtm`; Spark's
    partitions take the place of its worker processes (``chunk_lines`` Observation lines
    per pass-2 partition, about ``bucket_rows`` rows per pass-3 partition). Input
    problems raise the same errors as there, and output appears in ``out_dir`` only when
    every file succeeded.
    """
    sc = (spark or _active_session()).sparkContext
    with fewer_collections(), staging_folder(Path(out_dir)) as staging:
        setup = prepare(sources, out_dir, formats, study_id=study_id, site_id=site_id,
                        subjects=subjects, fhir_version=fhir_version,
                        terminology=terminology, enrol_all=enrol_all, progress=progress,
                        validate=validate, creation_datetime=creation_datetime,
                        chunk_lines=chunk_lines, bucket_rows=bucket_rows,
                        work=input_folder(staging))
        with _SparkRun.of(sc, setup) as run:
            keep_items_on_disk(setup, staging)
            keep_findings_on_disk(setup, staging)
            tick = ChunkProgress(progress, setup.report)
            rows = run.map_chunks(tick)
            tick.step("finishing datasets")
            pieces = run.finish_buckets(rows)
            tick.step("writing the output files")
            return write_output(setup, staging, pieces, run.load)


def _active_session() -> SparkSession:
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise ImportError("the Spark engine needs PySpark: pip install 'fhircdisc[spark]'"
                          ) from exc
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = SparkSession.builder.appName("fhircdisc").config("spark.ui.enabled", "false")
    # a session made here runs its Python workers with this interpreter (and its
    # packages) rather than whatever ``python3`` is on PATH; PySpark reads the variable
    # when the context starts
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return builder.getOrCreate()


@dataclass
class _SparkRun:
    """Passes 2 and 3 of one conversion as Spark jobs; the driver's side."""

    sc: SparkContext
    setup: Setup
    context: Broadcast[StudyContext]
    buckets: Broadcast[SubjectBuckets]
    plan: Broadcast[DatasetPlan] | None = None
    mapped: RDD[Any] | None = None
    finished: RDD[tuple[Key, FinishedBucket]] | None = None
    #: (domain, bucket) -> its partition after the shuffle
    partitions: Mapping[Key, int] | None = None

    @classmethod
    @contextmanager
    def of(cls, sc: SparkContext, setup: Setup) -> Iterator[_SparkRun]:
        """A run whose broadcasts and cached RDDs are released at the end."""
        run = cls(sc, setup, sc.broadcast(setup.context), sc.broadcast(setup.buckets))
        try:
            yield run
        finally:
            for rdd in (run.mapped, run.finished):
                if rdd is not None:
                    rdd.unpersist()
            for value in (run.context, run.buckets, run.plan):
                if value is not None:
                    value.destroy()

    def map_chunks(self, tick: Callable[[Task, ChunkResult], None]
                   ) -> RDD[tuple[Key, ChunkRows]]:
        """Pass 2: map every task on the executors and settle their report shares on the
        driver; the rows, keyed by (domain, bucket), stay on the cluster."""
        from pyspark import StorageLevel

        jobs = task_groups(self.setup.tasks, self.setup.chunk_lines)
        self.mapped = self.sc.parallelize(jobs, max(1, len(jobs))).map(
            partial(_map_chunk, context=self.context, buckets=self.buckets)
        ).persist(StorageLevel.MEMORY_AND_DISK)
        shares: list[ChunkResult] = []
        for job, share in zip(jobs, self.mapped.map(itemgetter(0)).collect(), strict=True):
            if isinstance(share, FhircdiscError):
                raise share
            tick(job[-1], share)
            shares.append(share)
        settle(self.setup, shares)
        early = [(key, (-1, rows)) for key, rows in by_bucket(self.setup.early,
                                                              self.setup.buckets)]
        return self.mapped.flatMap(itemgetter(1)).union(self.sc.parallelize(early, 1))

    def finish_buckets(self, rows: RDD[tuple[Key, ChunkRows]]) -> dict[str, list[Piece]]:
        """The shuffle by (domain, bucket) and pass 3 on the executors; the pieces of
        each streamed dataset, in bucket order, for :func:`write_output`."""
        from pyspark import StorageLevel

        keys = self.setup.bucket_keys()
        if not keys:
            return {}
        self.partitions = partitions = {key: number for number, key in enumerate(keys)}
        self.plan = self.sc.broadcast(self.setup.plan)
        self.finished = rows.groupByKey(len(keys), partitions.__getitem__).map(
            partial(_finish, plan=self.plan)).persist(StorageLevel.MEMORY_AND_DISK)
        collected = self.finished.map(_piece).collect()
        assert self.mapped is not None
        self.mapped.unpersist()           # the shuffle files now hold the rows
        pieces: dict[str, list[Piece]] = {}
        for piece, left in sorted(collected, key=lambda p: (p[0].domain, p[0].bucket)):
            if left:                      # fetched a bucket at a time, then to disk
                partition = partitions[(piece.domain, piece.bucket)]
                [found] = self.sc.runJob(self.finished, _row_findings, [partition])
                piece.findings = piece.findings + found
            bank_findings(self.setup, piece)
            pieces.setdefault(piece.domain, []).append(piece)
        return pieces

    def load(self, piece: Piece) -> FinishedBucket:
        """One finished bucket, fetched from the one partition that holds it."""
        assert self.finished is not None and self.partitions is not None
        partition = self.partitions[(piece.domain, piece.bucket)]
        [(_, finished)] = self.sc.runJob(self.finished, list, [partition])
        return finished


# -- what the executors run ---------------------------------------------------------------------
def _map_chunk(job: list[Task], context: Broadcast[StudyContext],
               buckets: Broadcast[SubjectBuckets]
               ) -> tuple[ChunkResult | FhircdiscError, list[tuple[Key, ChunkRows]]]:
    """Pass 2 of one job of tasks (:func:`~fhircdisc.converters.streaming.task_groups`):
    its report share, and its rows by (domain, bucket)."""
    try:
        result, parts = map_tasks(job, context.value, buckets.value)
    except FhircdiscError as exc:     # raised by the driver, first one in read order
        return exc, []
    return result, [(key, (job[0].number, rows)) for key, rows in parts.items()]


def _finish(item: tuple[Key, Iterable[ChunkRows]], plan: Broadcast[DatasetPlan]
            ) -> tuple[Key, FinishedBucket]:
    """Pass 3 of one bucket; its rows in the order the chunks were read, as the local
    engine gathers them (a carried --SEQ keeps that order among equal numbers)."""
    key, shares = item
    parts = [part for _, chunk_parts in sorted(shares, key=itemgetter(0))
             for part in chunk_parts]
    return key, finish_bucket(key[0], parts, plan.value)


def _piece(item: tuple[Key, FinishedBucket]) -> tuple[Piece, int]:
    """A finished bucket without its rows, nor its row findings (a dataset can have one a
    row: the driver fetches them a bucket at a time); and how many of them it left."""
    piece = item[1].piece(*item[0])
    kept = [finding for finding in piece.findings if finding.row is None]
    left = len(piece.findings) - len(kept)
    piece.findings = kept
    return piece, left


def _row_findings(items: Iterable[tuple[Key, FinishedBucket]]) -> list[list[Finding]]:
    """The row findings of the finished bucket of one partition."""
    return [[finding for finding in finished.findings if finding.row is not None]
            for _, finished in items]


__all__ = ["spark_to_sdtm"]
