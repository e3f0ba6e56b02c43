"""``fhircdisc pool``: pool several studies into one harmonized SDTM set.

Registered on the main group by ``fhircdisc.cli`` (``main.add_command(pool_command)``).
Exit codes: 0 pooled; 1 pooled, but conflicts are left (listed in the report; not with
``--allow-conflicts``); 2 could not run (bad arguments or unreadable input).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from fhircdisc.errors import FhircdiscError

FORMAT_CHOICES = ("xpt", "json", "ndjson", "csv")


def _fail(message: object) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _target_units(values: tuple[str, ...]) -> dict[str, str]:
    units: dict[str, str] = {}
    for value in values:
        test, sep, unit = value.partition("=")
        if not sep or not test.strip() or not unit.strip():
            _fail(f"--target-unit {value!r}: expected TESTCD=UNIT, e.g. GLUC=mmol/L")
        units[test.strip()] = unit.strip()
    return units


@click.command("pool")
@click.argument("studies", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", "out_dir", required=True,
              type=click.Path(path_type=Path, file_okay=False),
              help="Folder for the pooled datasets, pooling-report.json and usubjid-map.csv.")
@click.option("--format", "formats", multiple=True, type=click.Choice(FORMAT_CHOICES),
              default=("xpt",), show_default=True, help="Output format; repeat for several.")
@click.option("--allow-conflicts", is_flag=True,
              help="Exit 0 even when conflicts are left (they are still in the report).")
@click.option("--study-id", "study_ids", multiple=True,
              help="STUDYID of a FHIR input without ResearchSubject; repeat, in input order.")
@click.option("--target-unit", "target_units", multiple=True, metavar="TESTCD=UNIT",
              help="Standard unit for a test instead of the most common one; repeatable.")
@click.option("--terminology", "terminology", multiple=True,
              type=click.Path(path_type=Path, dir_okay=False),
              help="Extra terminology rows (CSV, same columns as the built-in tables).")
@click.option("--creation-datetime", help="Fixed Dataset-JSON creation timestamp "
              "(for reproducible output).")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
def pool_command(studies: tuple[Path, ...], out_dir: Path, formats: tuple[str, ...],
                 allow_conflicts: bool, study_ids: tuple[str, ...],
                 target_units: tuple[str, ...], terminology: tuple[Path, ...],
                 creation_datetime: str | None, quiet: bool) -> None:
    """Pool two or more studies (SDTM folders or FHIR input) into one harmonized SDTM set.

    Subject ids are made unique, lab and vital-sign results brought to one unit per test
    (UCUM), test codes reconciled by LOINC and CT versions compared; everything is
    reported in pooling-report.json and summarized here.
    """
    if len(studies) < 2:
        _fail(f"pool needs at least two studies, got {len(studies)}")
    units = _target_units(target_units)
    try:
        from fhircdisc.mappings import terminology as terminology_module
        from fhircdisc.pooling import load_inputs, pool_studies

        inputs = load_inputs(studies, study_ids, terminology=terminology)
        pooled = pool_studies(inputs, target_units=units or None,
                              terminology=terminology_module.load(terminology))
        pooled.write(out_dir, formats, creation_datetime=creation_datetime)
    except FhircdiscError as exc:
        _fail(exc)
    if not quiet:
        from rich.console import Console

        from fhircdisc.pooling import print_report

        print_report(pooled.report, Console(), out_dir)
    sys.exit(1 if pooled.report.conflicts and not allow_conflicts else 0)
