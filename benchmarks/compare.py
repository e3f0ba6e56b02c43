"""Two checkouts of fhircdisc on the same export: the same bytes out, and how much faster.

    python benchmarks/compare.py OTHER [--observations 1000000] [--patients 5000]
                                 [--workers 1] [--rounds 4] [--formats xpt]
                                 [--local-codes 0.1] [--encounters] [--panels 0.2]
                                 [--enrolled 0.1] [--grouped] [--gzip]

OTHER is another checkout of the project (``git worktree add ../base main~3``). On one
generated Bulk Data export (benchmarks/generate.py), the streaming conversion of this
checkout and of OTHER runs in fresh processes, ``--rounds`` times each, interleaved
(other, this, this, other, ...) so that a slow phase of a shared machine weighs on both
alike. It prints:
- whether the two wrote the same bytes (every output file: the datasets, the report,
  the provenance), and which files differ when they do (exit code 1 then);
- per pass, the median CPU time (every process) of each, and for the whole conversion
  its CPU and wall time; the change from OTHER to this checkout as the median and range
  of the paired differences, in seconds and percent; each figure a line, in µs.

A change of a few percent is only told apart from the noise by the paired differences
of several rounds; ``--workers 1`` takes the other processes out of the noise.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

import orjson
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.run import (  # noqa: E402
    PASSES,
    add_export_options,
    export,
    output_formats,
    subjects_file,
)

#: the conversion a fresh process of one checkout runs (its arguments on the command line)
_CONVERT = """
import json, sys, time
import fhircdisc
from fhircdisc.converters.streaming import stream_to_sdtm
files, out, formats, workers, subjects = (sys.argv[1].split("\\n"), sys.argv[2],
                                          sys.argv[3].split(","), int(sys.argv[4]),
                                          sys.argv[5] or None)
start = time.perf_counter()
result = stream_to_sdtm(files, out, formats, study_id="BENCH", workers=workers,
                        subjects=subjects, creation_datetime="2026-01-01T00:00:00")
print(json.dumps({"module": fhircdisc.__file__, "wall": time.perf_counter() - start,
                  "timings": result.timings, "cpu": result.cpu}))
"""


class CompareError(Exception):
    """A checkout that cannot be compared (no fhircdisc in it, a conversion that failed)."""


@dataclass(frozen=True)
class Run:
    """One conversion: its wall seconds, and per pass its seconds and CPU seconds."""

    wall: float
    timings: dict[str, float]
    cpu: dict[str, float]


@dataclass
class Comparison:
    """The runs of both checkouts, in round order, and the output files that differ."""

    other: list[Run] = field(default_factory=list)
    this: list[Run] = field(default_factory=list)
    differing: list[str] = field(default_factory=list)


def convert(tree: Path, files: list[Path], out: Path, formats: tuple[str, ...], workers: int,
            subjects: Path | None) -> Run:
    """The streaming conversion of ``files`` into ``out`` by the checkout ``tree``, in a
    fresh process."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", _CONVERT, "\n".join(map(str, files)), str(out),
         ",".join(formats), str(workers), str(subjects or "")],
        cwd=tree, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise CompareError(f"the conversion of {tree} failed:\n{done.stderr.strip()}")
    found = orjson.loads(done.stdout.strip().splitlines()[-1])
    module = Path(found["module"]).resolve()
    if tree.resolve() not in module.parents:
        raise CompareError(f"{tree} does not hold the fhircdisc that ran ({module}): "
                           "is it a checkout of the project?")
    return Run(found["wall"], found["timings"], found["cpu"])


def differing_files(left: Path, right: Path) -> list[str]:
    """The output files (relative paths) that are not byte for byte the same in both
    folders, or that only one of them has."""
    names = {path.relative_to(left) for path in left.rglob("*") if path.is_file()}
    names |= {path.relative_to(right) for path in right.rglob("*") if path.is_file()}
    return sorted(str(name) for name in names
                  if not (left / name).is_file() or not (right / name).is_file()
                  or not filecmp.cmp(left / name, right / name, shallow=False))


def compare(other: Path, this: Path, files: list[Path], work: Path, *, rounds: int = 4,
            workers: int = 1, formats: tuple[str, ...] = ("xpt",),
            subjects: Path | None = None) -> Comparison:
    """``rounds`` conversions of ``files`` by each checkout, interleaved (other first in
    odd rounds, this first in even ones); the outputs of the first round are compared."""
    found = Comparison()
    for number in range(rounds):
        order = [("other", other), ("this", this)]
        for name, tree in order if number % 2 == 0 else order[::-1]:
            out = work / f"{name}-{number}"
            getattr(found, name).append(convert(tree, files, out, formats, workers, subjects))
        if number == 0:
            found.differing = differing_files(work / "other-0", work / "this-0")
        for name in ("other", "this"):
            shutil.rmtree(work / f"{name}-{number}", ignore_errors=True)
    return found


def _change(before: list[float], after: list[float]) -> tuple[float, float, float]:
    """The median, smallest and largest of the paired differences ``after - before``."""
    deltas = [b - a for a, b in zip(before, after, strict=True)]
    return median(deltas), min(deltas), max(deltas)


def report(found: Comparison, lines: int, other: Path) -> Table:
    """The table of a comparison of conversions of ``lines`` Observations: CPU seconds
    (every process) per pass, and wall seconds in all."""
    table = Table(title=f"this checkout against {other} ({len(found.this)} rounds each, "
                        f"{lines:,} Observations)")
    for column in ("pass", "other", "this", "paired change", "a line"):
        table.add_column(column, justify="left" if column == "pass" else "right")
    rows = [(f"{key} CPU", [run.cpu.get(key, 0.0) for run in found.other],
             [run.cpu.get(key, 0.0) for run in found.this]) for key in PASSES]
    rows.append(("all CPU", [sum(run.cpu.values()) for run in found.other],
                 [sum(run.cpu.values()) for run in found.this]))
    rows.append(("all wall", [run.wall for run in found.other],
                 [run.wall for run in found.this]))
    for label, before, after in rows:
        middle, low, high = _change(before, after)
        base = median(before)
        share = f" {middle / base:+.1%}" if base else ""
        table.add_row(label, f"{base:.2f} s", f"{median(after):.2f} s",
                      f"{middle:+.2f} s{share} ({low:+.2f} to {high:+.2f})",
                      f"{base / lines * 1e6:.2f} -> {median(after) / lines * 1e6:.2f} µs")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("other", type=Path, help="another checkout of the project")
    add_export_options(parser)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    console = Console()
    formats = output_formats(args)
    if not (args.other / "fhircdisc").is_dir():
        console.print(f"error: {args.other} is not a checkout of the project (no fhircdisc "
                      "folder in it)")
        raise SystemExit(2)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        console.print(f"generating {args.observations:,} Observations ...")
        files = export(args, work / "export", args.observations)
        subjects = subjects_file(work, args.patients, args.enrolled)
        console.print(f"{args.rounds} rounds of both conversions ...")
        try:
            found = compare(args.other, ROOT, files, work, rounds=args.rounds,
                            workers=args.workers, formats=formats, subjects=subjects)
        except CompareError as exc:
            console.print(f"error: {exc}")
            raise SystemExit(2) from None
    console.print(report(found, args.observations, args.other))
    if found.differing:
        console.print(f"[bold red]different output[/]: {', '.join(found.differing)}")
        raise SystemExit(1)
    console.print("same bytes out: every output file is identical")


if __name__ == "__main__":
    main()
