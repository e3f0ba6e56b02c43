"""The ``fhircdisc`` command line: thin wrappers over the Python API.

Exit codes: 0 done, 1 done but the input had problems (see the report),
2 could not run (bad arguments or unreadable input).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from fhircdisc import __version__
from fhircdisc.errors import FhircdiscError, InputError

FORMAT_CHOICES = ("xpt", "json", "ndjson", "csv")
VERSION_CHOICES = ("auto", "R4", "R4B", "R5")


@contextlib.contextmanager
def _read_progress(enabled: bool) -> Iterator[Callable[[str, int], None] | None]:
    """A progress line (resources read, rate, elapsed, current file or step) on a terminal."""
    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.completed:,} resources read"),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
               TextColumn("{task.description}"))
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("", total=None, rate="")
        start = time.perf_counter()
        read = [-1]

        def update(label: str, count: int) -> None:
            # the label: the file being read, or the step under way once all is read
            # (then the count stays, and so does the reading rate)
            if count != read[0]:
                read[0] = count
                elapsed = max(time.perf_counter() - start, 1e-9)
                bar.update(task, rate=f"{count / elapsed:,.0f}/s")
            bar.update(task, completed=count, description=Path(label).name)

        yield update


ENGINES = ("auto", "memory", "stream", "spark")
#: from this much NDJSON input ``--engine auto`` streams
STREAM_FROM_BYTES = 100 * 1024 * 1024


def _ndjson_bytes(inputs: tuple[Path, ...]) -> int:
    from fhircdisc.converters.fhir_reader import expand_sources, is_ndjson, text_size

    return sum(text_size(path) for path in expand_sources(inputs) if is_ndjson(path))


def _strict_check(inputs: tuple[Path, ...], fhir_version: str, workers: int | None) -> None:
    """Every input resource through the fhir.resources models; the first failures raise."""
    from fhircdisc.converters.fhir_reader import read_sources
    from fhircdisc.converters.strict import check_resources

    check_resources(read_sources(inputs), fhir_version, workers)


def _spark_engine() -> Callable[..., Any]:
    from fhircdisc.converters.spark_engine import spark_to_sdtm

    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return spark_to_sdtm(*args, **kwargs)
        except ImportError as exc:          # PySpark is an optional extra
            raise InputError(f"--engine spark needs PySpark and Java: "
                             f"pip install 'fhircdisc[spark]' ({exc})") from exc
    return run


def _fail(exc: FhircdiscError) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


#: the exit code of a command stopped by Ctrl-C (a shell's code for SIGINT)
INTERRUPTED = 130


class _Commands(click.Group):
    """The command group: Ctrl-C stops a command with "Aborted!" and exit code 130 (click
    gives 1, which here means converted with input problems)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("\nAborted!", err=True)
            sys.exit(INTERRUPTED)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fhircdisc")
def main() -> None:
    """Convert clinical-trial data between HL7 FHIR and CDISC SDTM."""


@main.command("to-sdtm")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Folder for the SDTM datasets, report and provenance.")
@click.option("--study-id", help="STUDYID; with no ResearchSubject in the input, enrols every "
              "Patient.")
@click.option("--site-id", help="SITEID for subjects whose study names no site.")
@click.option("--subjects", type=click.Path(path_type=Path, dir_okay=False),
              help="CSV of subjects to enrol: patient_id,SUBJID,SITEID,ARMCD,ARM,RFICDTC.")
@click.option("--enrol-all", is_flag=True, help="Enrol every Patient, even when the input has "
              "ResearchSubjects (needs --study-id).")
@click.option("--format", "formats", multiple=True, type=click.Choice(FORMAT_CHOICES),
              default=("xpt",), show_default=True, help="Output format; repeat for several.")
@click.option("--fhir-version", type=click.Choice(VERSION_CHOICES, case_sensitive=False),
              default="auto", show_default=True)
@click.option("--terminology", "terminology", multiple=True,
              type=click.Path(path_type=Path, dir_okay=False),
              help="Extra terminology rows (CSV, same columns as the built-in tables).")
@click.option("--creation-datetime", help="Fixed Dataset-JSON creation timestamp "
              "(for reproducible output).")
@click.option("--no-validate", is_flag=True, help="Skip the SDTM conformance check of the "
              "output (its findings go into the report otherwise).")
@click.option("--engine", type=click.Choice(ENGINES), default="auto", show_default=True,
              help="memory: hold the study in memory; stream: Observations in chunks over "
              "worker processes, spilled to disk (bounded memory, for Bulk Data exports); "
              "spark: the streaming passes as Spark jobs (needs fhircdisc[spark] and Java); "
              "auto: stream from 100 MB of NDJSON text (a gzipped file counts "
              "uncompressed).")
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes "
              "(default: one per core).")
