"""``fhircdisc demo``: the built-in trial end to end, with a short clinical summary."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from fhircdisc.converters.fhir_to_sdtm import to_sdtm
from fhircdisc.converters.sdtm_to_fhir import FhirOutput
from fhircdisc.examples.demo_codes import DEMO_TERMINOLOGY
from fhircdisc.examples.demo_trial import write_demo_bundle
from fhircdisc.schemas.findings import ValidationResult
from fhircdisc.study import Study
from fhircdisc.summary import datasets_of, print_summary

#: Fixed creation timestamp of demo outputs, so that the same seed gives identical bytes.
DEMO_CREATION_DATETIME = "2020-09-30T12:00:00"
BUNDLE_NAME = "ucmsc-ards-bundle.json"


@dataclass
class DemoResult:
    """Where the demo wrote its files, and what each step gave."""

    out_dir: Path
    bundle_path: Path
    sdtm_dir: Path
    study: Study
    validation: ValidationResult
    define_path: Path
    define_errors: int
    roundtrip_path: Path
    roundtrip: FhirOutput

    def print(self, console: Console) -> None:
        console.print(f"[bold]Demo trial[/bold]: synthetic UC-MSC for COVID-19 ARDS "
                      f"(shaped like IRCT20160809029275N1), FHIR R4 Bundle at {self.bundle_path}")
        console.rule("1. FHIR -> SDTM")
        print_summary(self.study.report, datasets_of(self.study), console, self.sdtm_dir)
        console.print(effect_table(self.study))
        console.rule("2. SDTM conformance")
        counts = {s: self.validation.count(s) for s in ("error", "warning", "notice")}
        by_rule = Counter(f.rule_id for f in self.validation.findings)
        console.print(f"{counts['error']} error(s), {counts['warning']} warning(s), "
                      f"{counts['notice']} notice(s): "
                      + ", ".join(f"{rule} x{n}" for rule, n in sorted(by_rule.items())))
        for finding in self.validation.findings[:3]:
            console.print(f"  {finding.rule_id} {finding.dataset} row {finding.row} "
                          f"{finding.variable}: {finding.message}", markup=False)
        console.print(f"report: {self.sdtm_dir / 'validation-report.html'}")
        console.rule("3. Define-XML 2.1")
        console.print(f"{self.define_path}: " + ("valid against the XSD" if not
                                                 self.define_errors else
                                                 f"{self.define_errors} XSD error(s)"))
        console.rule("4. SDTM -> FHIR")
        out = self.roundtrip.report
        console.print(f"{sum(out.resources_out.values())} FHIR {out.fhir_version} resources "
                      f"validated with fhir.resources, written to {self.roundtrip_path}")


def run_demo(out_dir: str | Path, *, seed: int = 2020, formats: Iterable[str] = ("xpt", "json")
             ) -> DemoResult:
    """The demo end to end: generate the FHIR Bundle (``out_dir/fhir``), convert it to SDTM
    and validate it (``out_dir/sdtm``, with define.xml and the validation reports), and
    convert the SDTM back to FHIR (``out_dir/fhir-from-sdtm``)."""
    from fhircdisc.converters.fhir_writer import write_bundle
    from fhircdisc.converters.sdtm_to_fhir import to_fhir
    from fhircdisc.reporting import write_html_report, write_json_report
    from fhircdisc.schemas.define_writer import write_define

    out = Path(out_dir)
    bundle_path = write_demo_bundle(out / "fhir" / BUNDLE_NAME, seed=seed)
    study = to_sdtm([bundle_path], terminology=[DEMO_TERMINOLOGY])
    validation = study.validate()
    sdtm_dir = out / "sdtm"
    study.write(sdtm_dir, formats, creation_datetime=DEMO_CREATION_DATETIME,
                validation=validation)
    write_json_report(validation, sdtm_dir / "validation-report.json")
    write_html_report(validation, sdtm_dir / "validation-report.html",
                      datasets=dict(study.domains), title="Demo trial: validation report",
                      generated=DEMO_CREATION_DATETIME)
    define_path, define_errors = write_define(sdtm_dir, creation_datetime=DEMO_CREATION_DATETIME)
    roundtrip = to_fhir(dict(study.domains), terminology=[DEMO_TERMINOLOGY])
    roundtrip_path = write_bundle(roundtrip.resources, out / "fhir-from-sdtm" / "bundle.json",
                                  timestamp=f"{DEMO_CREATION_DATETIME}+00:00")
    return DemoResult(out, bundle_path, sdtm_dir, study, validation, define_path,
                      define_errors, roundtrip_path, roundtrip)


def arm_means(study: Study) -> pd.DataFrame:
    """Mean result per arm, test and visit for LB and the SpO2/FiO2 ratio from VS."""
    dm = study["DM"][["USUBJID", "ARMCD"]]
    lb = study["LB"][["USUBJID", "LBTESTCD", "VISIT", "VISITNUM", "LBSTRESN"]].rename(
        columns={"LBTESTCD": "TEST", "LBSTRESN": "VALUE"})
    vs = study["VS"]
    ratio = vs[vs["VSTESTCD"].isin(["OXYSAT", "FIO2"])].pivot_table(
        index=["USUBJID", "VISIT", "VISITNUM"], columns="VSTESTCD", values="VSSTRESN"
    ).reset_index()
    ratio["TEST"] = "SPO2/FIO2"
    ratio["VALUE"] = ratio["OXYSAT"] / (ratio["FIO2"] / 100.0)
    both = pd.concat([lb, ratio[["USUBJID", "TEST", "VISIT", "VISITNUM", "VALUE"]]])
    merged = both.merge(dm, on="USUBJID")
    grouped = merged.groupby(["ARMCD", "TEST", "VISITNUM", "VISIT"], as_index=False)
    return grouped.agg(VALUE=("VALUE", "mean"))


def effect_table(study: Study) -> Table:
    """First and last visit means per arm: the trends the trial is about."""
    means = arm_means(study)
    table = Table(title="Mean by arm: first visit -> last visit", show_edge=False)
    table.add_column("test")
    arms = sorted(means["ARMCD"].unique())
    for arm in arms:
        table.add_column(arm, justify="right")
    first, last = means["VISITNUM"].min(), means["VISITNUM"].max()
    for test in sorted(means["TEST"].unique()):
        cells = []
        for arm in arms:
            sel = means[(means["ARMCD"] == arm) & (means["TEST"] == test)]
            start = sel.loc[sel["VISITNUM"] == first, "VALUE"]
            end = sel.loc[sel["VISITNUM"] == last, "VALUE"]
            if start.empty or end.empty:
                cells.append("")
                continue
            cells.append(f"{start.iloc[0]:.1f} -> {end.iloc[0]:.1f}")
        table.add_row(test, *cells)
    return table
