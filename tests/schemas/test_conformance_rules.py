"""The SDTM rule table itself (fhircdisc/schemas/rules/sdtm_rules.csv) is valid data."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fhircdisc.schemas.conformance import CHECKS, Rule, RuleTableError, load_rules
from fhircdisc.schemas.conformance.rules import (
    COLUMNS,
    default_rules_path,
    parse_domains,
    parse_params,
    read_rules_text,
)
from fhircdisc.schemas.findings import SEVERITIES

RULES = load_rules()
HEADER = ",".join(COLUMNS)
GOOD_ROW = "FC-SD-0001,error,*,variables_present,core=Req,{variable} missing,,,,4.1.5"


def test_table_has_a_source_header_and_unique_ids() -> None:
    text = default_rules_path().read_text(encoding="utf-8")
    assert text.startswith("# ") and "cdisc-open-rules" in text and "Pinnacle 21" in text
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids)) and ids == sorted(ids)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_rule_row_is_well_formed(rule: Rule) -> None:
    assert rule.severity in SEVERITIES
    spec = CHECKS[rule.check]
    assert set(spec.required) <= set(rule.params) <= set(spec.required + spec.optional)
    assert rule.citation
    for ident in filter(None, rule.core_id.split(";")):
        assert re.fullmatch(r"CORE-\d{6}", ident)
    for ident in filter(None, rule.fda_id.split(";")):
        assert re.fullmatch(r"(SD|CT)\d{4}", ident)
    for ident in filter(None, rule.cg_id.split(";")):
        assert re.fullmatch(r"CG\d{4}", ident)


def test_every_registered_check_is_used() -> None:
    assert {r.check for r in RULES} == set(CHECKS)


def test_params_parse() -> None:
    assert parse_params("var=--STDTC; other=--ENDTC") == {"var": "--STDTC", "other": "--ENDTC"}
    assert parse_params("keys=USUBJID,--TESTCD") == {"keys": "USUBJID,--TESTCD"}
    assert parse_params("") == {}
    for bad in ("var", "var=", "=x", "a=1;a=2"):
        with pytest.raises(ValueError):
            parse_params(bad)


def test_domains_parse() -> None:
    assert parse_domains("*") == (None, ())
    assert parse_domains("*;!DM") == (None, ("DM",))
    assert parse_domains("LB;VS") == (("LB", "VS"), ())
    for bad in ("", "*;LB", "!DM", "lb"):
        with pytest.raises(ValueError):
            parse_domains(bad)


@pytest.mark.parametrize(("row", "problem"), [
    (GOOD_ROW.replace("variables_present", "no_such_check"), "unknown check 'no_such_check'"),
    (GOOD_ROW.replace(",error,", ",fatal,"), "severity 'fatal'"),
    (GOOD_ROW.replace("core=Req", "core=Req;colour=red"), "takes no parameter(s) colour"),
    (GOOD_ROW.replace("core=Req", ""), "needs parameter(s) core"),
    (GOOD_ROW.replace("{variable} missing", "{variable} is {colour}"),
     "placeholder(s) colour"),
    (GOOD_ROW.replace("FC-SD-0001", "R1"), "is not of the form FC-SD-0000"),
    (GOOD_ROW.replace(",*,", ",lb,"), "invalid dataset name"),
])
def test_malformed_rows_fail_at_load_time(row: str, problem: str) -> None:
    with pytest.raises(RuleTableError) as err:
        read_rules_text(f"# comment\n{HEADER}\n{row}\n", source="rules.csv")
    assert problem in str(err.value) and "rules.csv [rule 1" in str(err.value)


def test_duplicate_id_and_wrong_header_fail() -> None:
    with pytest.raises(RuleTableError, match="duplicate rule id FC-SD-0001"):
        read_rules_text(f"{HEADER}\n{GOOD_ROW}\n{GOOD_ROW}\n")
    with pytest.raises(RuleTableError, match="header is"):
        read_rules_text("id,severity\nFC-SD-0001,error\n")


def test_load_rules_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "rules.csv"
    path.write_text(f"{HEADER}\n{GOOD_ROW}\n", encoding="utf-8")
    (rule,) = load_rules(path)
    assert (rule.id, rule.params, rule.domains) == ("FC-SD-0001", {"core": "Req"}, None)
    with pytest.raises(RuleTableError, match="cannot read"):
        load_rules(tmp_path / "missing.csv")