@click.option("--strict", is_flag=True, help="Also validate every input resource with the "
              "fhir.resources models (slow); structure errors stop the conversion.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
def to_sdtm_command(inputs: tuple[Path, ...], out_dir: Path, study_id: str | None,
                    site_id: str | None, subjects: Path | None, enrol_all: bool,
                    formats: tuple[str, ...],
                    fhir_version: str, terminology: tuple[Path, ...],
                    creation_datetime: str | None, no_validate: bool, engine: str,
                    workers: int | None, strict: bool, quiet: bool) -> None:
    """Convert FHIR Bundles, Bulk Data NDJSON files or folders of them to SDTM."""
    from fhircdisc.converters.fhir_to_sdtm import to_sdtm
    from fhircdisc.summary import datasets_of, print_summary, problems

    try:
        if strict:
            _strict_check(inputs, fhir_version, workers)
        if engine == "auto":
            engine = "stream" if _ndjson_bytes(inputs) >= STREAM_FROM_BYTES else "memory"
        with _read_progress(enabled=not quiet) as progress:
            if engine in ("stream", "spark"):
                options: dict[str, Any] = dict(
                    study_id=study_id, site_id=site_id, subjects=subjects,
                    fhir_version=fhir_version, terminology=terminology, enrol_all=enrol_all,
                    progress=progress, validate=not no_validate,
                    creation_datetime=creation_datetime)
                if engine == "spark":
                    result = _spark_engine()(inputs, out_dir, formats, **options)
                else:
                    from fhircdisc.converters.streaming import stream_to_sdtm

                    result = stream_to_sdtm(inputs, out_dir, formats, workers=workers,
                                            **options)
                report, datasets, validation = result.report, result.datasets, \
                    result.validation
            else:
                study = to_sdtm(inputs, study_id=study_id, site_id=site_id,
                                subjects=subjects, fhir_version=fhir_version,
                                terminology=terminology, enrol_all=enrol_all,
                                progress=progress, workers=workers)
        if engine == "memory":
            validation = None if no_validate or not study.domains else study.validate()
            study.write(out_dir, formats, creation_datetime=creation_datetime,
                        validation=validation)
            report, datasets = study.report, datasets_of(study)
    except FhircdiscError as exc:
        _fail(exc)
    if not quiet:
        print_summary(report, datasets, Console(), out_dir)
        if validation is not None:
            counts = ", ".join(f"{validation.count(s)} {s}(s)" for s in
                               ("error", "warning", "notice"))
            Console().print(f"SDTM conformance: {counts} (details in the report; "
                            "`fhircdisc validate` for the table)")
    sys.exit(1 if problems(report) else 0)


@main.command("to-fhir")
@click.argument("sdtm_dir", type=click.Path(path_type=Path))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Folder for bundle.json (or <Type>.ndjson files) and fhir-report.json.")
@click.option("--bundle", "bundle_type", type=click.Choice(("collection", "transaction")),
              default="collection", show_default=True, help="Bundle type to write.")
@click.option("--ndjson", is_flag=True, help="Write Bulk Data NDJSON (one file per type) "
              "instead of a Bundle.")
@click.option("--fhir-version", type=click.Choice(("R4", "R5"), case_sensitive=False),
              default="R4", show_default=True)
@click.option("--terminology", "terminology", multiple=True,
              type=click.Path(path_type=Path, dir_okay=False))
@click.option("--timestamp", help="Fixed Bundle.timestamp (for reproducible output).")
@click.option("--no-validate", is_flag=True, help="Skip fhir.resources validation of the "
              "output (faster; the output is then unchecked).")
@click.option("-q", "--quiet", is_flag=True)
def to_fhir_command(sdtm_dir: Path, out_dir: Path, bundle_type: str, ndjson: bool,
                    fhir_version: str, terminology: tuple[Path, ...], timestamp: str | None,
                    no_validate: bool, quiet: bool) -> None:
    """Convert a folder of SDTM datasets (XPT, Dataset-JSON, CSV) to FHIR."""
    import orjson

    from fhircdisc.converters.atomic import write_bytes_atomic
    from fhircdisc.converters.fhir_writer import write_bundle
    from fhircdisc.converters.sdtm_to_fhir import REPORT_NAME, to_fhir
    from fhircdisc.converters.sdtm_to_fhir_ndjson import to_fhir_ndjson
    from fhircdisc.summary import print_fhir_summary

    try:
        if ndjson:
            # LB streamed straight into Observation.ndjson, the same bytes as the
            # resource-by-resource writer
            report = to_fhir_ndjson(sdtm_dir, out_dir, fhir_version=fhir_version,
                                    terminology=terminology, validate=not no_validate).report
        else:
            output = to_fhir(sdtm_dir, fhir_version=fhir_version, terminology=terminology,
                             validate=not no_validate)
            write_bundle(output.resources, out_dir / "bundle.json", bundle_type,
                         timestamp=timestamp)
            report = output.report
        write_bytes_atomic(out_dir / REPORT_NAME, orjson.dumps(
            report.to_dict(), option=orjson.OPT_INDENT_2))
    except FhircdiscError as exc:
        _fail(exc)
    if not quiet:
        print_fhir_summary(report, Console(), out_dir)
    sys.exit(1 if report.rejected else 0)


@main.command("validate")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--kind", type=click.Choice(("sdtm", "fhir", "define")),
              help="What PATH holds (default: detected).")
