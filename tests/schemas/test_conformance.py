"""SDTM conformance engine (fhircdisc.schemas.conformance): every rule fires on a minimal bad
study and stays silent on a clean one; run statuses; finding records."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhircdisc.column_values import ColumnValues, first_rows
from fhircdisc.schemas.columns import ColumnMeta, DatasetMeta
from fhircdisc.schemas.conformance import CHECKS, Rule, load_rules, run_rule, validate_sdtm
from fhircdisc.schemas.conformance.checks.dates import valid_dtc, valid_dtcs
from fhircdisc.schemas.conformance.checks.presence import is_null
from fhircdisc.schemas.conformance.checks.registry import CheckSpec
from fhircdisc.schemas.conformance.checks.terminology import _RESULT_NUMBER, _is_result_number
from fhircdisc.schemas.conformance.context import Dataset, Skip
from fhircdisc.schemas.conformance.engine import build_study

Study = dict[str, pd.DataFrame]
S1, S2 = "ST1-001", "ST1-002"


def frame(**columns: list[Any]) -> pd.DataFrame:
    """A dataset as readers return it: numbers as float64, text as object (str/None)."""
    data = {}
    for name, values in columns.items():
        numbers = [v for v in values if v is not None]
        if numbers and all(isinstance(v, int | float) for v in numbers):
            data[name] = pd.Series([float("nan") if v is None else v for v in values],
                                   dtype="float64")
        else:
            data[name] = pd.Series(values, dtype=object)
    return pd.DataFrame(data)


def clean_study() -> Study:
    """Two subjects, every dataset conformant: no rule finds anything."""
    n2 = ["ST1", "ST1"]
    dm = frame(
        STUDYID=n2, DOMAIN=["DM", "DM"], USUBJID=[S1, S2], SUBJID=["001", "002"],
        RFSTDTC=["2020-01-10", "2020-02-01"], RFENDTC=["2020-03-01", "2020-04-01"],
        RFXSTDTC=["2020-01-10", "2020-02-01"], RFXENDTC=["2020-01-20", "2020-02-10"],
        RFICDTC=["2020-01-02", "2020-01-25"], RFPENDTC=["2020-03-01", "2020-04-01"],
        DTHDTC=[None, None], DTHFL=[None, None], SITEID=["01", "01"],
        BRTHDTC=["1970-05-15", "1980-12-01"], AGE=[49, 39], AGEU=["YEARS", "YEARS"],
        SEX=["M", "F"], RACE=["WHITE", "ASIAN"], ARMCD=["A", "B"], ARM=["Drug A", "Placebo"],
        ACTARMCD=["A", "B"], ACTARM=["Drug A", "Placebo"], ARMNRS=[None, None],
        ACTARMUD=[None, None], COUNTRY=["USA", "USA"],
    )
    ex = frame(
        STUDYID=n2, DOMAIN=["EX", "EX"], USUBJID=[S1, S2], EXSEQ=[1, 1],
        EXTRT=["DRUG A", "PLACEBO"], EXDOSE=[10, 0], EXDOSU=["mg", "mg"],
        EXDOSFRM=["TABLET", "TABLET"], EXSTDTC=["2020-01-10", "2020-02-01"],
        EXENDTC=["2020-01-20", "2020-02-10"], EXSTDY=[1, 1], EXENDY=[11, 10],
    )
    lb = frame(
        STUDYID=["ST1"] * 3, DOMAIN=["LB"] * 3, USUBJID=[S1, S1, S2], LBSEQ=[1, 2, 1],
        LBTESTCD=["GLUC"] * 3, LBTEST=["Glucose"] * 3, LBCAT=["CHEMISTRY"] * 3,
        LBORRES=["5.5", "6.0", "<2.2"], LBORRESU=["mmol/L"] * 3, LBORNRLO=["3.9"] * 3,
        LBORNRHI=["6.1"] * 3, LBSTRESC=["5.5", "6.0", "<2.2"], LBSTRESN=[5.5, 6.0, None],
        LBSTRESU=["mmol/L"] * 3, LBSTNRLO=[3.9] * 3, LBSTNRHI=[6.1] * 3,
        LBNRIND=["NORMAL", "NORMAL", "LOW"], LBLOBXFL=["Y", None, "Y"], VISITNUM=[1, 2, 1],
        LBDTC=["2020-01-09T08:30", "2020-01-20", "2020-02-01"], LBDY=[-1, 11, 1],
    )
    vs = frame(
        STUDYID=n2, DOMAIN=["VS", "VS"], USUBJID=[S1, S1], VSSEQ=[1, 2],
        VSTESTCD=["SYSBP", "DIABP"], VSTEST=["Systolic Blood Pressure",
                                             "Diastolic Blood Pressure"],
        VSORRES=["120", "80"], VSORRESU=["mmHg", "mmHg"], VSSTRESC=["120", "80"],
        VSSTRESN=[120, 80], VSSTRESU=["mmHg", "mmHg"], VSLOBXFL=["Y", "Y"], VISITNUM=[1, 1],
        VSDTC=["2020-01-09", "2020-01-09"], VSDY=[-1, -1],
    )
    ae = frame(
        STUDYID=["ST1"], DOMAIN=["AE"], USUBJID=[S1], AESEQ=[1], AETERM=["HEADACHE"],
        AELLT=["Headache"], AELLTCD=[10019211], AEDECOD=["Headache"], AEPTCD=[10019211],
        AEHLT=["Headaches NEC"], AEHLTCD=[10019233], AEHLGT=["Headaches"],
        AEHLGTCD=[10019231], AEBODSYS=["Nervous system disorders"], AEBDSYCD=[10029205],
        AESOC=["Nervous system disorders"], AESOCCD=[10029205], AESER=["N"],
        AEACN=["DOSE NOT CHANGED"], AEREL=["NOT RELATED"], AESTDTC=["2020-01-12"],
        AEENDTC=["2020-01-13"], AESTDY=[3], AEENDY=[4],
    )
    ts = frame(
        STUDYID=n2, DOMAIN=["TS", "TS"], TSSEQ=[1, 1], TSPARMCD=["ADDON", "SSTDTC"],
        TSPARM=["Added on to Existing Treatments", "Study Start Date"],
        TSVAL=["N", "2020-01-01"], TSVALCD=["C49487", None], TSVCDREF=["CDISC CT", None],
        TSVCDVER=["2025-03-28", None],
    )
    return {"DM": dm, "EX": ex, "LB": lb, "VS": vs, "AE": ae, "TS": ts}


def mutate(change: Callable[[Study], None]) -> Callable[[], Study]:
    def build() -> Study:
        study = clean_study()
        change(study)
        return study
    return build


def cell(name: str, column: str, row: int, value: Any) -> Callable[[], Study]:
    def change(study: Study) -> None:
        study[name].loc[row, column] = value
    return mutate(change)


def drop(name: str, column: str) -> Callable[[], Study]:
    return mutate(lambda s: s.__setitem__(name, s[name].drop(columns=[column])))


def append_copy(name: str, row: int, **changes: Any) -> Callable[[], Study]:
    def change(study: Study) -> None:
        df = study[name]
        extra = df.iloc[[row]].copy()
        for column, value in changes.items():
            extra[column] = value
        study[name] = pd.concat([df, extra], ignore_index=True)
    return mutate(change)


def as_text(name: str, column: str) -> Callable[[], Study]:
    def change(study: Study) -> None:
        study[name][column] = study[name][column].map(lambda v: None if pd.isna(v) else str(v))
    return mutate(change)


# rule id -> (a study that triggers the rule, the dataset it fires in)
TRIGGERS: dict[str, tuple[Callable[[], Study], str]] = {
    "FC-SD-0001": (drop("DM", "SUBJID"), "DM"),
    "FC-SD-0002": (cell("AE", "AEDECOD", 0, None), "AE"),
    "FC-SD-0003": (drop("LB", "LBNRIND"), "LB"),
    "FC-SD-0004": (as_text("LB", "LBSTRESN"), "LB"),
    "FC-SD-0005": (cell("AE", "AETERM", 0, "CÉPHALÉE"), "AE"),
    "FC-SD-0006": (cell("DM", "SEX", 0, "MALE"), "DM"),
    "FC-SD-0007": (cell("LB", "LBTESTCD", 1, "GLUCX"), "LB"),
    "FC-SD-0008": (cell("AE", "AESTDTC", 0, "12/01/2020"), "AE"),
    "FC-SD-0009": (cell("AE", "AEENDTC", 0, "2020-01-11"), "AE"),
    "FC-SD-0010": (cell("DM", "RFENDTC", 0, "2019-12"), "DM"),
    "FC-SD-0011": (cell("LB", "LBSEQ", 1, 1.0), "LB"),
    "FC-SD-0012": (cell("AE", "USUBJID", 0, "ST1-999"), "AE"),
    "FC-SD-0013": (append_copy("DM", 0), "DM"),
    "FC-SD-0014": (cell("LB", "LBDY", 0, 1.0), "LB"),
    "FC-SD-0015": (cell("EX", "EXSTDY", 0, 2.0), "EX"),
    "FC-SD-0016": (cell("EX", "EXENDY", 1, 9.0), "EX"),
    "FC-SD-0017": (cell("VS", "VSDY", 0, 0.0), "VS"),
    "FC-SD-0018": (cell("LB", "LBSTRESN", 0, 5.6), "LB"),
    "FC-SD-0019": (cell("LB", "LBSTRESU", 0, None), "LB"),
    "FC-SD-0020": (cell("DM", "AGE", 0, 50.0), "DM"),
    "FC-SD-0021": (cell("DM", "ARM", 1, "Drug A"), "DM"),
    "FC-SD-0022": (cell("DM", "ACTARMCD", 1, "A"), "DM"),
    "FC-SD-0023": (append_copy("LB", 0, LBSEQ=3.0), "LB"),
    "FC-SD-0024": (append_copy("AE", 0, AESEQ=2.0), "AE"),
    "FC-SD-0025": (append_copy("EX", 0, EXSEQ=2.0), "EX"),
    "FC-SD-0026": (cell("LB", "STUDYID", 2, "ST2"), "LB"),
    "FC-SD-0027": (cell("LB", "DOMAIN", 0, "LX"), "LB"),
}
RULES = {rule.id: rule for rule in load_rules()}


def run(rule_id: str, study: Study) -> tuple[list, Any]:
    return run_rule(RULES[rule_id], build_study(study))


def test_every_rule_has_a_trigger_case() -> None:
    assert set(TRIGGERS) == set(RULES)


def test_clean_study_passes_every_rule() -> None:
    result = validate_sdtm(clean_study(), target="clean")
    assert result.findings == []
    assert {r.rule_id: r.status for r in result.runs} == dict.fromkeys(RULES, "success")


@pytest.mark.parametrize("rule_id", sorted(TRIGGERS))
def test_rule_fires_on_bad_data(rule_id: str) -> None:
    build, dataset = TRIGGERS[rule_id]
    findings, status = run(rule_id, build())
    assert status.status == "issues", status
    assert findings and status.findings == len(findings)
    assert {f.dataset for f in findings} == {dataset}
    assert all(f.rule_id == rule_id and f.severity == RULES[rule_id].severity
               for f in findings)


@pytest.mark.parametrize("rule_id", sorted(TRIGGERS))
def test_rule_silent_on_clean_data(rule_id: str) -> None:
    findings, status = run(rule_id, clean_study())
    assert (findings, status.status) == ([], "success")


def test_finding_carries_row_subject_seq_variable_value() -> None:
    findings, _ = run("FC-SD-0014", cell("LB", "LBDY", 1, 12.0)())
    (f,) = findings
    assert (f.dataset, f.row, f.usubjid, f.seq, f.variable, f.value) == (
        "LB", 2, S1, 2.0, "LBDY", "12")
    assert f.message == "LBDY is 12 but LBDTC 2020-01-20 and RFSTDTC 2020-01-10 give 11"


def test_codelist_severity_follows_extensibility() -> None:
    study = clean_study()
    study["DM"].loc[0, "SEX"] = "MALE"  # C66731 is non-extensible
    study["LB"].loc[0, "LBSTRESU"] = "mmol/l"  # C71620 (UNIT) is extensible
    result = validate_sdtm(study)
    ct = {(f.rule_id, f.severity, f.variable, f.value) for f in result.findings
          if f.rule_id in ("FC-SD-0006", "FC-SD-0007")}
    assert ct == {("FC-SD-0006", "error", "SEX", "MALE"),
                  ("FC-SD-0007", "warning", "LBSTRESU", "mmol/l")}


def test_race_multiple_is_allowed_and_comparator_results_are_not_terms() -> None:
    study = clean_study()
    study["DM"].loc[1, "RACE"] = "MULTIPLE"  # SDTMIG DM assumption, details in SUPPDM
    assert study["LB"].loc[2, "LBSTRESC"] == "<2.2"  # a result, not a C102580 term
    for rule_id in ("FC-SD-0006", "FC-SD-0007"):
        assert run(rule_id, study)[1].status == "success"


def test_unit_required_only_where_the_original_result_had_one() -> None:
    study = clean_study()
    study["LB"].loc[0, ["LBORRESU", "LBSTRESU"]] = None  # dimensionless, like pH
    assert run("FC-SD-0019", study)[1].status == "success"


@pytest.mark.parametrize("value", ["2020", "2020-06", "2020-06-14", "2020-06-14T08",
                                   "2020-06-14T08:00", "2020-06-14T08:00:30.5", "2003---15",
                                   "--12-15", "-----T07:15", "2003-12-15T10:00/2003-12-15T10:30",
                                   "2020-06-14/P3D"])
def test_valid_iso8601(value: str) -> None:
    assert valid_dtc(value)


@pytest.mark.parametrize("value", ["20200614", "2020-6-14", "2020-02-30", "2020-06-14 08:00",
                                   "2020-06-14T25:00", "2003-12--", "UNK", "P3D/P2D", ""])
def test_invalid_iso8601(value: str) -> None:
    assert not valid_dtc(value)


@pytest.mark.parametrize(("start", "end", "fires"), [
    ("2012-11", "2012-10-05", True),    # months compare
    ("2012-11", "2012-11-05", False),   # same month: cannot be ordered
    ("2012-11-05T10", "2012-11-05T09:30", True),
    ("2012", "2011", True),
    ("2012-11-05", "bad", False),       # invalid dates are FC-SD-0008's business
])
def test_start_after_end_at_common_precision(start: str, end: str, fires: bool) -> None:
    study = clean_study()
    study["AE"].loc[0, ["AESTDTC", "AEENDTC"]] = [start, end]
    assert bool(run("FC-SD-0009", study)[0]) is fires


def test_skipped_with_reason_when_dataset_or_variable_absent() -> None:
    study = {"DM": clean_study()["DM"]}
    _, status = run("FC-SD-0023", study)
    assert (status.status, status.reason) == ("skipped", "no LB or VS dataset")
    lb_only = {"LB": clean_study()["LB"].drop(columns=["LBSTRESN"])}
    _, status = run("FC-SD-0018", lb_only)
    assert status.status == "skipped"
    assert status.reason == "LB: variable LBSTRESN absent"
    _, status = run("FC-SD-0014", {"LB": clean_study()["LB"]})
    assert (status.status, status.reason) == ("skipped", "LB: no DM dataset")


def test_partial_skip_is_success_with_a_note() -> None:
    _, status = run("FC-SD-0018", clean_study())
    assert status.status == "success"
    assert status.reason is not None and "AE: variable AESTRESC absent" in status.reason


def test_a_failing_check_is_an_error_and_the_others_still_run(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(ds: Any, p: Any, study: Any) -> list:
        raise ZeroDivisionError("check bug")

    monkeypatch.setitem(CHECKS, "boom", CheckSpec("boom", boom))
    broken = Rule(id="FC-SD-9999", severity="error", check="boom", message="never",
                  domains=("LB",))
    bad_study = cell("LB", "LBSTRESN", 0, 5.6)()
    result = validate_sdtm(bad_study, rules=[broken, RULES["FC-SD-0018"], RULES["FC-SD-0001"]])
    statuses = {r.rule_id: (r.status, r.reason) for r in result.runs}
    assert statuses["FC-SD-9999"] == ("error", "LB: ZeroDivisionError: check bug")
    assert statuses["FC-SD-0018"][0] == "issues"
    assert statuses["FC-SD-0001"][0] == "success"
    assert [f.rule_id for f in result.findings] == ["FC-SD-0018"]


def test_skip_raised_by_a_check_is_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(ds: Any, p: Any, study: Any) -> list:
        raise Skip("nothing to do")

    monkeypatch.setitem(CHECKS, "never", CheckSpec("never", never))
    rule = Rule(id="FC-SD-9998", severity="notice", check="never", message="x")
    _, status = run_rule(rule, build_study(clean_study()))
    assert status.status == "skipped" and "DM: nothing to do" in (status.reason or "")


def test_metadata_types_are_used_when_given() -> None:
    study = clean_study()
    lb = study["LB"]
    columns = tuple(ColumnMeta(c, c, "Char" if c == "LBSEQ" else
                               ("Num" if lb[c].dtype == "float64" else "Char"))
                    for c in lb.columns)
    metas = {"LB": DatasetMeta("LB", "Laboratory Test Results", columns)}
    result = validate_sdtm(study, metas=metas, rules=[RULES["FC-SD-0004"]])
    assert [(f.variable, f.message) for f in result.findings] == [
        ("LBSEQ", "LBSEQ is Char, SDTMIG 3.4 defines it as Num")]


def test_xpt_limits_use_dataset_labels() -> None:
    study = clean_study()
    columns = tuple(ColumnMeta(c, "x" * 41 if c == "AETERM" else c,
                               "Num" if study["AE"][c].dtype == "float64" else "Char")
                    for c in study["AE"].columns)
    result = validate_sdtm({"AE": (study["AE"], DatasetMeta("AE", "Adverse Events", columns))},
                           rules=[RULES["FC-SD-0005"]])
    (f,) = result.findings
    assert (f.variable, f.row) == ("AETERM", None) and "41 characters" in f.message


def test_result_records_versions_and_dataset_sizes() -> None:
    result = validate_sdtm(clean_study(), target="demo")
    assert result.kind == "sdtm" and result.target == "demo"
    assert result.metadata["standard"] == "SDTMIG 3.4"
    assert result.metadata["datasets"]["LB"] == 3
    assert result.metadata["rules"] == len(RULES)


def test_only_tested_datasets_yield_findings_with_the_others_as_context() -> None:
    study = clean_study()
    study["DM"].loc[0, "SEX"] = "MALE"
    study["DM"].loc[0, "RFENDTC"] = "2019-12"
    study["LB"].loc[0, "LBDY"] = 1.0
    study["LB"].loc[2, "STUDYID"] = "ST2"
    pair = {"DM": study["DM"], "LB": study["LB"]}
    full = validate_sdtm(pair)
    tested = validate_sdtm(pair, tested=("lb",))
    assert tested.findings == [f for f in full.findings if f.dataset == "LB"]
    assert {f.rule_id for f in tested.findings} == {"FC-SD-0014", "FC-SD-0026"}
    runs = {r.rule_id: (r.status, r.reason) for r in tested.runs}
    assert runs["FC-SD-0010"] == ("skipped", "no DM dataset under test")
    assert runs["FC-SD-0006"] == ("success", None)
    assert runs["FC-SD-0026"] == ("issues", None)


def _one_column(values: pd.Series) -> Dataset:
    return Dataset("LB", pd.DataFrame({"X": values}))


@pytest.mark.parametrize("dtype", [object, "string", "str"])
def test_is_null_finds_blank_text_of_every_string_dtype(dtype: Any) -> None:
    values = pd.Series(["x", "", " ", "\t\u00a0", None, "y ", " "], dtype=dtype)
    assert is_null(_one_column(values), "X").tolist() == [
        False, True, True, True, True, False, True]


def test_is_null_ignores_non_text_cells_even_unhashable_ones() -> None:
    values = pd.Series([0, False, 1.5, float("nan"), pd.NA, ["a"], " "], dtype=object)
    assert is_null(_one_column(values), "X").tolist() == [
        False, False, False, True, True, False, True]


def test_text_mask_asks_once_per_distinct_text() -> None:
    asked: list[str] = []

    def test(value: str) -> bool:
        asked.append(value)
        return value.startswith("a")

    values = pd.Series(["ab", "b", "ab", None, 1, "b", "ac"], dtype=object)
    assert ColumnValues.of(values).text_where(test).tolist() == [
        True, False, True, False, False, False, True]
    assert sorted(asked) == ["ab", "ac", "b"]


_CELLS = st.one_of(st.sampled_from(["A", "B", "", " ", "1", "1.0"]), st.none(),
                   st.just(float("nan")), st.sampled_from([1, 1.0, 2.5, 0]))


@settings(max_examples=200, deadline=None)
@given(st.lists(_CELLS, max_size=30), st.sets(st.sampled_from(["A", "B", "", "1", 1, 2.5])))
def test_column_values_answer_as_the_pandas_operations_they_replace(
        cells: list[Any], allowed: set[Any]) -> None:
    series = pd.Series(cells, dtype=object)
    values = ColumnValues.of(series)
    assert values.missing().tolist() == series.isna().tolist()
    assert values.isin(allowed).tolist() == (series.notna() & series.isin(allowed)).tolist()
    assert values.text_where(str.isalpha).tolist() == [
        isinstance(cell, str) and cell.isalpha() for cell in cells]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_CELLS, _CELLS, st.sampled_from(["x", "y", None])), max_size=40))
def test_first_rows_groups_as_pandas_groupby_with_missing_values_equal(
        rows: list[tuple[Any, Any, Any]]) -> None:
    frame = pd.DataFrame(rows, columns=["a", "b", "c"], dtype=object)
    groups = frame.groupby(["a", "b", "c"], dropna=False, sort=False).ngroup().to_numpy()
    expected = [int(np.flatnonzero(groups == group)[0]) for group in groups]
    got = first_rows([ColumnValues.of(frame[name]) for name in frame.columns], len(frame))
    assert got.tolist() == expected


def test_first_rows_renumbers_keys_too_wide_for_one_integer() -> None:
    # four columns of 2**16 - 1 distinct values each: the combined key needs 64 bits
    # before the first column is counted, so without renumbering the first column
    # would be shifted out and the last row would pass for a copy of the first
    size = 2**16
    tail = np.append(np.arange(size - 1), 0)
    columns = [np.arange(size), tail, tail, tail, tail]
    got = first_rows([ColumnValues.of(pd.Series(c)) for c in columns], size)
    assert (got == np.arange(size)).all()
    columns[0] = np.append(np.arange(size - 1), 0)
    got = first_rows([ColumnValues.of(pd.Series(c)) for c in columns], size)
    assert got[-1] == 0 and (got[:-1] == np.arange(size - 1)).all()


def test_every_row_of_a_repeated_bad_date_is_a_finding() -> None:
    study = clean_study()
    study["LB"]["LBDTC"] = pd.Series(["2020-02-30", 20200120, "2020-02-30"], dtype=object)
    findings, _ = run("FC-SD-0008", study)
    assert [(f.row, f.value) for f in findings] == [
        (1, "2020-02-30"), (2, "20200120"), (3, "2020-02-30")]


def _dtc_form(form: str) -> st.SearchStrategy[str]:
    """Text of a date form ('d' a digit), now and then with a wrong mark."""
    parts = [st.sampled_from("0123456789") if mark == "d" else
             st.sampled_from([mark, mark, mark, "x", "1"]) for mark in form]
    return st.tuples(*parts).map("".join)


_DTC_TEXTS = st.one_of(
    _dtc_form("dddd-dd-dd"), _dtc_form("dddd-dd-ddTdd:dd"), _dtc_form("dddd-dd-ddTdd:dd:dd"),
    st.text(max_size=20),
    st.sampled_from(["2020-02-29", "2021-02-29", "1900-02-29", "2000-02-29", "0000-01-01",
                     "2021-04-31", "2021-12-31T23:59:59", "2021-12-31T24:00:00",
                     "\uff12\uff10\uff12\uff11-01-01", "2021-01-01\n", "2021---15"]))


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_DTC_TEXTS, max_size=10))
def test_dates_checked_as_arrays_as_one_by_one(values: list[str]) -> None:
    """The array check of complete dates agrees with the value-by-value definition,
    calendar (leap years, month lengths) and clock included."""
    assert valid_dtcs(values).tolist() == [valid_dtc(value) for value in values]


def test_a_finding_moved_down_names_the_rows_of_the_whole_dataset() -> None:
    """A piece's duplicate-record finding, seen in the whole dataset: its row and the row
    its message points at move together; the report keeps only the usual fields."""
    df = pd.DataFrame({"STUDYID": "S", "DOMAIN": "LB", "USUBJID": ["S-1", "S-1"],
                       "LBSEQ": [1.0, 2.0], "LBTESTCD": ["GLUC", "GLUC"],
                       "LBDTC": ["2021-01-01", "2021-01-01"], "VISITNUM": [1.0, 1.0]})
    rule = next(r for r in load_rules() if r.id == "FC-SD-0023")
    [finding], _ = run_rule(rule, build_study({"LB": df}))
    assert finding.row == 2 and "as row 1 " in finding.message
    moved = finding.moved(100)
    assert moved.row == 102 and "as row 101 " in moved.message
    assert moved.message == finding.message.replace("as row 1 ", "as row 101 ")
    assert "wording" not in moved.to_dict() and moved.to_dict()["row"] == 102


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from("0123456789.-+<>= eE\u0661\u00b2x"), max_size=8))
def test_result_number_fast_path_agrees_with_the_pattern(value: str) -> None:
    assert _is_result_number(value) == bool(_RESULT_NUMBER.match(value.strip()))
