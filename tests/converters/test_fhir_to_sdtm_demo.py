"""The demo trial through FHIR -> SDTM: exact counts and spot-checked values."""

from __future__ import annotations

import math

import pandas as pd

from fhircdisc.examples import demo_codes
from fhircdisc.examples.demo_trial import generate_demo_bundle


def _resources(bundle, rtype):
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def test_row_counts_per_domain(demo_study):
    assert demo_study.report.rows == {"DM": 20, "EX": 30, "LB": 20 * 4 * 8,
                                      "VS": 20 * 4 * 6 + 20, "AE": 11, "TS": 8}


def test_report_reconciles_and_nothing_is_unmapped(demo_study):
    report = demo_study.report
    assert report.reconciles()
    assert report.unmapped == []
    counts = report.counts()
    assert counts["Observation"] == {"read": 1060, "mapped": 1060, "context": 0, "unmapped": 0}
    assert counts["Encounter"]["context"] == 80
    assert counts["ResearchStudy"] == {"read": 2, "mapped": 1, "context": 1, "unmapped": 0}


def test_dm_identifiers_arms_and_reference_dates(demo_study):
    dm = demo_study["DM"].set_index("SUBJID")
    bundle = generate_demo_bundle()
    arms = {rs["identifier"][0]["value"]: rs["assignedArm"] for rs in
            _resources(bundle, "ResearchSubject")}
    assert dict(dm["ARMCD"]) == arms
    assert (dm["STUDYID"] == "UCMSC-ARDS").all() and (dm["SITEID"] == "01").all()
    assert dm.loc["001", "USUBJID"] == "UCMSC-ARDS-01-001"
    assert set(dm["ARM"]) == {"Standard care", "Standard care + UC-MSC 1x10^6 cells/kg x3"}
    treated = dm[dm["ARMCD"] == "MSC"]
    assert treated["RFXSTDTC"].notna().all()
    assert (treated["RFSTDTC"] == treated["RFXSTDTC"]).all()
    assert dm[dm["ARMCD"] == "CTRL"]["RFXSTDTC"].isna().all()
    assert (dm["COUNTRY"] == "IRN").all()
    assert set(dm["SEX"]) <= {"M", "F"}


def test_partial_birth_dates_stay_partial(demo_study):
    dm = demo_study["DM"].set_index("SUBJID")
    assert len(dm.loc["004", "BRTHDTC"]) == 7       # YYYY-MM
    assert len(dm.loc["011", "BRTHDTC"]) == 4       # YYYY
    assert dm.loc["001", "AGEU"] == "YEARS" and dm.loc["001", "AGE"] >= 30


def test_known_subject_crp_on_day_5(demo_study):
    bundle = generate_demo_bundle()
    source = next(o for o in _resources(bundle, "Observation")
                  if o["id"] == "lab-001-2-crp")
    lb = demo_study["LB"]
    row = lb[(lb["USUBJID"] == "UCMSC-ARDS-01-001") & (lb["LBTESTCD"] == "CRP")
             & (lb["VISIT"] == "DAY 5")].iloc[0]
    assert row["LBSTRESN"] == source["valueQuantity"]["value"]
    assert row["LBORRESU"] == "mg/L" and row["LBSTRESU"] == "mg/L"
    assert row["LBLOINC"] == "1988-5" and row["LBTEST"] == "C Reactive Protein"
    assert row["LBDY"] == 5 and row["VISITNUM"] == 2
    assert row["LBDTC"] == source["effectiveDateTime"][:19]
    dm = demo_study["DM"].set_index("USUBJID")
    assert dm.loc["UCMSC-ARDS-01-001", "ARMCD"] == "MSC"


def test_baseline_is_study_day_minus_one_and_no_day_zero(demo_study):
    for domain in ("LB", "VS"):
        frame = demo_study[domain]
        assert set(frame.loc[frame["VISITNUM"] == 1, f"{domain}DY"]) == {-1}
        assert (frame[f"{domain}DY"] != 0).all()
    assert set(demo_study["EX"]["EXSTDY"]) == {1, 3, 5}


