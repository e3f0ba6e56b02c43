"""Pooling the demo trial with the second synthetic study: ids, units, test codes, CT, output."""

from __future__ import annotations

import csv
import json

import pandas as pd
import pytest

from fhircdisc.converters.datasets import read_dataset
from fhircdisc.errors import ConversionError, InputError
from fhircdisc.examples.second_study import COLLIDING_USUBJID, MOLAR_CRP, SECOND_STUDY_ID
from fhircdisc.pooling import PooledStudy, pool_studies
from fhircdisc.pooling.report import ID_MAP_NAME, REPORT_NAME

DEMO = "UCMSC-ARDS"
SECOND = SECOND_STUDY_ID


def _lb(pooled: PooledStudy, study: str, testcd: str) -> pd.DataFrame:
    lb = pooled["LB"]
    return lb[(lb["STUDYID"] == study) & (lb["LBTESTCD"] == testcd)]


def test_colliding_usubjid_is_prefixed_in_both_studies_and_no_subject_is_merged(demo_second):
    dm = demo_second["DM"]
    assert len(dm) == 32 and dm["USUBJID"].is_unique
    assert dm["STUDYID"].value_counts().to_dict() == {DEMO: 20, SECOND: 12}
    assert f"{DEMO}-{COLLIDING_USUBJID}" in set(dm["USUBJID"])
    assert f"{SECOND}-{COLLIDING_USUBJID}" in set(dm["USUBJID"])
    assert COLLIDING_USUBJID not in set(dm["USUBJID"])

    report = demo_second.report
    assert [(c.usubjid, c.studies) for c in report.id_collisions] == [
        (COLLIDING_USUBJID, (DEMO, SECOND))]
    changed = [(r.STUDYID, r.USUBJID_ORIGINAL, r.USUBJID_POOLED) for r in report.id_changes]
    assert changed == [(DEMO, COLLIDING_USUBJID, f"{DEMO}-{COLLIDING_USUBJID}"),
                       (SECOND, COLLIDING_USUBJID, f"{SECOND}-{COLLIDING_USUBJID}")]
    assert len(report.id_map) == 32
    unchanged = [r for r in report.id_map if not r.changed]
    assert all(r.USUBJID_ORIGINAL == r.USUBJID_POOLED for r in unchanged)
    # every dataset follows the map: the second study's subject 001 keeps its own rows
    lb = demo_second["LB"]
    assert (lb["USUBJID"] == f"{SECOND}-{COLLIDING_USUBJID}").sum() == 36   # 32 + 4 glucose
    assert (lb["USUBJID"] == f"{DEMO}-{COLLIDING_USUBJID}").sum() == 32
    assert set(lb.loc[lb["STUDYID"] == DEMO, "USUBJID"]) <= set(dm.loc[dm["STUDYID"] == DEMO,
                                                                        "USUBJID"])


def test_crp_in_mg_dl_comes_back_to_mg_l_exactly(demo_second, demo_study):
    crp = _lb(demo_second, SECOND, "CRP")
    first = crp[(crp["USUBJID"] == f"{SECOND}-{COLLIDING_USUBJID}") & (crp["VISITNUM"] == 1)]
    assert first[["LBORRES", "LBORRESU", "LBSTRESC", "LBSTRESU"]].values.tolist() == [
        ["5.93", "mg/dL", "59.3", "mg/L"]]
    assert first["LBSTRESN"].tolist() == [59.3]
    assert first[["LBSTNRLO", "LBSTNRHI"]].values.tolist() == [[0.0, 5.0]]

    # every converted CRP equals the demo value it was made from (value / 10, then x 10)
    demo = demo_study["LB"]
    demo_crp = demo[demo["LBTESTCD"] == "CRP"].assign(
        SUBJID=lambda f: f["USUBJID"].str[-3:])[["SUBJID", "VISITNUM", "LBSTRESN"]]
    mass = crp[crp["LBSTRESU"] == "mg/L"].assign(SUBJID=lambda f: f["USUBJID"].str[-3:])
    joined = mass.merge(demo_crp, on=["SUBJID", "VISITNUM"], suffixes=("", "_demo"))
    assert len(joined) == 47
    assert (joined["LBSTRESN"] == joined["LBSTRESN_demo"]).all()


