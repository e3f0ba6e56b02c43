"""SDTM -> FHIR Bulk Data NDJSON, streamed: the same files as ``to_fhir`` + ``write_ndjson``.

``to_fhir_ndjson`` writes, byte for byte, what ``write_ndjson(to_fhir(...).resources)``
writes, with the same report. LB, the largest domain by far, takes the fast path
(``sdtm_to_fhir_observations``): its Observations are computed per distinct value and
written straight into ``Observation.ndjson`` without ever being held as resources.
Every other domain (DM, EX, VS, AE, TS and the study resources) is converted by the
reference builder and its check pass, unchanged.

With several cores the reference part runs in a forked process while the parent
prepares LB, and the LB lines are written by several processes into their own byte
ranges of one file (each line's length is known before any is written). The output
does not depend on the number of processes. Input the fast path does not handle
exactly is converted with the reference path.
"""

from __future__ import annotations

import functools
import mmap
import multiprocessing
import os
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from fhircdisc.converters.atomic import publish, staging_folder
from fhircdisc.converters.fhir_to_sdtm import SPECS
from fhircdisc.converters.fhir_writer import write_ndjson
from fhircdisc.converters.processes import can_fork, forked_process
from fhircdisc.converters.sdtm_to_fhir import (
    FhirReport,
    RejectedRow,
    _Builder,
    _carry,
    _convert,
    _fhir_version,
    _input_datasets,
    _text,
    fhir_id,
)
from fhircdisc.converters.sdtm_to_fhir_columns import CODE, Coded, factorize
from fhircdisc.converters.sdtm_to_fhir_observations import (
    ObservationPlan,
    Pieces,
    Subjects,
    Unsupported,
    line_lengths,
    write_lines,
)
from fhircdisc.json_text import dumps_kept
from fhircdisc.mappings import terminology as terminology_module
from fhircdisc.mappings.terminology import Terminology

FAST_DOMAINS = ("LB",)
#: the order in which the reference fills ``rows_converted`` and lists rejected rows
_REPORT_ORDER = ("TS", "DM", "EX", "LB", "VS", "AE")
_VALIDATE_CHUNK = 20_000
#: from how many lines a fast domain's lines are written by several processes
SPLIT_FROM = 8192


@dataclass
class FhirNdjson:
    """What one NDJSON conversion wrote: the files (one per resource type, by name), the
    report, and whether LB took the fast path (``False``: the reference path made all)."""

    files: list[Path]
    report: FhirReport
    fast: bool = True

    @property
    def version(self) -> str:
        return self.report.fhir_version


def to_fhir_ndjson(sdtm: str | Path | dict[str, pd.DataFrame], out_dir: str | Path, *,
                   fhir_version: str = "R4", terminology: Iterable[str | Path] = (),
                   validate: bool = True, workers: int | None = None) -> FhirNdjson:
    """Convert SDTM datasets to FHIR Bulk Data NDJSON files (``<Type>.ndjson``) in ``out_dir``.

    The files and the report are those of ``to_fhir`` followed by ``write_ndjson``, made
    without holding the LB Observations in memory. ``validate`` checks every resource
    with fhir.resources before the files are moved into ``out_dir`` (a failure raises
    ``ConversionError`` and leaves ``out_dir`` as it was). ``workers``: processes to use
    (``None``: every core); the files do not depend on it.
    """
    version = _fhir_version(fhir_version)
    datasets = _input_datasets(sdtm)
    terms = terminology_module.load(terminology)
    workers = max(1, workers or os.cpu_count() or 1)
    if not can_fork():
        workers = 1
    job = _prepare(datasets, terms, version, workers)
    if job is not None:
        try:
            return FhirNdjson(job.run(Path(out_dir), validate), job.report)
        except Unsupported:
            pass
    output = _convert(datasets, terms, version, validate)
    return FhirNdjson(write_ndjson(output.resources, out_dir), output.report, fast=False)


def _patients(dm: pd.DataFrame) -> dict[str, str] | None:
    """``_Builder.subjects``' Patient references by USUBJID (``None``: not for this path)."""
    if "USUBJID" not in dm:
        return None
    coded = factorize(dm["USUBJID"])
    if coded is None:
        return None
    out = {}
    for value in coded.values:
        text = _text(value)
        if text is not None and text not in out:
            out[text] = f"Patient/{fhir_id('pat', text)}"
    return out


def _prepare(datasets: dict[str, tuple[pd.DataFrame, str]], terms: Terminology, version: str,
             workers: int) -> _Job | None:
    fast = {name: datasets[name] for name in FAST_DOMAINS
            if name in datasets and len(datasets[name][0])}
    if not fast:
        return None
    patients = _patients(datasets["DM"][0])
    if patients is None:
        return None
    return _Job(datasets, fast, terms, version, patients, workers)


