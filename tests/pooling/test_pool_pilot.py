"""Pooling the CDISC pilot study (SDTM XPT) with the demo trial (FHIR): nothing lost."""

from __future__ import annotations

import pytest

from fhircdisc.converters.datasets import read_dataset
from fhircdisc.pooling import load_sdtm_folder, pool_studies
from fhircdisc.pooling.ct_versions import folder_ct_version

PILOT = "CDISCPILOT01"
DEMO = "UCMSC-ARDS"


@pytest.fixture(scope="module")
def pilot_input(pilot_xpt):
    return load_sdtm_folder(pilot_xpt)


@pytest.fixture(scope="module")
def pooled(pilot_input, demo_input):
    return pool_studies([pilot_input, demo_input])


def test_no_subject_lost_or_merged(pooled):
    dm = pooled["DM"]
    assert len(dm) == 18 + 20 and dm["USUBJID"].is_unique
    assert dm["STUDYID"].value_counts().to_dict() == {DEMO: 20, PILOT: 18}
    assert pooled.report.id_collisions == [] and pooled.report.id_changes == []


def test_every_row_of_every_dataset_is_present(pooled, pilot_input, demo_input):
    names = set(pilot_input.domains) | set(demo_input.domains)
    assert set(pooled.domains) == names
    for name in names:
        expected = sum(len(s.domains[name]) for s in (pilot_input, demo_input)
                       if name in s.domains)
        assert len(pooled[name]) == expected, name
        assert pooled.report.row_counts[name]["POOLED"] == expected
        per_study = pooled[name]["STUDYID"].value_counts().to_dict()
        for study in (pilot_input, demo_input):
            if name in study.domains:
                assert per_study.get(study.study_id, 0) == len(study.domains[name])


def test_overlapping_tests_have_one_unit(pooled, pilot_input, demo_input):
    for domain in ("LB", "VS"):
        col = f"{domain}TESTCD"
        overlap = set(pilot_input.domains[domain][col]) & set(demo_input.domains[domain][col])
        if domain == "VS":
            # HR (demo, LOINC 8867-4) and PULSE (pilot) are different CDISC tests
            assert overlap == {"DIABP", "SYSBP", "TEMP", "WEIGHT"}
        else:
            assert overlap == set()
        frame = pooled[domain]
        for test in overlap:
            assert frame.loc[frame[col] == test, f"{domain}STRESU"].nunique() == 1, test
    assert pooled.report.unconvertible == [] and pooled.report.conflicts == []


def test_ct_versions_reported_and_old_values_renamed(pooled, pilot_xpt):
    report = pooled.report
    assert report.ct_versions == {PILOT: "2020-12-18", DEMO: "2025-03-28"}
    assert report.ct_versions_differ
    [rename] = report.ct_renames
    assert (rename.study, rename.variable, rename.old, rename.new, rename.n_rows) == (
        PILOT, "TSVCDREF", "CDISC", "CDISC CT", 18)
    assert "CDISC" not in set(pooled["TS"]["TSVCDREF"].dropna())
    outside = {(v.variable, v.value) for v in report.ct_values_outside}
    assert ("RACE", "MULTIPLE") in outside          # not in RACE (C74457) of CT 2025-03-28
    # the Dataset-JSON copy names the same define.xml release
    json_dir = pilot_xpt.parent / "json"
    if json_dir.is_dir():
        assert folder_ct_version(json_dir, json_dir.glob("*.json")).version == "2020-12-18"


def test_variables_of_either_study_are_kept(pooled):
    added = {(v.study, v.domain): set(v.variables) for v in pooled.report.variables_added}
    assert {"EPOCH", "VSPOS"} <= added[(DEMO, "VS")]
    assert {"LBLOINC", "LBSPEC"} <= added[(PILOT, "LB")]
    vs = pooled["VS"]
    assert vs.loc[vs["STUDYID"] == DEMO, "EPOCH"].isna().all()
    assert vs.loc[vs["STUDYID"] == PILOT, "EPOCH"].notna().any()


def test_written_pool_reads_back(pooled, tmp_path):
    pooled.write(tmp_path / "out", ["xpt"], creation_datetime="2024-01-01T00:00:00")
    dm, _ = read_dataset(tmp_path / "out" / "dm.xpt")
    vs, _ = read_dataset(tmp_path / "out" / "vs.xpt")
    assert len(dm) == 38 and len(vs) == len(pooled["VS"])
    assert (tmp_path / "out" / "suppdm.xpt").exists() and (tmp_path / "out" / "ta.xpt").exists()


def test_an_untyped_csv_copy_pools_without_losing_or_merging_anyone(pilot_input, tmp_path):
    from fhircdisc.converters.datasets import write_dataset

    folder = tmp_path / "csv-copy"
    folder.mkdir()
    for name, frame in pilot_input.domains.items():
        write_dataset(frame.assign(STUDYID="PILOTCSV"), folder, pilot_input.metas[name], "csv",
                      creation_datetime="2024-01-01T00:00:00")
    copy = load_sdtm_folder(folder)
    assert copy.ct_version.version == "unknown"
    pooled = pool_studies([pilot_input, copy])
    dm = pooled["DM"]
    assert len(dm) == 36 and dm["USUBJID"].is_unique
    assert len(pooled.report.id_collisions) == 18 and len(pooled.report.id_changes) == 36
    assert set(dm.loc[dm["STUDYID"] == "PILOTCSV", "USUBJID"]) == {
        f"PILOTCSV-{u}" for u in pilot_input.domains["DM"]["USUBJID"]}
    # CSV carries no types: SDTMIG Num variables are read as numbers, others settled
    assert pooled["LB"]["LBSTRESN"].dtype == "float64"
    settled = {(t.domain, t.variable): t.pooled_type for t in pooled.report.type_changes}
    assert settled[("CM", "CMSEQ")] == "Num"
    assert pooled["CM"]["CMSEQ"].dtype == "float64"
    assert len(pooled["LB"]) == 2 * len(pilot_input.domains["LB"])