def test_il6_in_ng_ml_comes_back_to_ng_l(demo_second, demo_study):
    il6 = _lb(demo_second, SECOND, "INTLK6")
    assert set(il6["LBSTRESU"]) == {"ng/L"} and set(il6["LBORRESU"]) == {"ug/L"}
    demo = demo_study["LB"]
    expected = demo[(demo["LBTESTCD"] == "INTLK6") & demo["USUBJID"].str.endswith("-001")]
    got = il6[il6["USUBJID"].str.endswith("-001")]
    assert got["LBSTRESN"].tolist() == expected["LBSTRESN"].tolist()
    assert got["LBSTRESC"].tolist() == [f"{v:g}" for v in expected["LBSTRESN"]]


def test_one_unit_per_test_except_the_reported_molar_crp(demo_second):
    lb = demo_second["LB"]
    units = lb.groupby("LBTESTCD")["LBSTRESU"].agg(lambda s: set(s.dropna()))
    assert units["CRP"] == {"mg/L", "nmol/L"}
    assert (lb["LBSTRESU"] == "nmol/L").sum() == 1
    assert all(len(u) == 1 for test, u in units.items() if test != "CRP")
    assert units["GLUC"] == {"mg/dL"}          # only in the second study: left as it is


def test_conversions_and_targets_are_reported(demo_second):
    report = demo_second.report
    conversions = [(c.study, c.test, c.from_unit, c.to_unit, c.factor, c.n_rows)
                   for c in report.unit_conversions]
    assert conversions == [(SECOND, "CRP", "mg/dL", "mg/L", 10.0, 47),
                           (SECOND, "INTLK6", "ug/L", "ng/L", 1000.0, 48)]
    targets = {t.test: (t.unit, t.units_found) for t in report.target_units}
    assert targets == {"CRP": ("mg/L", {"mg/L": 80, "mg/dL": 47, "nmol/L": 1}),
                       "INTLK6": ("ng/L", {"ng/L": 80, "ug/L": 48})}


def test_the_unconvertible_molar_crp_is_the_one_conflict(demo_second):
    subjid, visit, value = MOLAR_CRP
    usubjid = f"{SECOND}-01-{subjid}"
    lb = demo_second["LB"]
    row = lb[(lb["USUBJID"] == usubjid) & (lb["LBTESTCD"] == "CRP") & (lb["VISITNUM"] == visit)]
    assert row[["LBSTRESN", "LBSTRESU", "LBLOINC"]].values.tolist() == [
        [value, "nmol/L", "76485-2"]]                       # kept as it was, not guessed
    seq = float(row["LBSEQ"].iloc[0])

    report = demo_second.report
    assert [(u.study, u.usubjid, u.seq, u.test, u.unit, u.target_unit, u.reason)
            for u in report.unconvertible] == [
        (SECOND, usubjid, seq, "CRP", "nmol/L", "mg/L", "no-molecular-weight")]
    assert [(c.kind, c.study, c.domain, c.usubjid, c.record) for c in report.conflicts] == [
        ("unconvertible-result", SECOND, "LB", usubjid, f"LBSEQ={seq:g}")]


def test_local_test_code_is_recoded_by_its_loinc(demo_second, second_input):
    report = demo_second.report
    assert [(c.study, c.loinc, c.from_testcd, c.to_testcd, c.to_test, c.n_rows)
            for c in report.test_code_changes] == [
        (SECOND, "26848-2", "IL10", "INTLK10", "Interleukin 10", 48)]
    lb = demo_second["LB"]
    assert "IL10" not in set(lb["LBTESTCD"])
    assert set(lb.loc[lb["LBTESTCD"] == "INTLK10", "LBTEST"]) == {"Interleukin 10"}
    # CRP by mass and by moles: one test code, two LOINC codes (both in the tables): a note
    assert [(s.testcd, sorted(s.loincs), s.unknown_loincs) for s in report.shared_test_codes] \
        == [("CRP", ["1988-5", "76485-2"], ())]
    # the inputs are left untouched
    assert "IL10" in set(second_input.domains["LB"]["LBTESTCD"])


