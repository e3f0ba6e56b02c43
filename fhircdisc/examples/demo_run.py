"""``fhircdisc demo``: the built-in trial end to end, with a short clinical summary."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from fhircdisc.converters.fhir_to_sdtm import to_sdtm
from fhircdisc.examples.demo_codes import DEMO_TERMINOLOGY
from fhircdisc.examples.demo_trial import write_demo_bundle
from fhircdisc.study import Study
from fhircdisc.summary import print_summary

#: Fixed creation timestamp of demo outputs, so that the same seed gives identical bytes.
DEMO_CREATION_DATETIME = "2020-09-30T12:00:00"
BUNDLE_NAME = "ucmsc-ards-bundle.json"


@dataclass
class DemoResult:
    """Where the demo wrote its files, and the converted study."""

    out_dir: Path
    bundle_path: Path
    sdtm_dir: Path
    study: Study

    def print(self, console: Console) -> None:
        console.print(f"[bold]Demo trial[/bold]: synthetic UC-MSC for COVID-19 ARDS "
                      f"(shaped like IRCT20160809029275N1), FHIR R4 Bundle at {self.bundle_path}")
        print_summary(self.study, console, self.sdtm_dir)
        console.print(effect_table(self.study))


def run_demo(out_dir: str | Path, *, seed: int = 2020, formats: Iterable[str] = ("xpt", "json")
             ) -> DemoResult:
    """Generate the demo Bundle under ``out_dir/fhir`` and convert it into ``out_dir/sdtm``."""
    out = Path(out_dir)
    bundle_path = write_demo_bundle(out / "fhir" / BUNDLE_NAME, seed=seed)
    study = to_sdtm([bundle_path], terminology=[DEMO_TERMINOLOGY])
    sdtm_dir = out / "sdtm"
    study.write(sdtm_dir, formats, creation_datetime=DEMO_CREATION_DATETIME)
    return DemoResult(out, bundle_path, sdtm_dir, study)


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
