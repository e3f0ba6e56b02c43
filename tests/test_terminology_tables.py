"""Checks of the curated terminology tables and of the generated schema tables.

The terminology CSVs under ``fhircdisc/mappings/terminology/`` are read with the csv
module only (``#`` lines skipped) and checked against ``fhircdisc/schemas/ct_subset.csv``
(CDISC CT 2025-03-28). ``tools/build_tables.py`` is re-run into a temporary folder and must
reproduce the committed ``fhircdisc/schemas/*.csv`` byte for byte (skipped without
``../shared/data``).
"""

from __future__ import annotations

import csv
import importlib.util
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from fhircdisc.examples import demo_codes

ROOT = Path(__file__).resolve().parent.parent
TERM_DIR = ROOT / "fhircdisc" / "mappings" / "terminology"
SCHEMAS = ROOT / "fhircdisc" / "schemas"
SHARED = ROOT.parent / "shared" / "data"
BUILD_SCRIPT = ROOT / "tools" / "build_tables.py"

HEADER = ["table", "system", "code", "display", "submission_value", "decode", "nci_code",
          "preferred", "attributes"]
TABLE_CODELIST = {
    "SEX": "C66731", "RACE": "C74457", "ETHNIC": "C66790", "COUNTRY": None,
    "ROUTE": "C66729", "DOSFRM": "C66726", "UNIT": "C71620", "LBTEST": "C65047",
    "VSTEST": "C66741", "NRIND": "C78736", "SPEC": "C78734", "VSPOS": "C71148",
    "LOC": "C74456", "AESEV": "C66769", "AESER": "C66742", "AEOUT": "C66768",
    "AEREL": None, "AEACN": "C66767", "TPHASE": "C66737", "STYPE": "C99077",
    "TTYPE": "C66739",
}
TEST_NAME_CODELIST = {"LBTEST": "C67154", "VSTEST": "C67153"}
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"


def _uncommented(path: Path) -> list[str]:
    return [ln for ln in path.read_text(encoding="utf-8").splitlines()
            if not ln.startswith("#")]