def test_ct_versions_compared_and_renamed_values_mapped(demo_second):
    report = demo_second.report
    assert report.ct_versions == {DEMO: "2025-03-28", SECOND: "2019-12-20"}
    assert report.ct_versions_differ
    assert [(r.study, r.variable, r.old, r.new, r.n_rows) for r in report.ct_renames] == [
        (SECOND, "TSVCDREF", "CDISC", "CDISC CT", 2)]
    ts = demo_second["TS"]
    assert set(ts["TSVCDREF"].dropna()) == {"CDISC CT"}
    assert report.ct_values_outside == []


def test_variables_of_one_study_are_kept_with_nulls_elsewhere(demo_second):
    added = {(v.study, v.domain): v.variables for v in demo_second.report.variables_added}
    assert added == {(DEMO, "LB"): ("LBFAST",)}
    lb = demo_second["LB"]
    assert lb.loc[lb["STUDYID"] == DEMO, "LBFAST"].isna().all()
    assert set(lb.loc[lb["LBTESTCD"] == "GLUC", "LBFAST"]) == {"Y"}


def test_every_row_is_kept(demo_second, demo_input, second_input):
    for name, frame in demo_second.domains.items():
        expected = len(demo_input.domains[name]) + len(second_input.domains[name])
        assert len(frame) == expected, name
        assert demo_second.report.row_counts[name] == {
            DEMO: len(demo_input.domains[name]), SECOND: len(second_input.domains[name]),
            "POOLED": expected}


def test_target_unit_can_be_given(demo_input, second_input, demo_study):
    pooled = pool_studies([demo_input, second_input], target_units={"CRP": "mg/dL"})
    crp = _lb(pooled, DEMO, "CRP")
    demo = demo_study["LB"]
    demo_crp = demo[demo["LBTESTCD"] == "CRP"]
    assert set(crp["LBSTRESU"]) == {"mg/dL"}
    assert crp["LBSTRESN"].iloc[0] == 5.93 and demo_crp["LBSTRESN"].iloc[0] == 59.3
    assert [(t.test, t.unit, t.reason) for t in pooled.report.target_units
            if t.test == "CRP"] == [("CRP", "mg/dL", "given")]


def test_write_datasets_report_and_id_map(demo_second, tmp_path):
    out = tmp_path / "pooled"
    written = demo_second.write(out, ["xpt", "json"], creation_datetime="2024-01-01T00:00:00")
    names = {p.name for p in written}
    assert {"dm.xpt", "lb.xpt", "lb.json", "ts.json", REPORT_NAME, ID_MAP_NAME} <= names
    lb, meta = read_dataset(out / "lb.xpt")
    assert len(lb) == len(demo_second["LB"]) and meta.column("LBFAST") is not None
    pd.testing.assert_series_equal(lb["LBSTRESN"], demo_second["LB"]["LBSTRESN"])
    with (out / ID_MAP_NAME).open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["STUDYID", "USUBJID_ORIGINAL", "USUBJID_POOLED"] and len(rows) == 33
    assert [SECOND, COLLIDING_USUBJID, f"{SECOND}-{COLLIDING_USUBJID}"] in rows
    report = json.loads((out / REPORT_NAME).read_text())
    assert report["summary"]["conflicts"] == 1
    assert report["units"]["conversions"][0]["factor"] == 10.0
    assert report["controlled_terminology"]["differ"] is True
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no staging left


def test_a_failed_write_leaves_no_output(demo_second, tmp_path):
    lb = demo_second["LB"].copy()
    lb.loc[0, "LBTEST"] = "x" * 300                 # breaks the XPT v5 200-byte limit
    broken = PooledStudy({**demo_second.domains, "LB": lb}, demo_second.report,
                         demo_second.types, demo_second.labels)
    with pytest.raises(ConversionError):
        broken.write(tmp_path / "out", ["xpt"])
    assert list(tmp_path.iterdir()) == []


def test_the_same_study_twice_or_alone_is_bad_input(demo_input):
    with pytest.raises(InputError, match="same study"):
        pool_studies([demo_input, demo_input])
    with pytest.raises(InputError, match="at least two"):
        pool_studies([demo_input])
