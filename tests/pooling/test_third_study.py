"""A tiny FHIR study without ResearchSubject: glucose mmol/L -> mg/dL, IL-6 without a weight."""

from __future__ import annotations

import pandas as pd
import pytest

from fhircdisc.errors import InputError
from fhircdisc.examples.second_study import SECOND_STUDY_ID
from fhircdisc.pooling import PoolInput, load_inputs, pool_studies

TINY_STUDY_ID = "TINY-3"     # the --study-id given to the tiny bundle (conftest.tiny_bundle)


@pytest.fixture(scope="module")
def tiny_input(tiny_bundle) -> PoolInput:
    [tiny] = load_inputs([tiny_bundle], [TINY_STUDY_ID])
    return tiny


@pytest.fixture(scope="module")
def pooled(second_input, tiny_input):
    return pool_studies([second_input, tiny_input])


def test_fhir_input_without_research_subject_takes_the_study_id(tiny_input, tiny_bundle):
    assert tiny_input.study_id == TINY_STUDY_ID and tiny_input.kind == "fhir"
    assert tiny_input.ct_version.version == "2025-03-28"
    with pytest.raises(InputError, match="--study-id"):
        load_inputs([tiny_bundle])
    with pytest.raises(InputError, match="left over"):
        load_inputs([tiny_bundle], [TINY_STUDY_ID, "EXTRA"])


def test_glucose_mmol_l_converted_with_its_molecular_weight(pooled):
    lb = pooled["LB"]
    gluc = lb[(lb["STUDYID"] == TINY_STUDY_ID) & (lb["LBTESTCD"] == "GLUC")]
    assert gluc["LBSTRESU"].tolist() == ["mg/dL", "mg/dL"]
    assert gluc["LBSTRESN"].tolist() == [99.0858, 129.71232]      # 5.5 and 7.2 x 18.0156
    assert gluc["LBSTRESC"].tolist() == ["99.0858", "129.71232"]
    assert gluc["LBORRES"].tolist() == ["5.5", "7.2"] and set(gluc["LBORRESU"]) == {"mmol/L"}
    [conversion] = [c for c in pooled.report.unit_conversions if c.test == "GLUC"]
    assert (conversion.study, conversion.from_unit, conversion.to_unit, conversion.n_rows) == (
        TINY_STUDY_ID, "mmol/L", "mg/dL", 2)
    assert conversion.factor == pytest.approx(18.0156, rel=1e-12)
    assert conversion.molecular_weight == 180.156
    [target] = [t for t in pooled.report.target_units if t.test == "GLUC"]
    assert (target.unit, target.units_found) == ("mg/dL", {"mg/dL": 48, "mmol/L": 2})


def test_an_analyte_without_molecular_weight_is_reported_not_guessed(pooled):
    lb = pooled["LB"]
    il6 = lb[(lb["STUDYID"] == TINY_STUDY_ID) & (lb["LBTESTCD"] == "INTLK6")]
    assert il6[["LBSTRESN", "LBSTRESU"]].values.tolist() == [[2.1, "pmol/L"]]
    unconvertible = [(u.study, u.usubjid, u.seq, u.test, u.unit, u.target_unit, u.reason)
                     for u in pooled.report.unconvertible]
    assert (TINY_STUDY_ID, f"{TINY_STUDY_ID}-p1", 2.0, "INTLK6", "pmol/L", "ug/L",
            "no-molecular-weight") in unconvertible
    kinds = {(c.kind, c.study, c.usubjid, c.record) for c in pooled.report.conflicts}
    assert ("unconvertible-result", TINY_STUDY_ID, f"{TINY_STUDY_ID}-p1", "LBSEQ=2") in kinds


def _lab_study(study: str, rows: list[tuple[str, str, float, str]]) -> PoolInput:
    """A frames-only study: one subject, lab rows (testcd, loinc, value, unit)."""
    dm = pd.DataFrame({"STUDYID": [study], "DOMAIN": ["DM"], "USUBJID": [f"{study}-1"],
                       "SUBJID": ["1"]}, dtype=object)
    lb = pd.DataFrame({
        "STUDYID": [study] * len(rows), "DOMAIN": ["LB"] * len(rows),
        "USUBJID": [f"{study}-1"] * len(rows),
        "LBSEQ": [float(i) for i in range(1, len(rows) + 1)],
        "LBTESTCD": [r[0] for r in rows], "LBLOINC": [r[1] for r in rows],
        "LBSTRESC": [f"{r[2]:g}" for r in rows], "LBSTRESN": [r[2] for r in rows],
        "LBSTRESU": [r[3] for r in rows]})
    for col in lb.columns:
        if col not in ("LBSEQ", "LBSTRESN"):
            lb[col] = lb[col].astype(object)
    return PoolInput.from_frames({"DM": dm, "LB": lb}, source=study)


def test_a_tie_goes_to_the_terminology_unit(tiny_input):
    mass = _lab_study("MASS", [("GLUC", "2345-7", 90.0, "mg/dL"),
                               ("GLUC", "2345-7", 100.0, "mg/dL")])
    pooled = pool_studies([tiny_input, mass])
    [target] = [t for t in pooled.report.target_units if t.test == "GLUC"]
    assert target.unit == "mg/dL" and target.reason.startswith("tie")
    molar = pool_studies([tiny_input, _lab_study("MOLAR", [("GLUC", "14749-6", 5.0, "mmol/L")])])
    assert not [t for t in molar.report.target_units if t.test == "GLUC"]   # one unit: kept


def test_same_unknown_loinc_under_two_test_codes_is_a_conflict():
    first = _lab_study("A", [("XCODE1", "99999-9", 1.0, "mg/L"), ("CRP", "1988-5", 2.0, "mg/L")])
    second = _lab_study("B", [("XCODE2", "99999-9", 1.5, "mg/L"), ("HSCRP", "1988-5", 3.0,
                                                                    "mg/L")])
    pooled = pool_studies([first, second])
    # 1988-5 is in the tables: B's HSCRP becomes CRP by rule; 99999-9 is not: a conflict
    assert [(c.study, c.from_testcd, c.to_testcd) for c in pooled.report.test_code_changes] == [
        ("B", "HSCRP", "CRP")]
    conflicts = [(c.kind, c.study, c.usubjid, c.record, c.value)
                 for c in pooled.report.conflicts]
    assert conflicts == [("test-code", "A", "A-1", "LBSEQ=1", "XCODE1"),
                         ("test-code", "B", "B-1", "LBSEQ=1", "XCODE2")]


def test_second_study_alone_has_one_glucose_unit(second_input):
    assert second_input.study_id == SECOND_STUDY_ID
    lb = second_input.domains["LB"]
    assert set(lb.loc[lb["LBTESTCD"] == "GLUC", "LBSTRESU"]) == {"mg/dL"}