def _load(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.reader(_uncommented(path))
    header = next(reader)
    return header, [dict(zip(header, r, strict=True)) for r in reader]


def _attrs(value: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in value.split(";")) if value else {}


TERM_FILES = sorted(TERM_DIR.glob("*.csv"))
ROWS = [(p.name, r) for p in TERM_FILES for r in _load(p)[1]]


@pytest.fixture(scope="module")
def ct() -> dict[str, dict[str, str]]:
    """{codelist: {submission_value: nci_code}} from ct_subset.csv."""
    out: dict[str, dict[str, str]] = {}
    for r in csv.DictReader(_uncommented(SCHEMAS / "ct_subset.csv")):
        out.setdefault(r["codelist"], {})[r["submission_value"]] = r["nci_code"]
    return out


def _rows(table: str) -> list[dict[str, str]]:
    return [r for _, r in ROWS if r["table"] == table]


def _lookup(table: str, system: str, code: str) -> dict[str, str]:
    hits = [r for r in _rows(table) if r["system"] == system and r["code"] == code]
    assert len(hits) == 1, f"no single {table} row for {system}|{code}"
    return hits[0]


def test_expected_files_present() -> None:
    names = {p.name for p in TERM_FILES}
    assert {"demographics.csv", "lab_tests.csv", "vital_signs.csv", "units.csv",
            "exposure.csv", "findings.csv", "adverse_events.csv", "study.csv"} <= names


@pytest.mark.parametrize("path", TERM_FILES, ids=lambda p: p.name)
def test_header_and_comments(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("#"), "file must start with # comment lines"
    assert "2025-03-28" in "\n".join(ln for ln in lines if ln.startswith("#"))
    header, rows = _load(path)
    assert header == HEADER
    assert rows, "table is empty"


def test_tables_in_closed_list() -> None:
    bad = {(f, r["table"]) for f, r in ROWS if r["table"] not in TABLE_CODELIST}
    assert not bad


def test_table_system_code_unique() -> None:
    counts = Counter((r["table"], r["system"], r["code"]) for _, r in ROWS)
    assert [k for k, n in counts.items() if n > 1] == []


def test_exactly_one_preferred_per_submission_value() -> None:
    assert {r["preferred"] for _, r in ROWS} <= {"Y", ""}
    pref = Counter((r["table"], r["submission_value"]) for _, r in ROWS if r["preferred"] == "Y")
    keys = {(r["table"], r["submission_value"]) for _, r in ROWS}
    assert {k: pref[k] for k in keys if pref[k] != 1} == {}


def test_attributes_are_key_value() -> None:
    for f, r in ROWS:
        for item in filter(None, r["attributes"].split(";")):
            assert re.fullmatch(r"[A-Za-z_]+=.+", item), (f, r["code"], item)


def test_submission_values_in_cdisc_ct(ct: dict[str, dict[str, str]]) -> None:
    problems = []
    for f, r in ROWS:
        table, sv = r["table"], r["submission_value"]
        codelist = TABLE_CODELIST[table]
        if _attrs(r["attributes"]).get("sponsor") == "Y":
            continue
        if table == "COUNTRY":  # no CDISC codelist: ISO 3166-1 alpha-3
            if not re.fullmatch(r"[A-Z]{3}", sv) or r["nci_code"]:
                problems.append((f, r["code"], sv))
            continue
        assert codelist is not None, f"{table} without codelist needs sponsor=Y"
        if sv not in ct.get(codelist, {}):
            problems.append((f, r["code"], sv, f"not in {codelist}"))
        elif ct[codelist][sv] != r["nci_code"]:
            problems.append((f, r["code"], sv, f"nci {r['nci_code']} != {ct[codelist][sv]}"))
    assert problems == []


def test_test_names_match_ct(ct: dict[str, dict[str, str]]) -> None:
    for table, name_codelist in TEST_NAME_CODELIST.items():
        names = {nci: sv for sv, nci in ct[name_codelist].items()}
        for r in _rows(table):
            assert r["decode"] == names[r["nci_code"]], (table, r["code"])


def test_sponsor_values_only_where_allowed() -> None:
    for f, r in ROWS:
        if _attrs(r["attributes"]).get("sponsor") == "Y":
            assert r["table"] == "AEREL", (f, r["code"])
    assert all(_attrs(r["attributes"]).get("sponsor") == "Y" for r in _rows("AEREL"))


def test_lab_and_vs_attributes(ct: dict[str, dict[str, str]]) -> None:
    ucum = {r["code"] for r in _rows("UNIT") if r["system"] == UCUM}
    for r in _rows("LBTEST"):
        a = _attrs(r["attributes"])
        assert a["LBSPEC"] in ct["C78734"], r["code"]
        assert a["LBCAT"] in {"CHEMISTRY", "HEMATOLOGY", "IMMUNOLOGY", "URINALYSIS",
                              "COAGULATION"}, r["code"]
        assert "unit" not in a or a["unit"] in ucum, r["code"]
    for r in _rows("VSTEST"):
        a = _attrs(r["attributes"])
        assert a["unit"] in ucum, r["code"]
        assert a["VSORRESU"] in ct["C66770"], r["code"]


def test_country_alpha2_and_alpha3() -> None:
    rows = _rows("COUNTRY")
    by_code = {r["code"]: r["submission_value"] for r in rows}
    for a2, a3 in [("IR", "IRN"), ("US", "USA"), ("GB", "GBR"), ("DE", "DEU"), ("FR", "FRA"),
                   ("NL", "NLD"), ("CN", "CHN"), ("JP", "JPN"), ("IN", "IND"), ("BR", "BRA"),
                   ("CA", "CAN"), ("AU", "AUS"), ("ES", "ESP"), ("IT", "ITA")]:
        assert by_code[a2] == a3 and by_code[a3] == a3
    for r in rows:
        assert (r["preferred"] == "Y") == (len(r["code"]) == 2), r["code"]


def test_demo_lab_codes_mapped() -> None:
    demo_rows = _load(demo_codes.DEMO_TERMINOLOGY)[1]
    for t in demo_codes.LAB_TESTS:
        if t.system != LOINC:
            hits = [r for r in demo_rows if (r["table"], r["system"], r["code"]) ==
                    ("LBTEST", t.system, t.loinc)]
            assert len(hits) == 1 and hits[0]["submission_value"] == t.testcd
            continue
        row = _lookup("LBTEST", LOINC, t.loinc)
        assert row["submission_value"] == t.testcd
        assert row["preferred"] == "Y", f"{t.loinc} should be the preferred {t.testcd} code"
        assert _lookup("UNIT", UCUM, t.ucum)["submission_value"]


@pytest.mark.parametrize("name", ["OXYSAT", "FIO2", "PULSE", "TEMP", "SYSBP", "DIABP",
                                  "WEIGHT"])
def test_demo_vital_sign_codes_mapped(name: str) -> None:
    t = getattr(demo_codes, name)
    row = _lookup("VSTEST", LOINC, t.loinc)
    assert row["submission_value"] == t.testcd
    assert _attrs(row["attributes"])["unit"] == t.ucum
    assert _lookup("UNIT", UCUM, t.ucum)["submission_value"]


def test_demo_exposure_codes_mapped() -> None:
    assert _lookup("ROUTE", SNOMED, demo_codes.ROUTE_IV_SNOMED)["submission_value"] \
        == "INTRAVENOUS"
    assert _lookup("UNIT", UCUM, demo_codes.DOSE_UCUM)["submission_value"] == "10^6/kg"
    assert _lookup("DOSFRM", SNOMED, demo_codes.FORM_SNOMED)["submission_value"] \
        == "INJECTION, SOLUTION"


# ---------------------------------------------------------------- tools/build_tables.py
def _build_module():
    spec = importlib.util.spec_from_file_location("build_tables", BUILD_SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


needs_shared = pytest.mark.skipif(not (SHARED / "sdtm-terminology").is_dir(),
                                  reason=f"reference data not available at {SHARED}")


@needs_shared
def test_build_tables_reproduces_schemas(tmp_path: Path) -> None:
    rc = _build_module().main(["--shared", str(SHARED), "--out", str(tmp_path)])
    assert rc == 0
    for name in ("sdtmig_3_4_variables.csv", "sdtmig_3_4_datasets.csv", "ct_subset.csv"):
        assert (tmp_path / name).read_bytes() == (SCHEMAS / name).read_bytes(), name


@needs_shared
def test_build_tables_rejects_value_not_in_ct(tmp_path: Path) -> None:
    term = tmp_path / "terminology"
    shutil.copytree(TERM_DIR, term)
    path = term / "demographics.csv"
    path.write_text(path.read_text(encoding="utf-8").replace(
        "administrative-gender,male,Male,M,", "administrative-gender,male,Male,MALE,"),
        encoding="utf-8")
    rc = _build_module().main(["--shared", str(SHARED), "--out", str(tmp_path / "out"),
                               "--terminology", str(term)])
    assert rc == 1


def test_schema_tables_shape() -> None:
    rows = list(csv.DictReader(_uncommented(SCHEMAS / "sdtmig_3_4_variables.csv")))
    assert {r["dataset"] for r in rows} == {"DM", "EX", "LB", "VS", "AE", "TS", "SUPPQUAL"}
    assert {r["type"] for r in rows} == {"Char", "Num"}
    assert {r["core"] for r in rows} == {"Req", "Exp", "Perm"}
    sex = next(r for r in rows if r["dataset"] == "DM" and r["name"] == "SEX")
    assert sex["codelist"] == "C66731"
    ds = list(csv.DictReader(_uncommented(SCHEMAS / "sdtmig_3_4_datasets.csv")))
    assert [r["dataset"] for r in ds] == ["DM", "EX", "LB", "VS", "AE", "TS", "SUPPQUAL"]
