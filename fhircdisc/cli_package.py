"""``fhircdisc package``: the submission package of an SDTM folder, and its verification.

Registered on the main group with ``main.add_command(package_command)``.

Exit codes: 0 packaged / verified; 1 refused because of validation errors, or the
verification found missing, changed or extra files; 2 could not run (bad arguments or
input, one line on stderr).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from fhircdisc.errors import FhircdiscError

#: Error findings listed when packaging is refused (all of them are in `fhircdisc validate`).
MAX_LISTED = 10


def _fail(exc: FhircdiscError) -> NoReturn:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


@click.command("package")
@click.argument("sdtm_dir", required=False, type=click.Path(path_type=Path))
@click.option("-o", "--output", "out_dir", type=click.Path(path_type=Path),
              metavar="SUBMISSION_DIR",
              help="New (or empty) folder for the package.")
@click.option("--dataset-json", is_flag=True,
              help="Also write Dataset-JSON 1.1 copies (in sdtm/dataset-json/).")
@click.option("--force", is_flag=True,
              help="Package even when validation finds errors (the report lists them).")
@click.option("--verify", "verify_dir", type=click.Path(path_type=Path), metavar="DIR",
              help="Check a package written earlier against its manifest instead.")
@click.option("--creation-datetime",
              help="Fixed creation timestamp, e.g. 2020-09-30T12:00:00 (reproducible output).")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
def package_command(sdtm_dir: Path | None, out_dir: Path | None, dataset_json: bool,
                    force: bool, verify_dir: Path | None, creation_datetime: str | None,
                    quiet: bool) -> None:
    """Package SDTM_DIR for submission: XPT v5, define.xml and the validation report in
    m5/datasets/<study>/tabulations/sdtm/, with a SHA-256 manifest.

    \b
    fhircdisc package sdtm/ -o submission/
    fhircdisc package --verify submission/

    Refuses (exit 1) when validation finds errors, unless --force.
    """
    if verify_dir is not None:
        if sdtm_dir is not None or out_dir is not None or dataset_json or force \
                or creation_datetime is not None:
            raise click.UsageError("--verify DIR takes no SDTM_DIR and no packaging options")
        _verify(verify_dir, quiet)
        return
    if sdtm_dir is None:
        raise click.UsageError("give SDTM_DIR to package (or --verify DIR)")
    if out_dir is None:
        raise click.UsageError("give -o/--output SUBMISSION_DIR")
    _package(sdtm_dir, out_dir, dataset_json, force, creation_datetime, quiet)


def _package(sdtm_dir: Path, out_dir: Path, dataset_json: bool, force: bool,
             creation_datetime: str | None, quiet: bool) -> None:
    from fhircdisc.packaging import PackageRefused, build_package

    try:
        result = build_package(sdtm_dir, out_dir, dataset_json=dataset_json, force=force,
                               creation_datetime=creation_datetime)
    except PackageRefused as exc:
        click.echo(f"error: {exc}", err=True)
        errors = [f for f in exc.validation.findings if f.severity == "error"]
        for finding in errors[:MAX_LISTED]:
            where = " ".join(part for part in (
                finding.dataset,
                f"row {finding.row}" if finding.row is not None else "",
                finding.variable or "") if part)
            click.echo(f"  {finding.rule_id} {where}: {finding.message}", err=True)
        if len(errors) > MAX_LISTED:
            click.echo(f"  ... and {len(errors) - MAX_LISTED} more "
                       f"(`fhircdisc validate {sdtm_dir}` lists them all)", err=True)
        sys.exit(1)
    except FhircdiscError as exc:
        _fail(exc)
    if quiet:
        return
    validation = result.validation
    counts = ", ".join(f"{validation.count(s)} {s}(s)" for s in ("error", "warning", "notice"))
    click.echo(f"packaged study {result.study_id}: {len(result.datasets)} dataset(s), "
               f"{len(result.files)} file(s) in {result.root}")
    click.echo(f"  datasets:   {result.sdtm_dir}")
    click.echo(f"  validation: {counts}" + (" (packaged anyway: --force)" if result.forced
                                             else ""))
    click.echo(f"  manifest:   {result.manifest.path} "
               f"(sha256 {result.manifest.sha256}; record it to check the handover)")


def _verify(root: Path, quiet: bool) -> None:
    from fhircdisc.packaging import verify_package

    try:
        result = verify_package(root)
    except FhircdiscError as exc:
        _fail(exc)
    if result.ok:
        if not quiet:
            click.echo(f"verified: all {result.checked} file(s) in {root} match the manifest "
                       f"(manifest sha256 {result.manifest_sha256})")
        sys.exit(0)
    problems = len(result.missing) + len(result.changed) + len(result.extra)
    click.echo(f"verification failed: {problems} problem(s) in {root} "
               f"(manifest sha256 {result.manifest_sha256})", err=True)
    for label, paths in (("missing", result.missing), ("changed", result.changed),
                         ("extra", result.extra)):
        for path in paths:
            click.echo(f"  {label}: {path}", err=True)
    sys.exit(1)
