"""Property tests: any small SDTM study survives SDTM -> FHIR -> SDTM cell for cell.

Studies are generated as in-memory DataFrames (DM, LB and optionally AE and TS), with
the awkward values real data has: partial dates and times, numbers as text that FHIR
would normalise ("3.90", "<5", "1e-300"), free text with quotes, commas and markup
characters, units outside UCUM, standardized results at the XPT precision limits, and
fractional VISITNUM / --SEQ values. The conversion back runs on the resources in
memory, exactly as ``to_fhir``'s own check pass does, so any value that does not come
back is a loss in the mapping or in the ``sdtm-variable`` extension that carries it.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhircdisc.converters.fhir_reader import Origin, SourceResource
from fhircdisc.converters.fhir_to_sdtm import convert_resources
from fhircdisc.converters.sdtm_to_fhir import to_fhir
from fhircdisc.mappings.terminology import Terminology, load

VERSIONS = ("R4", "R5")
KEYS = {"DM": ["USUBJID"], "TS": ["TSPARMCD", "TSSEQ"]}
NUM = {"LBSEQ", "LBSTRESN", "VISITNUM", "AESEQ", "TSSEQ"}

#: LBTESTCD -> LBTEST for tests in CDISC CT (and in the LOINC table)
CT_TESTS = {"ALB": "Albumin", "GLUC": "Glucose", "HGB": "Hemoglobin",
            "CRP": "C Reactive Protein"}
SPONSOR_TEST = ("XYZ1", "Sponsor Assay XYZ")
UNITS = ("mg/dL", "g/L", "blorbs/jar")
DTCS = ("2020", "2020-06", "2020-06-14", "2020-06-14T08", "2020-06-14T08:30",
        "2020-06-14T08:30:15", "2019-12-31T23:59:59", None)
#: finite values at the limits of an XPT (IBM 370) double, beyond them, and ordinary ones
NUMBERS = (5.4e-79, 9e74, -9e74, -5.4e-79, 0.0, -3.25, 1e-300, 123456789.125, 0.1,
           math.nan)
RESULT_TEXT = ("3.90", "3.9", "<5", "<= 0.5", ">10", "1e-300", "1E+3", "+2", ".5", "5.",
               "-0.0", "007", "1e999", "NaN", "inf", "NEGATIVE", "Trace", 'a "quoted", b',
               "x & y < z > w", "<b>", "'single'", "semi;colon", "back\\slash")
ARMS = (("A", "Drug A 10 mg"), ("PBO", "Placebo"), ("SCRNFAIL", "Screen Failure"))


def printable(min_size: int = 1, max_size: int = 24) -> st.SearchStrategy[str]:
    """Printable ASCII without trailing blanks (trailing blanks are not SDTM values)."""
    return st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=min_size,
                   max_size=max_size).map(str.rstrip).filter(bool)


def char_value(choices: tuple[Any, ...]) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(choices), printable())


@st.composite
def studies(draw: st.DrawFn, *, ae: bool | None = None, ts: bool | None = None
            ) -> dict[str, pd.DataFrame]:
    studyid = draw(st.sampled_from(("S1", "CDISCPILOT01", "UC-MSC 2020")))
    count = draw(st.integers(1, 4))
    subjids = draw(st.lists(st.from_regex(r"[0-9]{3,4}", fullmatch=True), min_size=count,
                            max_size=count, unique=True))
    dm_rows = []
    for subjid in subjids:
        siteid = draw(st.sampled_from(("01", "102")))
        arm = draw(st.sampled_from((*ARMS, (None, None))))
        dm_rows.append({
            "STUDYID": studyid, "DOMAIN": "DM", "USUBJID": f"{studyid}-{siteid}-{subjid}",
            "SUBJID": subjid, "SITEID": siteid,
            "SEX": draw(st.sampled_from(("M", "F", "U", None))),
            "BRTHDTC": draw(st.sampled_from(("1950", "1962-07", "1971-02-28", "1980-12-31",
                                             None))),
            "ARMCD": arm[0], "ARM": arm[1],
            "RFSTDTC": draw(st.sampled_from(("2020-06-01", "2020-06", "2020-05-31T09:15",
                                             None))),
        })
    usubjids = [r["USUBJID"] for r in dm_rows]
    frames = {"DM": _frame(dm_rows)}

    tests = CT_TESTS
    lb_rows = []
    for usubjid in usubjids:
        seqs = draw(st.lists(st.sampled_from((1.0, 2.0, 3.0, 4.0, 7.0, 1.5, 2.25, 100.0)),
                             max_size=4, unique=True))
        for seq in seqs:
            testcd = draw(st.sampled_from(sorted(tests)))
            lb_rows.append({
                "STUDYID": studyid, "DOMAIN": "LB", "USUBJID": usubjid, "LBSEQ": seq,
                "LBTESTCD": testcd,
                "LBTEST": draw(st.sampled_from((tests[testcd], tests[testcd].upper()))),
                "LBORRES": draw(st.one_of(st.none(), char_value(RESULT_TEXT))),
                "LBORRESU": draw(st.sampled_from((*UNITS, None))),
                "LBSTRESN": draw(st.one_of(st.sampled_from(NUMBERS), st.floats(
                    allow_nan=False, allow_infinity=False, min_value=-1e70, max_value=1e70))),
                "LBDTC": draw(st.sampled_from(DTCS)),
                "VISITNUM": draw(st.sampled_from((1.0, 1.5, 2.0, 99.0, math.nan))),
                "VISIT": draw(st.one_of(st.sampled_from(("SCREENING", "WEEK 2", None)),
                                        printable(max_size=12))),
            })
    if lb_rows:
        order = draw(st.permutations(range(len(lb_rows))))
        frames["LB"] = _frame([lb_rows[i] for i in order])

    if ae if ae is not None else draw(st.booleans()):
        ae_rows = []
        for usubjid in usubjids:
            for seq in draw(st.lists(st.sampled_from((1.0, 2.0, 3.0, 5.0)), max_size=2,
                                     unique=True)):
                ae_rows.append({
                    "STUDYID": studyid, "DOMAIN": "AE", "USUBJID": usubjid, "AESEQ": seq,
                    "AETERM": draw(char_value(("HEADACHE", "Nausea, mild", 'rash "red"'))),
                    "AESEV": draw(st.sampled_from(("MILD", "MODERATE", "SEVERE", None))),
                    "AESTDTC": draw(st.sampled_from(DTCS)),
                })
        if ae_rows:
            frames["AE"] = _frame(ae_rows)

    if ts if ts is not None else draw(st.booleans()):
        params = draw(st.lists(st.sampled_from((
            ("TITLE", "Trial Title"), ("TPHASE", "Trial Phase Classification"),
            ("SSTDTC", "Study Start Date"), ("ADDON", "Added on to Existing Treatments"))),
            min_size=1, max_size=4, unique=True))
        ts_rows = []
        for parmcd, parm in params:
            for seq in range(1, draw(st.integers(1, 2)) + 1):
                value = {"TPHASE": st.sampled_from(("PHASE II TRIAL", "PHASE I TRIAL")),
                         "SSTDTC": st.sampled_from(("2020-05", "2020-05-20"))}.get(
                    parmcd, char_value(("Y", "N", "A trial, of <things> & \"stuff\"")))
                ts_rows.append({"STUDYID": studyid, "DOMAIN": "TS", "TSSEQ": float(seq),
                                "TSPARMCD": parmcd, "TSPARM": parm, "TSVAL": draw(value)})
        frames["TS"] = _frame(ts_rows)
    return frames


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """SDTM in memory: Num variables float64 (NaN missing), Char object (None missing)."""
    frame = pd.DataFrame.from_records(rows)
    for column in frame.columns:
        if column in NUM:
            frame[column] = frame[column].astype("float64")
        else:
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


# ----------------------------------------------------------------------- helpers


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _identical(a: Any, b: Any) -> bool:
    if _missing(a) or _missing(b):
        return _missing(a) and _missing(b)
    if isinstance(a, str) or isinstance(b, str):       # "3.90" is not 3.9, nor "3.9"
        return isinstance(a, str) and isinstance(b, str) and a == b
    return float(a) == float(b)


def differences(original: pd.DataFrame, back: pd.DataFrame | None, domain: str
                ) -> dict[str, list[tuple[Any, Any, Any]]]:
    """variable -> [(key, original value, value after the trip)] for every changed cell.

    A variable empty in every original row may be absent after the trip; rows are
    matched by the domain keys (USUBJID + --SEQ; TS by TSPARMCD + TSSEQ).
    """
    keys = KEYS.get(domain, ["USUBJID", f"{domain}SEQ"])
    if back is None:
        back = pd.DataFrame(columns=list(original.columns))
    a = original.sort_values(keys).reset_index(drop=True)
    b = back.sort_values(keys).reset_index(drop=True) if len(back) else back
    found: dict[str, list[tuple[Any, Any, Any]]] = {}
    key_a = [tuple(r) for r in a[keys].itertuples(index=False)]
    key_b = [tuple(r) for r in b[keys].itertuples(index=False)] if len(b) else []
    if key_a != key_b:
        found["<rows>"] = [(None, key_a, key_b)]
        return found
    for column in a.columns:
        if column not in b:
            if not a[column].map(_missing).all():
                found[column] = [(None, "present", "absent")]
            continue
        for key, x, y in zip(key_a, a[column], b[column], strict=True):
            if not _identical(x, y):
                found.setdefault(column, []).append((key, x, y))
    return found


def round_trip(frames: dict[str, pd.DataFrame], version: str, terms: Terminology):
    output = to_fhir(frames, fhir_version=version, validate=False)
    items = [SourceResource(r, Origin("<mem>", f"{r['resourceType']}/{r['id']}"))
             for r in output.resources]
    back = convert_resources(items, sources=["<mem>"], terminology=terms,
                             fhir_version=version)
    return output, back


def assert_lossless(frames: dict[str, pd.DataFrame], version: str, terms: Terminology) -> None:
    output, back = round_trip(frames, version, terms)
    report = output.report
    assert report.rejected == [] and report.reconciles()
    assert report.rows_converted == {d: len(f) for d, f in frames.items()}
    assert back.report.unmapped == [], back.report.unmapped
    problems = {d: differences(f, back.domains.get(d), d) for d, f in frames.items()}
    assert {d: p for d, p in problems.items() if p} == {}


@pytest.fixture(scope="module")
def terms() -> Terminology:
    return load()


# ----------------------------------------------------------------------- properties

PROPERTY = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@pytest.mark.parametrize("version", VERSIONS)
@PROPERTY
@given(frames=studies())
def test_generated_study_survives_the_round_trip(terms, version, frames):
    assert_lossless(frames, version, terms)


def _sponsor_study() -> dict[str, pd.DataFrame]:
    dm = _frame([{"STUDYID": "S1", "DOMAIN": "DM", "USUBJID": "S1-01-001", "SUBJID": "001",
                  "SITEID": "01", "SEX": "F", "BRTHDTC": "1970", "ARMCD": "A", "ARM": "Drug A",
                  "RFSTDTC": "2020-06-01"}])
    lb = _frame([{"STUDYID": "S1", "DOMAIN": "LB", "USUBJID": "S1-01-001", "LBSEQ": seq,
                  "LBTESTCD": testcd, "LBTEST": test, "LBORRES": "12", "LBORRESU": "mg/dL",
                  "LBSTRESN": 12.0, "LBDTC": "2020-06-14", "VISITNUM": 1.0, "VISIT": "DAY 1"}
                 for seq, testcd, test in ((1.0, "GLUC", "Glucose"),
                                           (2.0, *SPONSOR_TEST))])
    return {"DM": dm, "LB": lb}


@pytest.mark.parametrize("version", VERSIONS)
def test_sponsor_defined_test_code_survives_the_round_trip(terms, version):
    frames = _sponsor_study()
    output, back = round_trip(frames, version, terms)
    assert output.report.rows_converted["LB"] == 2 and output.report.carried["LB"]["LBTESTCD"]
    assert back.report.unmapped == [], back.report.unmapped
    assert differences(frames["LB"], back.domains.get("LB"), "LB") == {}


def test_distinct_subjects_get_distinct_resource_ids(terms):
    dm = _frame([{"STUDYID": "S1", "DOMAIN": "DM", "USUBJID": usubjid, "SUBJID": subjid,
                  "SITEID": "01", "SEX": "F"} for usubjid, subjid in (("S1 001", "A"),
                                                                      ("S1-001", "B"))])
    lb = _frame([{"STUDYID": "S1", "DOMAIN": "LB", "USUBJID": usubjid, "LBSEQ": 1.0,
                  "LBTESTCD": "GLUC", "LBTEST": "Glucose", "LBORRES": value}
                 for usubjid, value in (("S1 001", "90"), ("S1-001", "110"))])
    output, back = round_trip({"DM": dm, "LB": lb}, "R4", terms)
    keys = [f"{r['resourceType']}/{r['id']}" for r in output.resources]
    assert sorted(k for k, n in Counter(keys).items() if n > 1) == []
    assert differences(lb, back.domains.get("LB"), "LB") == {}


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=studies(ae=True, ts=True), version=st.sampled_from(VERSIONS))
def test_generated_output_is_valid_fhir(frames, version):
    if version == "R5":
        from fhir.resources import get_fhir_model_class
    else:                                       # R4 output is checked with the R4B models
        from fhir.resources.R4B import get_fhir_model_class
    output = to_fhir(frames, fhir_version=version, validate=True)   # raises if invalid
    for resource in output.resources:             # and once more, independently
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    assert {r["resourceType"] for r in output.resources} >= {
        "Patient", "ResearchSubject", "ResearchStudy"}