# ----------------------------------------------------------------------- the reference part


@dataclass
class _ReferencePart:
    """What the reference builder made of every domain but the fast ones."""

    lines: dict[str, list[bytes]]
    report: FhirReport
    subjects: Subjects
    patients: dict[str, str]


def _reference_part(datasets: dict[str, tuple[pd.DataFrame, str]], terms: Terminology,
                    version: str, encounter_keys: dict[tuple[str, float], str],
                    encounters: dict[str, bytes]) -> _ReferencePart:
    """The reference builder and check pass on ``datasets`` (all but the fast domains).

    ``encounter_keys`` / ``encounters``: the Encounters the fast domains made (key ->
    reference, reference -> NDJSON line), which VS reuses as the reference would.
    """
    report = FhirReport(fhir_version=version)
    builder = _Builder(datasets, terms, version, report)
    builder.study_resources()
    builder.subjects()
    builder.domain("EX")
    builder.encounters.update(encounter_keys)          # LB made these before VS runs
    builder.domain("VS")
    builder.domain("AE")
    referenced = {r["encounter"]["reference"] for r in builder.resources
                  if r["resourceType"] == "Observation" and "encounter" in r}
    context = [orjson.loads(line) for key, line in encounters.items() if key in referenced]
    back = _carry(builder, context)
    lines: dict[str, list[bytes]] = defaultdict(list)
    for resource in builder.resources:
        lines[resource["resourceType"]].append(dumps_kept(resource))
    dm = back.domains.get("DM")
    subjects = Subjects({}, {})
    if dm is not None and len(dm):
        usubjids = dm["USUBJID"].tolist()
        subjects = Subjects(
            dict(zip(usubjids, dm["STUDYID"].tolist() if "STUDYID" in dm
                     else [None] * len(dm), strict=True)),
            dict(zip(usubjids, dm["RFSTDTC"].tolist() if "RFSTDTC" in dm
                     else [None] * len(dm), strict=True)))
    return _ReferencePart(dict(lines), report, subjects, builder.patients)


#: percent of a fast domain's text columns the reference process factorizes first
_CHILD_SHARE = 25
CODE_SIZE = np.dtype(CODE).itemsize


class _Forked:
    """Functions run one after the other in a forked process; ``result`` gives their
    results in order (an exception is raised here)."""

    def __init__(self, *jobs: Callable[[], Any]) -> None:
        self._results, send = multiprocessing.get_context("fork").Pipe(duplex=False)
        self._process = forked_process(_serve, send, jobs)
        send.close()

    def result(self) -> Any:
        ok, value = self._results.recv()
        if not ok:
            raise value
        return value

    def close(self) -> None:
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()
        self._results.close()


def _serve(send: Any, jobs: tuple[Callable[[], Any], ...]) -> None:
    for job in jobs:
        try:
            outcome = (True, job())
        except BaseException as exc:     # handed to the parent, which raises it
            outcome = (False, exc)
        send.send(outcome)
        if not outcome[0]:
            break
    send.close()


def _factorize_share(frames: dict[str, pd.DataFrame], shares: dict[str, list[str]],
                     shared: mmap.mmap) -> dict[str, dict[str, list[Any] | None]]:
    """Factorize a share of columns: codes into ``shared`` (memory both processes see),
    distinct values returned."""
    out: dict[str, dict[str, list[Any] | None]] = {}
    offset = 0
    for name, columns in shares.items():
        frame = frames[name]
        out[name] = {}
        for column in columns:
            coded = factorize(frame[column])
            if coded is not None:
                view = np.frombuffer(shared, dtype=CODE, count=len(frame), offset=offset)
                view[:] = coded.codes
            out[name][column] = None if coded is None else coded.values
            offset += len(frame) * CODE_SIZE
    return out


def _shared_columns(shared: mmap.mmap, shares: dict[str, list[str]], child: _Forked,
                    fast: dict[str, tuple[pd.DataFrame, str]]
                    ) -> dict[str, dict[str, Coded | None]]:
    """This process's columns factorized here, and the forked process's from memory."""
    mine = {name: {str(c): factorize(frame[c]) for c in frame.columns
                   if str(c) not in shares.get(name, ()) and c not in ("STUDYID", "DOMAIN")}
            for name, (frame, _) in fast.items()}
    theirs = child.result()
    offset = 0
    for name, columns in shares.items():
        rows = len(fast[name][0])
        for column in columns:
            values = theirs[name][column]
            codes = np.frombuffer(shared, dtype=CODE, count=rows, offset=offset)
            mine[name][column] = None if values is None else Coded(codes, values)
            offset += rows * CODE_SIZE
    return mine


