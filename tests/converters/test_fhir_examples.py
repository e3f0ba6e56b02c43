"""The official FHIR R4 examples convert, with the test codes their LOINC codes stand for."""

from __future__ import annotations

import pytest

from fhircdisc import to_sdtm
from tests.conftest import shared

SUBJECTS = "patient_id,SUBJID,SITEID\nexample,EX1,01\npat1,P1,01\npat2,P2,01\nf001,F001,02\n" \
           "f201,F201,02\ninfant,INF,03\n"

# resource -> (domain, test code) for every Observation the examples hold
EXPECTED_TESTS = {
    "Observation/f001": ("LB", "GLUC"), "Observation/f002": ("LB", "BASEEXCS"),
    "Observation/f003": ("LB", "PCO2"), "Observation/f004": ("LB", "RBC"),
    "Observation/f005": ("LB", "HGB"), "Observation/f203": ("LB", "BICARB"),
    "Observation/unsat": ("LB", "GLUC"), "Observation/cholesterol": ("LB", "CHOL"),
    "Observation/triglyceride": ("LB", "TRIG"), "Observation/hdlcholesterol": ("LB", "HDL"),
    "Observation/ldlcholesterol": ("LB", "LDL"), "Observation/r1": ("LB", "HGB"),
    "Observation/r2": ("LB", "RBC"), "Observation/r3": ("LB", "HCT"),
    "Observation/r6": ("LB", "PLAT"), "Observation/r7": ("LB", "WBC"),
    "Observation/bmi": ("VS", "BMI"), "Observation/body-height": ("VS", "HEIGHT"),
    "Observation/heart-rate": ("VS", "HR"), "Observation/mbp": ("VS", "MAP"),
    "Observation/respiratory-rate": ("VS", "RESP"),
    "Observation/body-temperature": ("VS", "TEMP"), "Observation/satO2": ("VS", "OXYSAT"),
    "Observation/example": ("VS", "WEIGHT"),
}


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    folder = shared("fhir-r4-examples")
    subjects = tmp_path_factory.mktemp("ex") / "subjects.csv"
    subjects.write_text(SUBJECTS, encoding="utf-8")
    files = sorted(p for p in folder.glob("*.json") if p.name != "fhir.schema.json")
    return to_sdtm(files, study_id="EXAMPLES", subjects=subjects)


def test_examples_convert_and_counts_reconcile(examples):
    report = examples.report
    assert report.fhir_version == "R4"
    assert report.reconciles()
    assert report.rows["LB"] >= 25 and report.rows["VS"] == 10 and report.rows["AE"] == 1


def test_each_example_observation_gets_its_test_code(examples):
    prov = examples.provenance
    for source, (domain, testcd) in EXPECTED_TESTS.items():
        rows = prov[(prov["SOURCE"] == source) & (prov["DOMAIN"] == domain)]
        assert len(rows) >= 1, source
        frame = examples[domain]
        seqs = frame[(frame["USUBJID"] == rows.iloc[0]["USUBJID"])
                     & (frame[f"{domain}SEQ"] == rows.iloc[0]["SEQ"])]
        assert frame.loc[seqs.index[0], f"{domain}TESTCD"] == testcd, source


def test_blood_pressure_example_splits_into_systolic_and_diastolic(examples):
    vs = examples["VS"]
    bp = vs[vs["VSDTC"] == "2012-09-17"].set_index("VSTESTCD")
    assert bp.loc["SYSBP", "VSSTRESN"] == 107 and bp.loc["DIABP", "VSSTRESN"] == 60
    assert bp.loc["SYSBP", "VSORRESU"] == "mmHg"


def test_values_units_and_reference_ranges(examples):
    lb = examples["LB"]
    glucose = lb[(lb["LBTESTCD"] == "GLUC") & lb["LBSTRESN"].notna()].iloc[0]
    assert glucose["LBSTRESN"] == 6.3 and glucose["LBSTRESU"] == "mmol/L"
    assert glucose["LBNRIND"] == "HIGH" and glucose["LBDTC"] == "2013-04-02T09:30:10"
    assert glucose["LBORNRLO"] == "3.1" and glucose["LBORNRHI"] == "6.2"
    vs = examples["VS"].set_index("VSTESTCD")
    assert vs.loc["HR", "VSORRESU"] == "beats/min"
    assert vs.loc["WEIGHT", "VSORRESU"] == "LB"      # [lb_av] is the CDISC unit LB


def test_comparator_results_keep_the_comparator_and_have_no_number(examples):
    lb = examples["LB"]
    gfr = lb[lb["LBORRES"] == ">60"]
    assert len(gfr) == 1 and gfr.iloc[0]["LBSTRESN"] != gfr.iloc[0]["LBSTRESN"]  # NaN


def test_out_of_scope_and_problem_resources_are_listed_with_reasons(examples):
    reasons = {(i.resource, i.reason_code) for i in examples.report.unmapped}
    assert ("Observation/f202", "entered-in-error") in reasons
    assert ("Observation/vitals-panel", "panel-grouping") in reasons
    assert ("Encounter/example", "unsupported-resource-type") not in reasons  # context
    assert ("Observation/decimal", "missing-subject") in reasons


def test_medication_administrations_and_adverse_event(examples):
    ex = examples["EX"].set_index("EXTRT")
    vanco = ex.loc["Vancomycin Hydrochloride (VANCOMYCIN HYDROCHLORIDE)"]
    assert vanco["EXDOSE"] == 500 and vanco["EXDOSU"] == "mg"
    assert vanco["EXROUTE"] == "INTRAVENOUS" and vanco["EXSTDTC"] == "2015-01-15T14:30:00"
    ae = examples["AE"].iloc[0]
    assert ae["AETERM"] == "This was a mild rash on the left forearm"
    assert ae["AESEV"] == "MILD" and ae["AESER"] == "N"
