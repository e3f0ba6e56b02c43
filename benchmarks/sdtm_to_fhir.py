"""SDTM -> FHIR NDJSON on the CDISC pilot LB scaled up: the streamed path against the reference.

    python benchmarks/sdtm_to_fhir.py [--rows 1000000] [--slice 20000] [--workers N]
                                      [--out FOLDER]

Builds the pilot DM + LB (../shared/data/cdisc-sdtm-example/xpt) repeated until LB has
``--rows`` rows, each copy's subjects with new USUBJID / SUBJID (in DM and LB alike).
Then, in this process and without fhir.resources validation:

- the reference path (``to_fhir`` + ``write_ndjson``) on a slice: the first ``--slice``
  LB rows and the DM of their subjects (slice size printed);
- the streamed path (``to_fhir_ndjson``) on the same slice, whose files must be
  byte-identical to the reference's;
- the streamed path on all rows.

Prints resources/s of each, their ratio, the output size and peak resident memory
(``resource.getrusage``: this process, and the largest forked worker). Files are written
under ``--out`` (default: a temporary folder), then removed.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PILOT = ROOT.parent / "shared" / "data" / "cdisc-sdtm-example" / "xpt"


def scaled_pilot(rows: int) -> dict[str, pd.DataFrame]:
    """The pilot DM and LB repeated with new subjects until LB has ``rows`` rows."""
    from fhircdisc.converters.sdtm_to_fhir import load_sdtm

    pilot = load_sdtm(PILOT)
    dm, lb = pilot["DM"][0], pilot["LB"][0]
    copies = math.ceil(rows / len(lb))
    dms, lbs = [], []
    for copy in range(copies):
        suffix = f"-{copy:04d}"
        a, b = dm.copy(), lb.copy()
        a["USUBJID"] = a["USUBJID"] + suffix
        a["SUBJID"] = a["SUBJID"] + suffix
        b["USUBJID"] = b["USUBJID"] + suffix
        dms.append(a)
        lbs.append(b)
    lb_all = pd.concat(lbs, ignore_index=True).iloc[:rows].reset_index(drop=True)
    return {"DM": pd.concat(dms, ignore_index=True), "LB": lb_all}


def sliced(frames: dict[str, pd.DataFrame], rows: int) -> dict[str, pd.DataFrame]:
    """The first ``rows`` LB rows and the DM rows of their subjects."""
    lb = frames["LB"].iloc[:rows].reset_index(drop=True)
    dm = frames["DM"][frames["DM"]["USUBJID"].isin(set(lb["USUBJID"]))]
    return {"DM": dm.reset_index(drop=True), "LB": lb}


def reference(frames: dict[str, pd.DataFrame], out: Path) -> tuple[int, float]:
    from fhircdisc.converters.fhir_writer import write_ndjson
    from fhircdisc.converters.sdtm_to_fhir import to_fhir

    start = time.perf_counter()
    output = to_fhir(frames, validate=False)
    write_ndjson(output.resources, out)
    return len(output.resources), time.perf_counter() - start


def streamed(frames: dict[str, pd.DataFrame], out: Path, workers: int | None
             ) -> tuple[int, float, bool]:
    from fhircdisc.converters.sdtm_to_fhir_ndjson import to_fhir_ndjson

    start = time.perf_counter()
    result = to_fhir_ndjson(frames, out, validate=False, workers=workers)
    elapsed = time.perf_counter() - start
    return sum(result.report.resources_out.values()), elapsed, result.fast


def same_files(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.iterdir())
    return names == sorted(p.name for p in b.iterdir()) and all(
        (a / n).read_bytes() == (b / n).read_bytes() for n in names)


def peak_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="LB rows")
    parser.add_argument("--slice", type=int, default=20_000,
                        help="LB rows the reference path converts")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes of the streamed path (default: every core)")
    parser.add_argument("--out", type=Path, default=None, help="where files are written")
    args = parser.parse_args()
    if not PILOT.exists():
        sys.exit(f"pilot data not found: {PILOT}")
    console = Console()
    frames = scaled_pilot(args.rows)
    part = sliced(frames, min(args.slice, args.rows))
    data_mb = peak_mb(resource.RUSAGE_SELF)
    base = Path(tempfile.mkdtemp(prefix="sdtm-to-fhir-", dir=args.out))
    try:
        fast_count, fast_s, fast = streamed(frames, base / "all", args.workers)
        size = sum(p.stat().st_size for p in (base / "all").iterdir())
        shutil.rmtree(base / "all")
        fast_mb = peak_mb(resource.RUSAGE_SELF)
        ref_count, ref_s = reference(part, base / "reference")
        streamed(part, base / "slice", args.workers)
        identical = same_files(base / "reference", base / "slice")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    cores = os.cpu_count() or 1
    ref_rate, fast_rate = ref_count / ref_s, fast_count / fast_s
    table = Table(title=f"SDTM -> FHIR NDJSON: pilot DM + LB scaled to {args.rows:,} LB rows, "
                        f"{len(frames['DM']):,} subjects, {cores} cores")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("ratio", justify="right")
    table.add_row(f"reference path, slice of {len(part['LB']):,} LB rows",
                  f"{ref_rate:,.0f} res/s", "1.0x")
    table.add_row(f"to_fhir_ndjson, {fast_count:,} resources in {fast_s:.1f} s",
                  f"{fast_rate:,.0f} res/s", f"{fast_rate / ref_rate:.1f}x")
    table.add_row("fast path taken", "yes" if fast else "no (fallback)", "")
    table.add_row("slice: files byte-identical", "yes" if identical else "NO", "")
    table.add_row("NDJSON written", f"{size / 1e9:.2f} GB", "")
    table.add_row("peak RSS: data built", f"{data_mb:,.0f} MB", "")
    table.add_row("peak RSS: this process", f"{fast_mb:,.0f} MB", "")
    table.add_row("peak RSS: largest worker", f"{peak_mb(resource.RUSAGE_CHILDREN):,.0f} MB", "")
    console.print(table)
    if not identical:
        sys.exit(1)


if __name__ == "__main__":
    main()