def _write_part(path: str, offset: int, pieces: Pieces, lengths: np.ndarray, start: int,
                stop: int, errors: Any) -> None:
    """Rows ``start`` to ``stop`` written from ``offset``, in a forked process; a system
    error (a full disk) is handed to the parent through ``errors``, which raises it."""
    try:
        fd = os.open(path, os.O_WRONLY)
        try:
            write_lines(fd, offset, pieces, start, stop, lengths)
        finally:
            os.close(fd)
    except OSError as exc:
        errors.put((exc.errno, exc.strerror or str(exc)))
        sys.exit(1)


# ----------------------------------------------------------------------- one conversion


class _Job:
    def __init__(self, datasets: dict[str, tuple[pd.DataFrame, str]],
                 fast: dict[str, tuple[pd.DataFrame, str]], terms: Terminology, version: str,
                 patients: dict[str, str], workers: int) -> None:
        self.datasets = datasets
        self.fast = fast
        self.terms = terms
        self.version = version
        self.patients = patients
        self.workers = workers
        self.report = FhirReport(fhir_version=version,
                                 rows_in={n: len(f) for n, (f, _) in datasets.items()})

    def run(self, out: Path, validate: bool) -> list[Path]:
        """Convert and write; ``Unsupported`` before anything is written."""
        rest = {n: d for n, d in self.datasets.items() if n not in self.fast}
        plans: dict[str, ObservationPlan] = {}
        if "VS" in rest or self.workers == 1:
            # VS reuses LB's Encounters: LB's must exist before the reference runs
            plans = self._plans()
        if self.workers == 1:
            reference = _reference_part(rest, self.terms, self.version,
                                        *self._encounters(plans))
        else:
            reference, plans = self._alongside(rest, plans)
        if reference.patients != self.patients:      # pragma: no cover - a bug
            raise Unsupported("patients differ from the builder's")
        for plan in plans.values():
            plan.finish(reference.subjects)
        self._report(plans, reference)
        return self._write(out, plans, reference, validate)

    def _alongside(self, rest: dict[str, tuple[pd.DataFrame, str]],
                   plans: dict[str, ObservationPlan]
                   ) -> tuple[_ReferencePart, dict[str, ObservationPlan]]:
        """The reference part in a forked process while this one prepares the fast domains.

        The forked process first factorizes a share of the fast domains' text columns
        (into memory both processes see), then converts the rest with the reference.
        """
        shares: dict[str, list[str]] = {}
        if not plans:
            for name, (frame, _) in self.fast.items():
                text = [str(c) for c in frame.columns
                        if frame[c].dtype == object and c not in ("STUDYID", "DOMAIN")]
                shares[name] = text[len(text) - len(text) * _CHILD_SHARE // 100:]
        size = sum(len(self.fast[n][0]) * len(c) for n, c in shares.items()) * CODE_SIZE
        shared = mmap.mmap(-1, max(size, 1))
        frames = {n: self.fast[n][0] for n in shares}
        encounters = self._encounters(plans)
        child = _Forked(functools.partial(_factorize_share, frames, shares, shared),
                        functools.partial(_reference_part, rest, self.terms, self.version,
                                          *encounters))
        try:
            if plans:
                child.result()                      # nothing to factorize
            else:
                plans = self._plans(_shared_columns(shared, shares, child, self.fast))
            reference: _ReferencePart = child.result()
        finally:
            child.close()
        return reference, plans

    def _plans(self, factorized: dict[str, dict[str, Coded | None]] | None = None
               ) -> dict[str, ObservationPlan]:
        return {name: ObservationPlan(SPECS[name], frame, file, self.terms, self.version,
                                      self.patients, (factorized or {}).get(name))
                for name, (frame, file) in self.fast.items()}

    @staticmethod
    def _encounters(plans: dict[str, ObservationPlan]
                    ) -> tuple[dict[tuple[str, float], str], dict[str, bytes]]:
        keys: dict[tuple[str, float], str] = {}
        lines: dict[str, bytes] = {}
        for plan in plans.values():
            keys.update(plan.encounter_keys)
            lines.update(zip(plan.encounter_keys.values(), plan.encounter_lines, strict=True))
        return keys, lines

    # -- the report ------------------------------------------------------------------------
    def _report(self, plans: dict[str, ObservationPlan], reference: _ReferencePart) -> None:
        report, theirs = self.report, reference.report
        converted = dict(theirs.rows_converted)
        rejected: dict[str, list[RejectedRow]] = defaultdict(list)
        for row in theirs.rejected:
            rejected[row.dataset].append(row)
        carried = dict(theirs.carried)
        out: Counter[str] = Counter(theirs.resources_out)
        for name, plan in plans.items():
            converted[name] = plan.converted
            rejected[name] = list(plan.rejected)
            if plan.carried_counts:
                carried[name] = Counter({v: plan.carried_counts[v] for v in plan.carried_order})
            out["Observation"] += plan.converted
            out["Encounter"] += len(plan.encounter_lines)
        order = [*_REPORT_ORDER, *sorted(set(converted) - set(_REPORT_ORDER))]
        report.rows_converted = {d: converted[d] for d in order if d in converted}
        report.rejected = [r for d in [*order, *sorted(set(rejected) - set(order))]
                           for r in rejected.get(d, [])]
        report.carried = defaultdict(Counter)
        for d in [*order, *sorted(set(carried) - set(order))]:
            if d in carried:
                report.carried[d] = carried[d]
        report.resources_out = +out
        report.skipped_datasets = dict(theirs.skipped_datasets)

    # -- the files ------------------------------------------------------------------------
    def _write(self, out: Path, plans: dict[str, ObservationPlan], reference: _ReferencePart,
               validate: bool) -> list[Path]:
        lines = reference.lines
        types = set(lines)
        for plan in plans.values():
            if plan.converted:
                types.add("Observation")
            if plan.encounter_lines:
                types.add("Encounter")
        with staging_folder(out) as staging:   # a failed run leaves no trace
            for rtype in sorted(types):
                target = staging / f"{rtype}.ndjson"
                if rtype == "Observation":
                    self._observations(target, plans, lines.get(rtype, []))
                else:
                    head: list[bytes] = []
                    if rtype == "Encounter":
                        head = [line for p in plans.values() for line in p.encounter_lines]
                    with open(target, "wb") as handle:
                        handle.write(b"\n".join([*head, *lines.get(rtype, [])]) + b"\n")
            if validate:
                _validate(staging, self.version)
            return publish(staging, out)

    def _observations(self, target: Path, plans: dict[str, ObservationPlan],
                      tail: list[bytes]) -> None:
        """The fast domains' lines, then the reference's Observations (VS)."""
        parts = []
        offset = 0
        for plan in plans.values():
            pieces = plan.pieces()
            lengths = line_lengths(pieces, plan.converted)
            parts.append((pieces, lengths, offset))
            offset += int(lengths.sum())
        rest = b"".join(line + b"\n" for line in tail)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            os.ftruncate(fd, offset + len(rest))      # parts land in their own ranges
            for pieces, lengths, start in parts:
                self._write_plan(str(target), fd, pieces, lengths, start)
            if rest:
                os.pwrite(fd, rest, offset)
        finally:
            os.close(fd)

    def _write_plan(self, path: str, fd: int, pieces: Pieces, lengths: np.ndarray,
                    start: int) -> None:
        """One fast domain's lines from byte ``start`` on, split between processes by size."""
        rows = len(lengths)
        if self.workers <= 1 or rows < SPLIT_FROM:
            write_lines(fd, start, pieces, 0, rows, lengths)
            return
        ends = np.cumsum(lengths)
        bounds = [0, *[int(np.searchsorted(ends, ends[-1] * k / self.workers))
                       for k in range(1, self.workers)], rows]
        offsets = [start + (int(ends[b - 1]) if b else 0) for b in bounds[:-1]]
        errors = multiprocessing.get_context("fork").SimpleQueue()
        children: list[BaseProcess] = []
        try:
            for k in range(1, self.workers):
                children.append(forked_process(_write_part, path, offsets[k], pieces, lengths,
                                               bounds[k], bounds[k + 1], errors))
            write_lines(fd, offsets[0], pieces, bounds[0], bounds[1], lengths)
        except BaseException:
            for child in children:
                child.terminate()
            raise
        finally:
            for child in children:
                child.join()
        if not errors.empty():
            raise OSError(*errors.get())
        if any(child.exitcode != 0 for child in children):
            raise RuntimeError("a process writing Observation.ndjson failed")


def _validate(folder: Path, version: str) -> None:
    """fhir.resources validation of every line written (``ConversionError`` on the first)."""
    from fhircdisc.converters.fhir_validation import validate_resources

    for path in sorted(folder.glob("*.ndjson")):
        for chunk in _chunks(path):
            validate_resources(chunk, version)


def _chunks(path: Path) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    with path.open("rb") as handle:
        for line in handle:
            chunk.append(orjson.loads(line))
            if len(chunk) == _VALIDATE_CHUNK:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


__all__ = ["FhirNdjson", "to_fhir_ndjson"]