@click.option("--fhir-version", type=click.Choice(VERSION_CHOICES, case_sensitive=False),
              default="auto", show_default=True)
@click.option("--terminology", "terminology", multiple=True,
              type=click.Path(path_type=Path, dir_okay=False))
@click.option("--report-json", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--report-html", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--fail-on", type=click.Choice(("error", "warning", "notice")), default="error",
              show_default=True, help="Lowest severity that makes the exit code 1.")
@click.option("--limit", default=50, show_default=True, help="Findings shown on the terminal.")
@click.option("--skip-structure", is_flag=True, help="FHIR: skip the fhir.resources model "
              "check (slow on large exports); references and codes are still checked.")
@click.option("-q", "--quiet", is_flag=True)
def validate_command(path: Path, kind: str | None, fhir_version: str,
                     terminology: tuple[Path, ...], report_json: Path | None,
                     report_html: Path | None, fail_on: str, limit: int, skip_structure: bool,
                     quiet: bool) -> None:
    """Validate an SDTM folder, FHIR Bundle/NDJSON or define.xml (detected automatically).

    Exit code 0: nothing at or above --fail-on; 1: findings at or above it; 2: could not run.
    """
    from fhircdisc.reporting import print_findings, write_html_report, write_json_report
    from fhircdisc.schemas.findings import SEVERITIES
    from fhircdisc.validation import validate_path

    try:
        result = validate_path(path, kind=kind, fhir_version=fhir_version,
                               terminology=terminology, structure=not skip_structure)
        datasets = None
        if report_html is not None and result.kind == "sdtm":
            from fhircdisc.converters.datasets import read_sdtm_folder
            if path.is_dir():
                datasets = {k: v[0] for k, v in read_sdtm_folder(path).items()}
        if report_json is not None:
            write_json_report(result, report_json)
        if report_html is not None:
            write_html_report(result, report_html, datasets=datasets)
    except FhircdiscError as exc:
        _fail(exc)
    if not quiet:
        print_findings(result, Console(), limit=limit)
    worst = SEVERITIES.index(fail_on)
    failing = any(SEVERITIES.index(f.severity) <= worst for f in result.findings)
    sys.exit(1 if failing else 0)


@main.command("define")
@click.argument("sdtm_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("-o", "--output", "out_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Where to write define.xml (default: SDTM_DIR/define.xml).")
@click.option("--study-name", help="Study name (default: the STUDYID).")
@click.option("--creation-datetime", help="Fixed ODM CreationDateTime (reproducible output).")
def define_command(sdtm_dir: Path, out_path: Path | None, study_name: str | None,
                   creation_datetime: str | None) -> None:
    """Write Define-XML 2.1 for a folder of SDTM datasets (validated against its XSD)."""
    from fhircdisc.schemas.define_writer import write_define

    try:
        target, errors = write_define(sdtm_dir, out_path, study_name=study_name,
                                      creation_datetime=creation_datetime)
    except FhircdiscError as exc:
        _fail(exc)
    click.echo(f"wrote {target} (valid against the Define-XML 2.1 XSD)" if not errors else
               f"wrote {target}: {errors} XSD error(s)")
    sys.exit(1 if errors else 0)


@main.command("demo")
@click.argument("out_dir", required=False, default="demo-output", type=click.Path(path_type=Path))
@click.option("--seed", default=2020, show_default=True, help="Seed of the synthetic trial.")
@click.option("--format", "formats", multiple=True, type=click.Choice(FORMAT_CHOICES),
              default=("xpt", "json"), show_default=True)
@click.option("-q", "--quiet", is_flag=True)
def demo_command(out_dir: Path, seed: int, formats: tuple[str, ...], quiet: bool) -> None:
    """Generate the built-in UC-MSC ARDS demo trial as FHIR and convert it to SDTM."""
    from fhircdisc.examples.demo_run import run_demo

    try:
        result = run_demo(out_dir, seed=seed, formats=formats)
    except FhircdiscError as exc:
        _fail(exc)
    if not quiet:
        result.print(Console())


def _register() -> None:
    from fhircdisc.cli_package import package_command
    from fhircdisc.cli_pool import pool_command

    main.add_command(package_command)
    main.add_command(pool_command)


_register()


if __name__ == "__main__":  # pragma: no cover
    main()
