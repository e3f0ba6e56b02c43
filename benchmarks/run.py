"""Benchmarks of the conversion paths, with baselines measured in the same run.

    python benchmarks/run.py [--observations 100000] [--slice 2000]

Prints, on a generated Bulk Data export (benchmarks/generate.py):
- bare orjson parse of every line (the floor), resources/s;
- FHIR -> SDTM (`to_sdtm`), resources/s and its time as a multiple of the bare parse;
- a baseline that validates each resource with fhir.resources before mapping, run on a
  slice and extrapolated per resource (slice size printed);
- peak resident memory of the conversion, measured in a subprocess;
- SDTM -> FHIR NDJSON on the CDISC pilot LB (if ../shared/data is there), resources/s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.generate import generate  # noqa: E402


def bare_parse(files: list[Path]) -> tuple[int, float]:
    start = time.perf_counter()
    count = 0
    for path in files:
        with path.open("rb") as handle:
            for line in handle:
                if line.strip():
                    orjson.loads(line)
                    count += 1
    return count, time.perf_counter() - start


def convert(files: list[Path], workers: int = 1) -> float:
    from fhircdisc import to_sdtm

    start = time.perf_counter()
    to_sdtm(files, study_id="BENCH", workers=workers)
    return time.perf_counter() - start


def strict_baseline(files: list[Path], size: int) -> tuple[int, float]:
    """fhir.resources validation of the first ``size`` Observations, then the mapping."""
    from fhir.resources.R4B.observation import Observation

    lines = []
    with files[-1].open("rb") as handle:
        for line in handle:
            lines.append(orjson.loads(line))
            if len(lines) == size:
                break
    start = time.perf_counter()
    for data in lines:
        Observation.model_validate(data)
    return len(lines), time.perf_counter() - start


def peak_memory(files: list[Path]) -> float:
    """Peak RSS (MB) of a fresh process that converts ``files``."""
    code = ("import resource, sys; from fhircdisc import to_sdtm; "
            "to_sdtm(sys.argv[1:], study_id='B', workers=1); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code, *map(str, files)], check=True,
                         capture_output=True, text=True, cwd=ROOT)
    return int(out.stdout.strip()) / 1024


def sdtm_to_fhir_rate() -> tuple[int, float] | None:
    pilot = ROOT.parent / "shared" / "data" / "cdisc-sdtm-example" / "xpt"
    if not pilot.exists():
        return None
    from fhircdisc.converters.fhir_writer import write_ndjson
    from fhircdisc.converters.sdtm_to_fhir import load_sdtm, to_fhir

    frames = {k: v[0] for k, v in load_sdtm(pilot).items() if k in ("DM", "LB")}
    start = time.perf_counter()
    output = to_fhir(frames, validate=False)
    with tempfile.TemporaryDirectory() as tmp:
        write_ndjson(output.resources, tmp)
    return len(output.resources), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--observations", type=int, default=100_000)
    parser.add_argument("--patients", type=int, default=2_000)
    parser.add_argument("--slice", type=int, default=2_000)
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        files = generate(Path(tmp), args.observations, args.patients)
        count, parse_s = bare_parse(files)
        convert_s = convert(files)
        cores = os.cpu_count() or 1
        parallel_s = convert(files, cores) if cores > 1 else convert_s
        sliced, strict_s = strict_baseline(files, args.slice)
        strict_total = strict_s / sliced * count + convert_s
        memory = peak_memory(files)
    reverse = sdtm_to_fhir_rate()
    table = Table(title=f"fhircdisc benchmarks ({os.cpu_count()} cores, "
                        f"{args.observations:,} Observations + {args.patients:,} Patients)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("ratio", justify="right")
    table.add_row("bare orjson parse", f"{count / parse_s:,.0f} resources/s", "1.0x")
    table.add_row("FHIR -> SDTM (to_sdtm)", f"{count / convert_s:,.0f} resources/s",
                  f"{convert_s / parse_s:.1f}x the parse time")
    table.add_row(f"FHIR -> SDTM over {cores} processes", f"{count / parallel_s:,.0f} resources/s",
                  f"{convert_s / parallel_s:.2f}x one process")
    table.add_row(f"baseline: fhir.resources validation first (slice {sliced:,})",
                  f"{count / strict_total:,.0f} resources/s",
                  f"to_sdtm is {strict_total / convert_s:.1f}x faster")
    table.add_row("peak RSS of the conversion (subprocess)", f"{memory:,.0f} MB", "")
    if reverse:
        table.add_row("SDTM -> FHIR NDJSON (pilot DM + LB)",
                      f"{reverse[0] / reverse[1]:,.0f} resources/s", "")
    console.print(table)


if __name__ == "__main__":
    main()