def test_cancelled_lab_is_not_done_with_reason(demo_study):
    lb = demo_study["LB"]
    row = lb[lb["LBSTAT"] == "NOT DONE"]
    assert len(row) == 1
    assert row.iloc[0]["LBTESTCD"] == "INTLK10" and row.iloc[0]["LBREASND"] == "SAMPLE HAEMOLYSED"
    assert pd.isna(row.iloc[0]["LBORRES"]) and math.isnan(row.iloc[0]["LBSTRESN"])


def test_pg_per_ml_becomes_the_cdisc_unit_ng_per_l(demo_study):
    lb = demo_study["LB"]
    assert set(lb.loc[lb["LBTESTCD"] == "INTLK6", "LBSTRESU"].dropna()) == {"ng/L"}


def test_blood_pressure_components_become_two_rows(demo_study):
    vs = demo_study["VS"]
    for testcd in ("SYSBP", "DIABP"):
        assert (vs["VSTESTCD"] == testcd).sum() == 80
    assert set(vs["VSTESTCD"]) == {"OXYSAT", "FIO2", demo_codes.PULSE.testcd, "TEMP", "SYSBP",
                                   "DIABP", "WEIGHT"}


def test_sequence_numbers_unique_and_dense_per_subject(demo_study):
    for domain in ("EX", "LB", "VS", "AE"):
        frame = demo_study[domain]
        for _, group in frame.groupby("USUBJID"):
            assert sorted(group[f"{domain}SEQ"]) == list(range(1, len(group) + 1))


def test_exposure_values(demo_study):
    ex = demo_study["EX"]
    assert len(ex) == 30 and ex["USUBJID"].nunique() == 10
    row = ex.iloc[0]
    assert row["EXTRT"] == demo_codes.EUTRT
    assert row["EXDOSE"] == 1 and row["EXROUTE"] == "INTRAVENOUS"
    assert row["EXDOSU"] and row["EXDOSFRM"]


def test_adverse_events_r4_shape(demo_study):
    ae = demo_study["AE"]
    assert (ae["AESER"] == "N").all()
    assert set(ae["AESEV"]) <= {"MILD", "MODERATE"}
    partial = ae[ae["AESTDTC"].str.len() == 7]
    assert len(partial) == 1 and pd.isna(partial.iloc[0]["AESTDY"])
    ongoing = ae[ae["AEOUT"] == "NOT RECOVERED/NOT RESOLVED"]
    assert len(ongoing) == 1 and pd.isna(ongoing.iloc[0]["AEENDTC"])


def test_trial_summary(demo_study):
    ts = demo_study["TS"].set_index("TSPARMCD")["TSVAL"]
    assert ts["REGID"] == "IRCT20160809029275N1"
    assert ts["TPHASE"] == "PHASE I TRIAL"
    assert ts["NARMS"] == "2"
    assert ts["TITLE"].startswith("Umbilical cord mesenchymal stromal cells")


def test_provenance_links_every_row_to_its_resource(demo_study):
    prov = demo_study.provenance
    assert len(prov) == sum(len(f) for f in demo_study.domains.values())
    lb_row = prov[(prov["DOMAIN"] == "LB") & (prov["SOURCE"] == "Observation/lab-001-2-crp")]
    assert len(lb_row) == 1 and lb_row.iloc[0]["LOCATION"].startswith("$.entry[")
    bp = prov[prov["SOURCE"] == "Observation/vs-001-1-bp"]
    assert sorted(bp["LOCATION"].str.extract(r"(component\[\d\])")[0]) == \
        ["component[0]", "component[1]"]


def test_progress_reports_resources_read(demo_bundle_path):
    from fhircdisc import to_sdtm
    from fhircdisc.examples.demo_codes import DEMO_TERMINOLOGY

    calls: list[tuple[str, int]] = []
    to_sdtm([demo_bundle_path], terminology=[DEMO_TERMINOLOGY],
            progress=lambda file, count: calls.append((file, count)))
    assert calls[-1] == (str(demo_bundle_path), 1245)
    assert [c for _, c in calls] == sorted(c for _, c in calls)
