"""Findings-report plots: mean result by study day per arm, subjects faint behind.

One small figure per test code of a findings domain (LB, VS): the arm means
(``DM.ARMCD`` joined on ``USUBJID``) of the standard numeric result (``--STRESN``)
at each time point, with ± 1 standard error, over the individual subjects drawn
faintly in the arm's colour. The time axis is the study day (``--DY``); without it,
the visit number (``VISITNUM``). When both are present, the means are taken per visit
and placed at the visit's median study day, so that subjects seen a day early or late
still count at their visit.

Figures are drawn with matplotlib (Agg canvas, no pyplot) and returned as SVG text
ready to inline in HTML: no XML prolog, no ``<metadata>`` block (it carries a creation
date and URLs), and element ids prefixed per figure so that several SVGs can share one
HTML document. The output depends only on the data: fixed ``svg.hashsalt``, no date.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

#: Colour-blind-safe arm colours (Okabe-Ito), in sorted ARMCD order.
ARM_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9",
               "#000000", "#F0E442")
#: Beyond this many tests per domain, the rest are listed but not drawn.
MAX_PLOTS = 60
#: Beyond this many subjects per arm, only the first (by USUBJID) are drawn faintly.
MAX_SUBJECT_LINES = 40
#: Size of one figure (inches), and what each further row of the legend adds to it.
FIG_WIDTH, FIG_HEIGHT, LEGEND_ROW = 4.4, 2.9, 0.17
#: Label of the one group when DM (or DM.ARMCD) is not available.
ALL_SUBJECTS = "all subjects"
#: Findings domains that get plots, with the title of their section.
PLOT_DOMAINS = {"LB": "Laboratory results", "VS": "Vital signs"}

_RC: dict[str, Any] = {
    "svg.hashsalt": "fhircdisc-report",
    "svg.fonttype": "path",          # glyphs as paths: looks the same in every browser
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],  # shipped with matplotlib: same layout everywhere
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#667085",
    "axes.labelcolor": "#344054",
    "xtick.color": "#475467",
    "ytick.color": "#475467",
    "axes.grid": True,
    "grid.color": "#EAECF0",
    "grid.linewidth": 0.8,
    "path.simplify": True,
}


@dataclass(frozen=True)
class Plot:
    """One test's figure: the code and name, unit, what the axes show, and the SVG."""

    domain: str
    testcd: str
    test: str
    unit: str
    x_label: str
    arms: tuple[tuple[str, int], ...]      # (arm, subjects with a result)
    subjects_drawn: int
    subjects: int
    svg: str


@dataclass(frozen=True)
class PlotSection:
    """The plots of one domain, and the tests that could not be (or were not) drawn."""

    domain: str
    title: str
    plots: tuple[Plot, ...]
    notes: tuple[str, ...] = ()


def frames(datasets: Mapping[str, Any] | None) -> dict[str, pd.DataFrame]:
    """Datasets keyed by upper-case name; a value may be a frame or ``(frame, meta)``."""
    out: dict[str, pd.DataFrame] = {}
    for key, value in (datasets or {}).items():
        df = value[0] if isinstance(value, tuple) else value
        if isinstance(df, pd.DataFrame):
            out[str(key).upper()] = df
    return out


def arm_of(dm: pd.DataFrame | None) -> pd.Series | None:
    """USUBJID -> ARMCD (subjects without an arm dropped), or None without DM.ARMCD."""
    if dm is None or "USUBJID" not in dm or "ARMCD" not in dm:
        return None
    arms = dm[["USUBJID", "ARMCD"]].copy()
    arms["USUBJID"] = arms["USUBJID"].astype("string").str.strip()
    arms["ARMCD"] = arms["ARMCD"].astype("string").str.strip()
    arms = arms[(arms["USUBJID"].fillna("") != "") & (arms["ARMCD"].fillna("") != "")]
    arms = arms.drop_duplicates("USUBJID")
    return pd.Series(arms["ARMCD"].to_numpy(dtype=object),
                     index=arms["USUBJID"].to_numpy(dtype=object), name="ARMCD")


def plot_sections(datasets: Mapping[str, Any] | None) -> list[PlotSection]:
    """The plot sections for the findings domains among ``datasets`` (LB, then VS)."""
    data = frames(datasets)
    arms = arm_of(data.get("DM"))
    sections = []
    for domain, title in PLOT_DOMAINS.items():
        df = data.get(domain)
        if df is None or df.empty:
            continue
        section = domain_plots(domain, df, arms, title=title, colours=arm_colours(arms))
        if section.plots or section.notes:
            sections.append(section)
    return sections


def arm_colours(arms: pd.Series | None) -> dict[str, str]:
    """One colour per arm, in sorted ARMCD order, the same in every figure."""
    names = [ALL_SUBJECTS] if arms is None else sorted({str(a) for a in arms})
    return {name: ARM_COLOURS[i % len(ARM_COLOURS)] for i, name in enumerate(names)}


