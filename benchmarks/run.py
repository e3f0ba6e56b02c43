"""Benchmarks of the conversion paths, with baselines measured in the same run.

    python benchmarks/run.py [--observations 1000000] [--patients 5000] [--slice 2000]
                             [--memory-sizes 500000,2000000] [--local-codes 0.1]
                             [--encounters] [--panels 0.2] [--enrolled 0.1] [--grouped]
                             [--gzip] [--formats xpt]
                             [--repeat 3]

On a generated Bulk Data export (benchmarks/generate.py), prints:
- bare orjson parse of every line (the floor), resources/s;
- FHIR -> SDTM with the streaming engine (``stream_to_sdtm``, XPT output unless
  ``--formats`` says otherwise, conformance check on), on one process and on every
  core: resources/s and time as a multiple of the bare parse, and the time and CPU
  time (every process) of each pass on every core; and the in-memory engine on the same
  input when it is small enough;
- with ``--enrolled``, the conversion enrols only that share of the Patients (a subjects
  file: a hospital export converted for a trial's subjects), the others' results being
  reported as not enrolled;
- with ``--grouped``, each file's Observations are sorted by patient and date, as a
  server exporting patient by patient writes them (random order otherwise);
- with ``--gzip``, every file is gzipped (level 6), the bare parse decompressing them;
- ``--formats`` (default ``xpt``; for example ``json`` or ``xpt,json``) are the output
  formats of every conversion;
- a baseline that validates each resource with fhir.resources before the streaming
  conversion, run on a slice and extrapolated per resource (slice size printed);
- the parse, the conversion on every core and the baseline run ``--repeat`` rounds, one
  after the other, so that a slow phase of a shared machine slows a round's parse as
  much as its conversion: the table shows the medians, and the median and range of the
  per-round ratios (the passes are those of the median round);
- peak resident memory of the streaming conversion in a fresh process, for each size of
  ``--memory-sizes``, and the growth between the smallest and the largest; with the
  peak of all its processes' summed PSS (what they take together: forked workers share
  the main process's pages, which RSS counts in full in each);
SDTM -> FHIR NDJSON on the CDISC pilot LB scaled up has its own benchmark:
benchmarks/sdtm_to_fhir.py.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.generate import add_shape_options, generate, gzipped  # noqa: E402

#: above this many Observations the in-memory engine is not run (it holds everything)
MEMORY_ENGINE_UP_TO = 200_000


def bare_parse(files: list[Path]) -> tuple[int, float]:
    start = time.perf_counter()
    count = 0
    for path in files:
        with _open(path) as handle:
            for line in handle:
                if line.strip():
                    orjson.loads(line)
                    count += 1
    return count, time.perf_counter() - start


def stream(files: list[Path], out: Path, workers: int, subjects: Path | None = None,
           formats: tuple[str, ...] = ("xpt",)
           ) -> tuple[float, dict[str, tuple[float, float]]]:
    """Seconds for the streaming conversion, and for each of its passes its seconds and
    its CPU seconds (every process)."""
    from fhircdisc.converters.streaming import stream_to_sdtm

    start = time.perf_counter()
    result = stream_to_sdtm(files, out, formats, study_id="BENCH", workers=workers,
                            subjects=subjects)
    elapsed = time.perf_counter() - start
    shutil.rmtree(out)
    return elapsed, {name: (seconds, result.cpu.get(name, 0.0))
                     for name, seconds in result.timings.items()}


PASSES = {"context": "pass 1: context, tasks", "observations": "pass 2: Observations",
          "datasets": "pass 3: buckets finished", "writing": "writing"}


def in_memory(files: list[Path], out: Path, subjects: Path | None = None,
              formats: tuple[str, ...] = ("xpt",)) -> float:
    from fhircdisc.converters.fhir_to_sdtm import to_sdtm

    start = time.perf_counter()
    study = to_sdtm(files, study_id="BENCH", workers=1, subjects=subjects)
    study.write(out, formats, validation=study.validate())
    elapsed = time.perf_counter() - start
    shutil.rmtree(out)
    return elapsed


def _open(path: Path) -> Any:
    """A file for reading as bytes, decompressed when gzipped."""
    return gzip.open(path, "rb") if path.name.endswith(".gz") else path.open("rb")


def strict_baseline(files: list[Path], size: int) -> tuple[int, float]:
    """fhir.resources validation of the first ``size`` Observations (the per-resource cost)."""
    from fhir.resources.R4B.observation import Observation

    lines = []
    observations = [path for path in files if path.name.startswith("Observation")]
    with _open(observations[-1]) as handle:
        for line in handle:
            lines.append(orjson.loads(line))
            if len(lines) == size:
                break
    start = time.perf_counter()
    for data in lines:
        Observation.model_validate(data)
    return len(lines), time.perf_counter() - start


def subjects_file(folder: Path, patients: int, share: float) -> Path | None:
    """A subjects file enrolling ``share`` of the generated Patients (spread evenly), or
    None for every Patient."""
    if not share:
        return None
    step = max(1, round(1 / share))
    path = folder / "subjects.csv"
    path.write_text("patient_id,SITEID\n" + "".join(
        f"p{n:07d},S{n % 3 + 1}\n" for n in range(0, patients, step)), encoding="utf-8")
    return path


def add_export_options(parser: argparse.ArgumentParser) -> None:
    """The options that shape the generated export, the subjects file and the
    conversion's output formats."""
    add_shape_options(parser)
    parser.add_argument("--enrolled", type=float, default=0.0,
                        help="share of the Patients a subjects file enrols (0: all)")
    parser.add_argument("--formats", default="xpt",
                        help="output formats of the conversions, comma-separated")


