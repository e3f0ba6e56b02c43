"""A second synthetic UC-MSC ARDS study, made from the demo trial's SDTM, for pooling.

``second_study_sdtm(demo)`` takes the demo trial's datasets (``fhircdisc.to_sdtm`` of
``write_demo_bundle``, with ``DEMO_TERMINOLOGY``) and returns study ``UCMSC-ARDS-2``: the
demo's first 12 subjects, as if a second centre had run the protocol with its own
laboratory. Every value is synthetic. It differs from the demo where pooling must work:

* **CRP in mg/dL** instead of mg/L: values divided by 10 (59.3 mg/L becomes 5.93 mg/dL);
  pooled, they come back to mg/L.
* **IL-6 in ng/mL** instead of pg/mL: values divided by 1000. In CDISC UNIT (C71620)
  pg/mL and ng/L are the same term (submission value ``ng/L``), which would be no
  conversion at all; ng/mL is a real one. Its CDISC submission value is ``ug/L``
  (C67306, synonym ng/mL), so that is what the datasets hold.
* **A colliding subject**: subject 001 keeps USUBJID ``UCMSC-ARDS-01-001``, the same as
  the demo's subject 001 (another person). The other subjects are
  ``UCMSC-ARDS-2-01-<SUBJID>``.
* **An extra test, glucose** (``GLUC``, LOINC 2345-7, mg/dL), on every lab visit, with
  ``LBFAST`` (a variable the demo does not have).
* **IL-10 under a local test code** ``IL10`` (LOINC 26848-2 kept): the terminology maps
  26848-2 to ``INTLK10``, so pooling recodes it.
* **One CRP result in nmol/L** (LOINC 76485-2, CRP by moles): CRP is a pentameric
  protein with no molecular weight in ``mappings/analytes.csv``, so pooling cannot bring
  it to mg/L and must report it (a conflict), not guess.
* **TS on an older CT**: its coded TS rows name the dictionary ``CDISC`` (TSVCDREF), the
  value that CT 2025-03-28 lists as ``CDISC CT``.
"""

from __future__ import annotations

import pandas as pd

from fhircdisc.examples.demo_trial import DEMO_STUDY_ID

SECOND_STUDY_ID = "UCMSC-ARDS-2"
N_SUBJECTS = 12
COLLIDING_USUBJID = f"{DEMO_STUDY_ID}-01-001"
"""The demo USUBJID the second study reuses for its own subject 001."""
#: The one CRP result reported in nmol/L: (SUBJID, VISITNUM) and its value.
MOLAR_CRP = ("005", 4.0, 70.4)
GLUC_LOINC = "2345-7"


def _scaled(values: pd.Series, divisor: float) -> pd.Series:
    """Numbers divided by ``divisor``, rounded to drop float noise (5.93, not 5.9300000001)."""
    return pd.to_numeric(values, errors="coerce").map(
        lambda v: v if pd.isna(v) else round(v / divisor, 9))


def _text(values: pd.Series) -> pd.Series:
    return pd.Series([None if pd.isna(v) else f"{v:g}" for v in values], index=values.index,
                     dtype=object)


def _char(value: object, index: pd.Index) -> pd.Series:
    return pd.Series([value] * len(index), index=index, dtype=object)


