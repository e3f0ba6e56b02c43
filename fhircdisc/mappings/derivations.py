"""Study-level derivations, run once every domain's rows exist.

RFXSTDTC/RFXENDTC (first/last exposure), RFSTDTC/RFENDTC, AGE/AGEU, ARMNRS,
--DY/--STDY/--ENDY (no day 0), --SEQ per USUBJID in a stable order, AESDTH,
TS rows from the study parameters.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from fhircdisc.mappings.dates import age_in_years, date_part, study_day
from fhircdisc.mappings.spec import DomainSpec

HIDDEN = ("_order", "_source", "_file", "_location")


def _min_max(rows: list[dict[str, Any]], start: str, end: str
             ) -> tuple[dict[str, str], dict[str, str]]:
    first: dict[str, str] = {}
    last: dict[str, str] = {}
    for row in rows:
        subject = row["USUBJID"]
        for var, store, better in ((start, first, lambda a, b: a < b),
                                   (end, last, lambda a, b: a > b)):
            value = row.get(var) or row.get(start)
            if value and (subject not in store or better(value, store[subject])):
                store[subject] = value
    return first, last


def _set(row: dict[str, Any], var: str, value: Any) -> None:
    """Set a derived value unless the source carried the variable itself."""
    if var not in row.get("_fixed", ()):
        row[var] = value


def apply_carried(rows: list[dict[str, Any]]) -> None:
    """Put the values a resource carried in ``sdtm-variable`` extensions into its row."""
    for row in rows:
        carried = row.pop("_net", None)
        if carried:
            row.update(carried)
            row["_fixed"] = set(carried)


def derive_dm(dm_rows: list[dict[str, Any]], ex_rows: list[dict[str, Any]]) -> None:
    """Reference dates, age and arm status on DM rows (in place)."""
    first, last = _min_max(ex_rows, "EXSTDTC", "EXENDTC")
    for row in dm_rows:
        subject = row.get("_subject")
        usubjid = row["USUBJID"]
        _set(row, "RFXSTDTC", first.get(usubjid))
        _set(row, "RFXENDTC", last.get(usubjid))
        period_start = getattr(subject, "period_start", None)
        period_end = getattr(subject, "period_end", None)
        _set(row, "RFSTDTC", row.get("RFXSTDTC") or period_start)
        _set(row, "RFENDTC", period_end or row.get("RFXENDTC"))
        age = age_in_years(row.get("BRTHDTC"), row.get("RFSTDTC") or row.get("RFICDTC"))
        _set(row, "AGE", float(age) if age is not None else None)
        _set(row, "AGEU", "YEARS" if age is not None else None)
        if not row.get("ARMCD"):
            _set(row, "ARMNRS", "NOT ASSIGNED")
        row.pop("_subject", None)


def study_days(rows: list[dict[str, Any]], reference: dict[str, str | None],
                pairs: tuple[tuple[str, str], ...]) -> None:
    for row in rows:
        ref = reference.get(row.get("USUBJID") or "")
        for dtc_var, dy_var in pairs:
            if dy_var in row:
                day = study_day(row.get(dtc_var), ref)
                _set(row, dy_var, float(day) if day is not None else None)


def all_fixed(rows: list[dict[str, Any]], seq_var: str) -> bool:
    """Whether every row carried its own --SEQ (then the source's numbering is kept)."""
    return bool(rows) and all(seq_var in row.get("_fixed", ()) for row in rows)


def sequence(rows: list[dict[str, Any]], seq_var: str, keys: tuple[str, ...],
             fixed: bool | None = None) -> None:
    """Sort ``rows`` by USUBJID and ``keys`` (then read order) and number --SEQ per subject.

    ``fixed`` (default: :func:`all_fixed` of ``rows``) keeps carried numbers instead; a
    caller that sees the rows in parts passes the answer for the whole domain.
    """
    if fixed is None:
        fixed = all_fixed(rows, seq_var)
    if fixed:
        rows.sort(key=lambda r: (r.get("USUBJID") or "", r.get(seq_var) or 0.0))
        return
    def sort_key(row: dict[str, Any]) -> tuple[Any, ...]:
        return (row.get("USUBJID") or "", *[(row.get(k) is None, str(row.get(k) or ""))
                                           for k in keys], row.get("_order", 0),
                row.get("_location", ""))
    rows.sort(key=sort_key)
    counters: dict[str, int] = {}
    for row in rows:
        subject = row.get("USUBJID") or ""
        counters[subject] = counters.get(subject, 0) + 1
        row[seq_var] = float(counters[subject])


def _ts_rows(rows: list[dict[str, Any]], spec: DomainSpec, studyids: list[str]
             ) -> list[dict[str, Any]]:
    """Pivot each ResearchStudy's parameter values into TS rows."""
    out = []
    for row in rows:
        studyid = studyids[0] if len(studyids) == 1 else row.get("_studyid")
        if row.get("_records"):
            for record in row["_records"]:
                out.append({"STUDYID": studyid, "DOMAIN": "TS", **record,
                            **{k: row[k] for k in HIDDEN if k in row}})
            continue
        counts: dict[str, int] = {}
        for parmcd, parm in spec.extra.items():
            value = row.get(parmcd)
            if value is None:
                continue
            counts[parmcd] = counts.get(parmcd, 0) + 1
            out.append({"STUDYID": studyid, "DOMAIN": "TS", "TSSEQ": float(counts[parmcd]),
                        "TSPARMCD": parmcd, "TSPARM": parm, "TSVAL": str(value),
                        **{k: row[k] for k in HIDDEN if k in row}})
    return out


def derive(rows: dict[str, list[dict[str, Any]]], specs: dict[str, DomainSpec]
           ) -> dict[str, pd.DataFrame]:
    """All study-level derivations; returns one DataFrame per non-empty domain."""
    for domain_rows in rows.values():
        apply_carried(domain_rows)
    dm_rows = rows.get("DM", [])
    for row in dm_rows:
        row.setdefault("_subject", None)
    derive_dm(dm_rows, rows.get("EX", []))
    reference = {row["USUBJID"]: row.get("RFSTDTC") for row in dm_rows}
    study_days(dm_rows, reference, (("DMDTC", "DMDY"),))
    study_days(rows.get("EX", []), reference, (("EXSTDTC", "EXSTDY"), ("EXENDTC", "EXENDY")))
    study_days(rows.get("LB", []), reference, (("LBDTC", "LBDY"),))
    study_days(rows.get("VS", []), reference, (("VSDTC", "VSDY"),))
    study_days(rows.get("AE", []), reference, (("AESTDTC", "AESTDY"), ("AEENDTC", "AEENDY")))
    for row in rows.get("AE", []):
        _set(row, "AESDTH", "Y" if row.get("AEOUT") == "FATAL" else None)
    for domain in ("EX", "LB", "VS", "AE"):
        sequence(rows.get(domain, []), f"{domain}SEQ", specs[domain].seq_keys)
    dm_rows.sort(key=lambda r: r["USUBJID"])
    studyids = sorted({r["STUDYID"] for r in dm_rows if r.get("STUDYID")})
    rows = {**rows, "TS": _ts_rows(rows.get("TS", []), specs["TS"], studyids)}
    frames = {}
    for domain in ("DM", "EX", "LB", "VS", "AE", "TS"):
        domain_rows = rows.get(domain, [])
        if not domain_rows:
            continue
        columns = list(dict.fromkeys(key for row in domain_rows for key in row))
        frames[domain] = pd.DataFrame.from_records(domain_rows, columns=columns)
    return frames


__all__ = ["HIDDEN", "all_fixed", "date_part", "derive", "sequence", "study_days"]