def domain_plots(domain: str, df: pd.DataFrame, arms: pd.Series | None, *,
                 title: str | None = None,
                 colours: Mapping[str, str] | None = None) -> PlotSection:
    """One figure per ``--TESTCD`` of ``df`` (a findings domain such as LB or VS)."""
    p = domain
    colours = colours or arm_colours(arms)
    title = title or PLOT_DOMAINS.get(domain, domain)
    needed = ("USUBJID", f"{p}TESTCD", f"{p}STRESN")
    missing = [c for c in needed if c not in df]
    if missing:
        return PlotSection(domain, title, (), (f"not plotted: {domain} has no "
                                               f"{', '.join(missing)}",))
    table = _tidy(df, p, arms)
    notes: list[str] = []
    if table is None:
        return PlotSection(domain, title, (), (f"not plotted: {domain} has neither "
                                               f"{p}DY nor VISITNUM",))
    plots: list[Plot] = []
    codes = sorted(str(c) for c in df[f"{p}TESTCD"].dropna().unique() if str(c).strip())
    for code in codes:
        rows = table[table["testcd"] == code]
        if rows.empty:
            notes.append(f"{code}: no numeric result with a time point")
            continue
        if len(plots) >= MAX_PLOTS:
            notes.append(f"{code}: not drawn (more than {MAX_PLOTS} tests)")
            continue
        plots.append(_figure(domain, code, rows, colours))
    return PlotSection(domain, title, tuple(plots), tuple(notes))


def _tidy(df: pd.DataFrame, p: str, arms: pd.Series | None) -> pd.DataFrame | None:
    """testcd, test, unit, usubjid, arm, value, x (where drawn), group (mean's key)."""
    out = pd.DataFrame({
        "testcd": df[f"{p}TESTCD"].astype("string").str.strip(),
        "test": _column(df, f"{p}TEST"),
        "unit": _column(df, f"{p}STRESU"),
        "usubjid": df["USUBJID"].astype("string").str.strip(),
        "value": pd.to_numeric(df[f"{p}STRESN"], errors="coerce"),
    })
    day = pd.to_numeric(df[f"{p}DY"], errors="coerce") if f"{p}DY" in df else None
    visit = pd.to_numeric(df["VISITNUM"], errors="coerce") if "VISITNUM" in df else None
    if day is not None and day.notna().any():
        out["x"] = day
        out["x_label"] = f"study day ({p}DY)"
        out["group"] = visit if visit is not None and visit.notna().any() else day
    elif visit is not None and visit.notna().any():
        out["x"] = visit
        out["x_label"] = "visit (VISITNUM)"
        out["group"] = visit
    else:
        return None
    if arms is None:
        out["arm"] = ALL_SUBJECTS
    else:
        out["arm"] = out["usubjid"].map(arms)
    out = out[out["value"].notna() & out["group"].notna() & out["arm"].notna()
              & np.isfinite(out["value"])]
    # Where the means go: the median day of each visit, over all arms (so arms line up).
    where = out.groupby(["testcd", "group"])["x"].transform("median")
    out = out.assign(x_mean=where, x=out["x"].fillna(where))
    return out[out["x_mean"].notna()].reset_index(drop=True)


def _column(df: pd.DataFrame, name: str) -> pd.Series:
    if name not in df:
        return pd.Series([""] * len(df), index=df.index, dtype="string")
    return df[name].astype("string").fillna("").str.strip()


def _mode(values: pd.Series) -> str:
    values = values[values != ""]
    if values.empty:
        return ""
    counts = values.value_counts()
    top = counts[counts == counts.max()].index
    return str(sorted(str(v) for v in top)[0])