def export(args: argparse.Namespace, folder: Path, observations: int) -> list[Path]:
    """The export ``args`` (:func:`add_export_options`) describe, with ``observations``
    Observations, generated into ``folder`` (gzipped with ``--gzip``)."""
    files = generate(folder, observations, args.patients, local_codes=args.local_codes,
                     encounters=args.encounters, grouped=args.grouped, panels=args.panels)
    return gzipped(files) if args.gzip else files


def output_formats(args: argparse.Namespace) -> tuple[str, ...]:
    """The ``--formats`` of :func:`add_export_options`."""
    return tuple(name.strip() for name in args.formats.split(",") if name.strip())


def peak_memory(folder: Path, out: Path, subjects: Path | None = None,
                formats: tuple[str, ...] = ("xpt",)) -> tuple[float, float, float | None]:
    """Peak RSS (MB) of a fresh process that streams ``folder`` into ``out``, the largest
    peak among its worker processes, and the peak of the processes' summed PSS (MB;
    None where /proc does not tell). Forked workers share the main process's pages, and
    RSS counts shared pages in full in each process; PSS splits them between the
    processes, so its sum is the memory the conversion takes from the machine."""
    # the process's own peak from /proc (VmHWM) where there is one: getrusage's keeps,
    # across exec, the peak of the process it was forked from (this one, large after
    # the in-memory engine)
    code = ("import resource, sys; from fhircdisc.converters.streaming import stream_to_sdtm; "
            "stream_to_sdtm([sys.argv[1]], sys.argv[2], tuple(sys.argv[4].split(',')), "
            "study_id='B', subjects=sys.argv[3] or None); "
            "hwm = [int(l.split()[1]) for l in open('/proc/self/status') "
            "if l.startswith('VmHWM:')] if sys.platform == 'linux' else []; "
            "print(hwm[0] if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
            "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    process = subprocess.Popen([sys.executable, "-c", code, str(folder), str(out),
                                str(subjects or ""), ",".join(formats)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=ROOT)
    total: float | None = 0.0 if Path("/proc/self/smaps_rollup").exists() else None
    while process.poll() is None:
        if total is not None:
            total = max(total, _pss_mb(process.pid))
        time.sleep(0.1)
    stdout, stderr = process.communicate()
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, "stream_to_sdtm", stdout, stderr)
    shutil.rmtree(out, ignore_errors=True)
    parent, child = (int(v) for v in stdout.split())
    return parent / 1024, child / 1024, total


def _pss_mb(pid: int) -> float:
    """The summed PSS (MB) of ``pid`` and its child processes, from /proc."""
    total = 0
    for one in (pid, *_children(pid)):
        try:
            text = Path(f"/proc/{one}/smaps_rollup").read_text()
        except OSError:
            continue                     # ended between the listing and the reading
        total += sum(int(line.split()[1]) for line in text.splitlines()
                     if line.startswith("Pss:"))
    return total / 1024