def second_study_sdtm(demo: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Build study UCMSC-ARDS-2 from the demo trial's SDTM datasets (see module docstring)."""
    dm = demo["DM"]
    keep = list(dm["USUBJID"].iloc[:N_SUBJECTS])
    subjid = dict(zip(dm["USUBJID"], dm["SUBJID"], strict=True))
    new_id = {u: COLLIDING_USUBJID if subjid[u] == "001" else
              f"{SECOND_STUDY_ID}-01-{subjid[u]}" for u in keep}

    out: dict[str, pd.DataFrame] = {}
    for name, frame in demo.items():
        frame = frame.copy()
        if "USUBJID" in frame:
            frame = frame[frame["USUBJID"].isin(keep)].reset_index(drop=True)
            frame["USUBJID"] = frame["USUBJID"].map(new_id).astype(object)
        frame["STUDYID"] = _char(SECOND_STUDY_ID, frame.index)
        out[name] = frame
    out["LB"] = _labs(out["LB"], subjid={v: subjid[k] for k, v in new_id.items()})
    out["TS"] = _trial_summary(out["TS"])
    return out


def _labs(lb: pd.DataFrame, subjid: dict[str, str]) -> pd.DataFrame:
    lb = lb.copy()
    for col in ("LBORRES", "LBORNRLO", "LBORNRHI", "LBSTRESC", "LBORRESU", "LBSTRESU",
                "LBTESTCD", "LBTEST", "LBLOINC"):
        lb[col] = lb[col].astype(object)
    for testcd, unit, divisor in (("CRP", "mg/dL", 10.0), ("INTLK6", "ug/L", 1000.0)):
        rows = lb["LBTESTCD"] == testcd
        for col in ("LBSTRESN", "LBSTNRLO", "LBSTNRHI"):
            lb.loc[rows, col] = _scaled(lb.loc[rows, col], divisor)
        for col in ("LBORRES", "LBORNRLO", "LBORNRHI"):
            lb.loc[rows, col] = _text(_scaled(lb.loc[rows, col], divisor))
        lb.loc[rows, "LBSTRESC"] = _text(lb.loc[rows, "LBSTRESN"])
        lb.loc[rows & lb["LBORRESU"].notna(), ["LBORRESU", "LBSTRESU"]] = unit

    il10 = lb["LBTESTCD"] == "INTLK10"
    lb.loc[il10, "LBTESTCD"] = "IL10"
    lb.loc[il10, "LBTEST"] = "Interleukin-10"

    subject, visit, value = MOLAR_CRP
    molar = (lb["LBTESTCD"] == "CRP") & (lb["VISITNUM"] == visit) & \
        lb["USUBJID"].map(lambda u: subjid.get(u) == subject)
    lb.loc[molar, ["LBORRES", "LBSTRESC"]] = f"{value:g}"
    lb.loc[molar, "LBSTRESN"] = value
    lb.loc[molar, ["LBORRESU", "LBSTRESU"]] = "nmol/L"
    lb.loc[molar, "LBLOINC"] = "76485-2"
    lb.loc[molar, ["LBORNRLO", "LBORNRHI", "LBSTNRLO", "LBSTNRHI", "LBNRIND"]] = None

    return _add_glucose(lb)


def _add_glucose(lb: pd.DataFrame) -> pd.DataFrame:
    """A fasting serum glucose on each lab visit, in mg/dL, after the subject's other tests."""
    visits = lb.drop_duplicates(["USUBJID", "VISITNUM"])[
        ["STUDYID", "DOMAIN", "USUBJID", "VISITNUM", "VISIT", "LBDTC", "LBDY"]]
    rows = []
    for number, visit in enumerate(visits.to_dict("records")):
        value = float(88 + (number * 7) % 45)          # 88..132 mg/dL, deterministic
        rows.append({**visit, "LBTESTCD": "GLUC", "LBTEST": "Glucose",
                     "LBCAT": "CHEMISTRY", "LBORRES": f"{value:g}", "LBORRESU": "mg/dL",
                     "LBORNRLO": "70", "LBORNRHI": "99", "LBSTRESC": f"{value:g}",
                     "LBSTRESN": value, "LBSTRESU": "mg/dL", "LBSTNRLO": 70.0,
                     "LBSTNRHI": 99.0, "LBNRIND": "HIGH" if value > 99 else "NORMAL",
                     "LBLOINC": GLUC_LOINC, "LBSPEC": "SERUM OR PLASMA", "LBFAST": "Y"})
    glucose = pd.DataFrame(rows)
    lb = lb.assign(LBFAST=pd.Series([None] * len(lb), index=lb.index, dtype=object))
    combined = pd.concat([lb, glucose], ignore_index=True)
    combined["_order"] = range(len(combined))
    combined = combined.sort_values(["USUBJID", "_order"], kind="stable")
    combined = combined.drop(columns="_order").reset_index(drop=True)
    combined["LBSEQ"] = combined.groupby("USUBJID").cumcount().astype("float64") + 1
    for name in combined.columns:
        if name not in ("LBSEQ", "LBSTRESN", "LBSTNRLO", "LBSTNRHI", "VISITNUM", "LBDY"):
            combined[name] = combined[name].astype(object).where(combined[name].notna(), None)
    return combined[[*lb.columns]]


def _trial_summary(ts: pd.DataFrame) -> pd.DataFrame:
    ts = ts.copy()
    for col in ("TSVAL", "TSVALCD", "TSVCDREF", "TSVCDVER"):
        ts[col] = ts[col].astype(object)
    ts.loc[ts["TSPARMCD"] == "TITLE", "TSVAL"] = (
        "Umbilical cord mesenchymal stromal cells for COVID-19 ARDS: second cohort "
        "(synthetic)")
    ts.loc[ts["TSPARMCD"] == "REGID", "TSVAL"] = "SYNTHETIC-UCMSC-ARDS-2"
    coded = {"TPHASE": "C15600", "TTYPE": "C49656"}    # PHASE I TRIAL, TREATMENT
    for parmcd, code in coded.items():
        rows = ts["TSPARMCD"] == parmcd
        ts.loc[rows, "TSVALCD"] = code
        ts.loc[rows, "TSVCDREF"] = "CDISC"
        ts.loc[rows, "TSVCDVER"] = "2019-12-20"
    return ts