def _figure(domain: str, code: str, rows: pd.DataFrame, colours: Mapping[str, str]) -> Plot:
    arm_names = sorted(str(a) for a in rows["arm"].unique())
    positions = sorted(float(x) for x in rows["x_mean"].unique())
    xs = [*positions, float(rows["x"].min()), float(rows["x"].max())]
    low, high = min(xs), max(xs)
    if high - low < 2:  # one time point (or two close ones): leave room around it
        low, high = low - 1, high + 1
    dodge = (high - low) * 0.012
    labels = [_plain(f"{arm} (n={rows.loc[rows['arm'] == arm, 'usubjid'].nunique()})")
              for arm in arm_names]
    ncol, legend_rows = _legend_shape(labels)
    height = FIG_HEIGHT + LEGEND_ROW * (legend_rows - 1)
    with rc_context(_RC):  # type: ignore[arg-type]  # keys are checked by matplotlib
        fig = Figure(figsize=(FIG_WIDTH, height), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        arms: list[tuple[str, int]] = []
        drawn = 0
        for i, arm in enumerate(arm_names):
            colour = colours.get(arm, ARM_COLOURS[i % len(ARM_COLOURS)])
            sub = rows[rows["arm"] == arm]
            subjects = sorted(str(s) for s in sub["usubjid"].unique())
            arms.append((arm, len(subjects)))
            for usubjid in subjects[:MAX_SUBJECT_LINES]:
                one = sub[sub["usubjid"] == usubjid].sort_values(["x", "group"])
                ax.plot(one["x"].to_numpy(dtype=float), one["value"].to_numpy(dtype=float),
                        color=colour, alpha=0.16, linewidth=0.8, zorder=1,
                        marker="o" if len(one) == 1 else "", markersize=3)
                drawn += 1
            stats = sub.groupby("x_mean")["value"].agg(["mean", "std", "count"]).sort_index()
            se = (stats["std"] / np.sqrt(stats["count"])).fillna(0.0)
            offset = (i - (len(arm_names) - 1) / 2) * dodge
            ax.errorbar(stats.index.to_numpy(dtype=float) + offset,
                        stats["mean"].to_numpy(dtype=float), yerr=se.to_numpy(dtype=float),
                        color=colour, linewidth=2.0, marker="o", markersize=4, capsize=2.5,
                        elinewidth=1.0, zorder=3, label=labels[i])
        gaps = np.diff(positions) if len(positions) > 1 else np.array([high - low])
        if len(positions) <= 12 and gaps.min() >= (high - low) / 14:
            ax.set_xticks(positions)  # label the time points themselves when they fit
            ax.set_xticklabels([_number(round(x, 1)) for x in positions])
        unit = _mode(rows["unit"])
        ax.set_xlabel(str(rows["x_label"].iat[0]))
        ax.set_ylabel(_plain(f"{domain}STRESN ({unit})" if unit else f"{domain}STRESN"))
        pad = (high - low) * 0.04
        ax.set_xlim(low - pad, high + pad)
        # Above the plot, centred, as many rows as the arms need: never over the data.
        handles, _ = ax.get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 1.0),
                   ncol=ncol, fontsize=8, frameon=False, borderaxespad=0.3,
                   handlelength=1.6, columnspacing=1.2)
        top = 1 - (LEGEND_ROW * legend_rows + 0.08) / height
        fig.tight_layout(pad=0.6, rect=(0, 0, 1, top))
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    subjects_total = int(rows["usubjid"].nunique())
    return Plot(domain=domain, testcd=code, test=_mode(rows["test"]), unit=unit,
                x_label=str(rows["x_label"].iat[0]), arms=tuple(arms),
                subjects_drawn=drawn, subjects=subjects_total,
                svg=inline_svg(buffer.getvalue(), prefix=f"{domain}-{code}"))


def _legend_shape(labels: list[str]) -> tuple[int, int]:
    """Columns and rows of a legend that fits the figure's width (a rough text width)."""
    widest = max((len(label) for label in labels), default=1)
    entry = 0.42 + 0.068 * widest  # inches: handle and gaps, then ~5 pt per character
    ncol = max(1, min(len(labels), int((FIG_WIDTH - 0.2) // entry)))
    return ncol, -(-len(labels) // ncol)


def _plain(label: str) -> str:
    """User text as matplotlib shows it literally: no mathtext, no hidden legend entry."""
    label = label.replace("$", r"\$")
    return " " + label if label.startswith("_") else label


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


_PROLOG = re.compile(r"^.*?(?=<svg\b)", re.S)
_METADATA = re.compile(r"\s*<metadata>.*?</metadata>", re.S)
_COMMENT = re.compile(r"\s*<!--.*?-->", re.S)
_ID = re.compile(r'\s+id="([^"]+)"')
_STYLE = re.compile(r"\s*<style\b[^>]*>.*?</style>", re.S)
_EMPTY_DEFS = re.compile(r"\s*<defs>\s*</defs>")
_SIZE = re.compile(r'(<svg\b[^>]*?)\s+width="[^"]*"\s+height="[^"]*"')
_REF = re.compile(r'(url\(#|href="#)([^)"]+)')
_SAFE = re.compile(r"[^A-Za-z0-9_-]")


def inline_svg(svg: str, *, prefix: str) -> str:
    """matplotlib's SVG, fit to inline in HTML: no prolog, metadata or global style.

    Ids that something refers to (clip paths) are prefixed with ``prefix`` so that
    several figures can share one document; the other ids are dropped.
    """
    svg = _PROLOG.sub("", svg, count=1)
    svg = _METADATA.sub("", svg)
    svg = _COMMENT.sub("", svg)
    svg = _STYLE.sub("", svg)          # '*{stroke-linejoin...}' would apply to the page
    svg = _EMPTY_DEFS.sub("", svg)
    tag = _SAFE.sub("_", prefix)
    used = {m.group(2) for m in _REF.finditer(svg)}
    svg = _ID.sub(lambda m: f' id="{tag}-{m.group(1)}"' if m.group(1) in used else "", svg)
    svg = _REF.sub(lambda m: f"{m.group(1)}{tag}-{m.group(2)}", svg)
    # Scale with the page: keep the viewBox, let CSS set the size.
    svg = _SIZE.sub(r"\1", svg, count=1)
    return svg.strip()