def _children(pid: int) -> list[int]:
    try:
        return [int(n) for n in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@dataclass(frozen=True)
class Round:
    """Seconds of one round: the bare parse, the conversion on every core (with the time
    of each of its passes), and the baseline (validation, then the conversion)."""

    parse: float
    convert: float
    timings: dict[str, tuple[float, float]]   # pass -> (seconds, CPU seconds)
    baseline: float


def _spread(ratios: list[float]) -> str:
    """The median of per-round ratios, with their range when there are several."""
    if len(ratios) == 1:
        return f"{ratios[0]:.1f}x"
    return f"{median(ratios):.1f}x (rounds {min(ratios):.1f}-{max(ratios):.1f}x)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_export_options(parser)
    parser.add_argument("--slice", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds of parse, conversion and baseline, run one after the "
                             "other (medians and per-round ratios are shown)")
    parser.add_argument("--memory-sizes", default="500000,2000000",
                        help="Observation counts whose peak RSS is measured ('' to skip)")
    args = parser.parse_args()
    formats = output_formats(args)
    console = Console()
    cores = os.cpu_count() or 1
    table = Table(title=f"fhircdisc benchmarks ({cores} cores, {args.observations:,} "
                        f"Observations + {args.patients:,} Patients"
                        + (f", {args.local_codes:.0%} of lab codes local" if args.local_codes
                           else "")
                        + (", with encounters" if args.encounters else "")
                        + (f", {args.panels:.0%} of vital signs BP panels" if args.panels
                           else "")
                        + (f", {args.enrolled:.0%} of Patients enrolled" if args.enrolled
                           else "") + (", grouped by patient" if args.grouped else "")
                        + (", gzipped" if args.gzip else "")
                        + (f", output {'+'.join(formats)}" if formats != ("xpt",) else "")
                        + ")")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("ratio", justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        console.print(f"generating {args.observations:,} Observations ...")
        files = export(args, work / "export", args.observations)
        subjects = subjects_file(work, args.patients, args.enrolled)
        rounds = []
        for number in range(1, args.repeat + 1):
            console.print(f"round {number} of {args.repeat}: parse, conversion, baseline ...")
            count, parse_s = bare_parse(files)
            every, timings = stream(files, work / "out", cores, subjects, formats)
            sliced, strict_s = strict_baseline(files, args.slice)
            rounds.append(Round(parse_s, every, timings, strict_s / sliced * count + every))
        parse_s = median(r.parse for r in rounds)
        every = median(r.convert for r in rounds)
        middle = min(rounds, key=lambda r: abs(r.convert - every))
        one, _ = stream(files, work / "out", 1, subjects, formats) if cores > 1 \
            else (every, {})
        table.add_row("bare orjson parse", f"{count / parse_s:,.0f} resources/s", "1.0x")
        table.add_row("FHIR -> SDTM, streaming, 1 process", f"{count / one:,.0f} resources/s",
                      f"{one / parse_s:.1f}x the parse time")
        table.add_row(f"FHIR -> SDTM, streaming, {cores} processes",
                      f"{count / every:,.0f} resources/s",
                      f"{_spread([r.convert / r.parse for r in rounds])} the parse time; "
                      f"{one / every:.2f}x 1 process")
        for name, label in PASSES.items():
            seconds, cpu = middle.timings.get(name, (0.0, 0.0))
            table.add_row(f"  {label}", f"{seconds:.1f} s",
                          f"{seconds / middle.convert:.0%} of the time; CPU {cpu:.1f} s "
                          f"({cpu / count * 1e6:.1f} µs a line)")
        if args.observations <= MEMORY_ENGINE_UP_TO:
            memory_s = in_memory(files, work / "out", subjects, formats)
            table.add_row("FHIR -> SDTM, in-memory engine", f"{count / memory_s:,.0f} "
                          "resources/s", f"{memory_s / every:.2f}x the streaming time")
        strict_total = median(r.baseline for r in rounds)
        table.add_row(f"baseline: fhir.resources validation first (slice {sliced:,}, "
                      "extrapolated)", f"{count / strict_total:,.0f} resources/s",
                      f"streaming is {_spread([r.baseline / r.convert for r in rounds])} "
                      "faster")
        sizes = [int(s) for s in args.memory_sizes.split(",") if s.strip()]
        peaks = []
        for size in sizes:
            folder = work / f"mem{size}"
            console.print(f"peak memory at {size:,} Observations ...")
            export(args, folder, size)
            parent, worker, pss = peak_memory(folder, work / "out", subjects, formats)
            peaks.append(max(parent, worker))
            shutil.rmtree(folder)
            table.add_row(f"peak RSS, streaming, {size:,} Observations (subprocess)",
                          f"{parent:,.0f} MB", f"largest worker {worker:,.0f} MB")
            if pss is not None:
                table.add_row("  all processes together (peak of the summed PSS)",
                              f"{pss:,.0f} MB", "")
        if len(peaks) > 1:
            table.add_row(f"peak RSS growth {sizes[0]:,} -> {sizes[-1]:,}",
                          f"{(peaks[-1] / peaks[0] - 1) * 100:+.1f}%", "")
    console.print(table)


if __name__ == "__main__":
    main()
