"""Run the rule table over a study: every rule over every dataset it applies to.

Each rule reports one :class:`~fhircdisc.schemas.findings.RuleRun`: ``success``,
``issues``, ``skipped`` (no dataset in scope, or every dataset lacked what the check
needs, with the reasons) or ``error`` (the check raised; the other rules still run).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

import pandas as pd

from fhircdisc.schemas.columns import DatasetMeta
from fhircdisc.schemas.conformance.checks import CHECKS
from fhircdisc.schemas.conformance.checks.registry import number, text
from fhircdisc.schemas.conformance.context import Dataset, Hit, Params, Skip, Study
from fhircdisc.schemas.conformance.rules import Rule, load_rules
from fhircdisc.schemas.findings import Finding, RuleRun, ValidationResult, shared_names
from fhircdisc.schemas.sdtmig import CT_VERSION, SDTMIG_VERSION

Frames = Mapping[str, "pd.DataFrame | tuple[pd.DataFrame, DatasetMeta] | Dataset"]


def build_study(datasets: Frames, metas: Mapping[str, DatasetMeta] | None = None) -> Study:
    """Datasets keyed by upper-case name; a value may be a frame, ``(frame, meta)``, or a
    :class:`Dataset` made by the caller (taken as it is, e.g. to reuse its column codes
    afterwards; its frame must be indexed 0..n-1)."""
    out: dict[str, Dataset] = {}
    for key, value in datasets.items():
        name = key.upper()
        if isinstance(value, Dataset):
            out[name] = value
            continue
        df, meta = value if isinstance(value, tuple) else (value, None)
        if metas is not None:
            meta = metas.get(key, metas.get(name, meta))
        if not isinstance(df.index, pd.RangeIndex) or df.index.start != 0:
            df = df.reset_index(drop=True)  # rows are addressed by position
        out[name] = Dataset(name, df, meta)
    return Study(out)


def _finding(rule: Rule, ds: Dataset, hit: Hit) -> Finding:
    row = hit.row
    usubjid = seq = None
    if row is not None:
        if ds.has("USUBJID"):
            usubjid = text(ds.cell("USUBJID", row))
        if ds.has(ds.prefix + "SEQ"):
            seq = number(ds.cell(ds.prefix + "SEQ", row))
    value = text(hit.value)
    fields: dict[str, Any] = {
        "dataset": ds.name, "domain": ds.prefix, "variable": hit.variable or "",
        "value": "(null)" if value is None else value, "row": "" if row is None else row + 1,
        "usubjid": usubjid or "", "seq": text(seq) or "",
    }
    fields.update({k: text(v) or "" for k, v in hit.fields.items()})
    return Finding(rule_id=rule.id, severity=rule.severity, dataset=ds.name,
                   message=rule.message.format_map(fields),
                   wording=(rule.message, shared_names(tuple(fields)),
                            tuple(fields.values())),
                   row=None if row is None else row + 1, usubjid=usubjid, seq=seq,
                   variable=hit.variable, value=value)


def _collect(rule: Rule, study: Study, default: Dataset | None, hits: Iterable[Hit],
             tested: Collection[str] | None) -> list[Finding]:
    out = []
    for hit in hits:
        ds = study.datasets[hit.dataset] if hit.dataset else default
        if ds is None:
            raise ValueError("a study-level check returned a hit without a dataset")
        if tested is None or ds.name in tested:
            out.append(_finding(rule, ds, hit))
    return out


def run_rule(rule: Rule, study: Study, tested: Collection[str] | None = None
             ) -> tuple[list[Finding], RuleRun]:
    """One rule over the study: its findings and how its run went.

    ``tested`` names the datasets under test (default: all); the others are context,
    seen only by the checks that look across datasets, and yield no findings.
    """
    spec = CHECKS.get(rule.check)
    if spec is None:
        return [], RuleRun(rule.id, "error", reason=f"unknown check {rule.check!r}")
    names = [n for n in study.datasets if rule.applies_to(n)]
    if not names:
        return [], RuleRun(rule.id, "skipped", reason=f"no {rule.scope()} dataset")
    under_test = names if tested is None else [n for n in names if n in tested]
    if not under_test:
        return [], RuleRun(rule.id, "skipped", reason=f"no {rule.scope()} dataset under test")
    study.notes = []
    findings: list[Finding] = []
    skipped: list[str] = []
    errors: list[str] = []
    targets: list[Dataset | None] = (
        [None] if spec.level == "study" else [study.datasets[n] for n in under_test])
    for ds in targets:
        where = ds.name if ds is not None else "study"
        try:
            if ds is None:
                scope = Study({n: study.datasets[n] for n in names}, notes=study.notes)
                hits = spec.func(scope, Params(rule.params))
            else:
                hits = spec.func(ds, Params(rule.params, ds.prefix), study)
            findings += _collect(rule, study, ds, hits, tested)
        except Skip as exc:
            skipped.append(f"{where}: {exc}")
        except Exception as exc:  # a broken check must not stop the other rules
            errors.append(f"{where}: {type(exc).__name__}: {exc}")
    rank = {name: place for place, name in enumerate(study.datasets)}
    findings.sort(key=lambda f: (rank.get(f.dataset, len(rank)), f.row is not None,
                                 f.row or 0))
    notes = skipped + study.notes
    if errors:
        return findings, RuleRun(rule.id, "error", len(findings), "; ".join(errors + notes))
    reason = "not checked: " + "; ".join(notes) if notes else None
    if findings:
        return findings, RuleRun(rule.id, "issues", len(findings), reason)
    if len(skipped) < len(targets):
        return findings, RuleRun(rule.id, "success", 0, reason)
    return findings, RuleRun(rule.id, "skipped", 0, "; ".join(notes))


def validate_sdtm(datasets: Frames, *, metas: Mapping[str, DatasetMeta] | None = None,
                  rules: list[Rule] | None = None, target: str = "",
                  tested: Collection[str] | None = None) -> ValidationResult:
    """Validate SDTM datasets (``{"DM": df, ...}``) against the rule table.

    ``metas`` gives each dataset's metadata (types, labels) as read from its file; without
    it types are inferred from the values and labels taken from SDTMIG. ``rules``
    defaults to the packaged table (:func:`load_rules`). ``tested`` limits the findings
    to those datasets; the others are context for the checks that look across datasets
    (DM beside LB), and a rule that applies to none of ``tested`` is skipped.
    """
    rules = load_rules() if rules is None else rules
    study = build_study(datasets, metas)
    result = ValidationResult(target=target, kind="sdtm", metadata={
        "standard": f"SDTMIG {SDTMIG_VERSION}", "ct_version": CT_VERSION,
        "rules": len(rules), "datasets": {n: len(d) for n, d in study.datasets.items()},
    })
    names = None if tested is None else {name.upper() for name in tested}
    for rule in rules:
        findings, run = run_rule(rule, study, names)
        result.findings.extend(findings)
        result.runs.append(run)
    return result
