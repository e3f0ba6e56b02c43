"""Define-XML 2.1: build (odmlib), XSD validation, consistency checks and safe XML parsing."""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path

import pandas as pd
import pytest
from lxml import etree

from fhircdisc.converters.datasets import read_dataset
from fhircdisc.errors import InputError
from fhircdisc.schemas import sdtmig
from fhircdisc.schemas.define import (
    build_define,
    check_define_against_datasets,
    parse_xml_safely,
    validate_define,
    validate_define_xsd,
)

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
PILOT = SHARED / "cdisc-sdtm-example"
PILOT_XPT = PILOT / "xpt"
CDISC_EXAMPLE = SHARED / "define-xml-2.1" / "examples" / "DefineXML-2-1-SDTM" / "defineV21-SDTM.xml"
GOLDEN = ROOT / "tests" / "data" / "define" / "golden_define.xml"
PILOT_DATASETS = ("dm", "ex", "lb", "vs", "ae", "ts", "suppdm")
STAMP = "2025-06-01T12:00:00"

NS = {"odm": "http://www.cdisc.org/ns/odm/v1.3", "def": "http://www.cdisc.org/ns/def/v2.1",
      "xlink": "http://www.w3.org/1999/xlink"}


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"reference data not found: {path} (CI provides ../shared/data)")
    return path


def _tree(xml: bytes) -> etree._Element:
    return etree.fromstring(xml)


def _find(root: etree._Element, xpath: str) -> list[etree._Element]:
    return root.xpath(xpath, namespaces=NS)


def _rules(result) -> list[str]:
    return sorted({f.rule_id for f in result.findings})


# ----------------------------------------------------------------------------- fixtures


def _frame(domain: str, rows: list[dict[str, object]]):
    meta = sdtmig.dataset_meta(domain, list(rows[0]))
    data = {}
    for col in meta.columns:
        values = [r[col.name] for r in rows]
        data[col.name] = pd.Series(values, dtype="float64" if col.type == "Num" else object)
    return pd.DataFrame(data), meta


def tiny_study() -> dict[str, tuple[pd.DataFrame, object]]:
    """A fixed two-dataset study: DM with 3 subjects, AE with 2 events."""
    dm = [
        {"STUDYID": "TINY01", "DOMAIN": "DM", "USUBJID": "TINY01-001", "SUBJID": "001",
         "RFSTDTC": "2024-01-10", "SITEID": "01", "BRTHDTC": "1970-05", "AGE": 53.0,
         "AGEU": "YEARS", "SEX": "M", "RACE": "WHITE", "ARMCD": "A", "ARM": "Drug A",
         "COUNTRY": "USA"},
        {"STUDYID": "TINY01", "DOMAIN": "DM", "USUBJID": "TINY01-002", "SUBJID": "002",
         "RFSTDTC": "2024-01-12", "SITEID": "01", "BRTHDTC": "1962", "AGE": 61.0,
         "AGEU": "YEARS", "SEX": "F", "RACE": "ASIAN", "ARMCD": "B", "ARM": "Placebo",
         "COUNTRY": "USA"},
        {"STUDYID": "TINY01", "DOMAIN": "DM", "USUBJID": "TINY01-0003", "SUBJID": "003",
         "RFSTDTC": None, "SITEID": "02", "BRTHDTC": "1976-11-30", "AGE": 47.0,
         "AGEU": "YEARS", "SEX": "F", "RACE": "WHITE", "ARMCD": "SCRNFAIL",
         "ARM": "Screen Failure", "COUNTRY": "CAN"},
    ]
    ae = [
        {"STUDYID": "TINY01", "DOMAIN": "AE", "USUBJID": "TINY01-001", "AESEQ": 1.0,
         "AETERM": "HEADACHE", "AEDECOD": "Headache", "AESEV": "MILD", "AESER": "N",
         "EPOCH": "TREATMENT", "AESTDTC": "2024-01-15T08:30", "AESTDY": 6.0},
        {"STUDYID": "TINY01", "DOMAIN": "AE", "USUBJID": "TINY01-002", "AESEQ": 1.0,
         "AETERM": "NAUSEA", "AEDECOD": "Nausea", "AESEV": "MODERATE", "AESER": "N",
         "EPOCH": "EXTENSION", "AESTDTC": "2024-02", "AESTDY": math.nan},
    ]
    return {"DM": _frame("DM", dm), "AE": _frame("AE", ae)}


def tiny_define() -> bytes:
    return build_define(tiny_study(), study_oid="TINY01", study_name="TINY01",
                        creation_datetime=STAMP)


@pytest.fixture(scope="module")
def pilot() -> dict[str, tuple[pd.DataFrame, object]]:
    _need(PILOT_XPT)
    return {name.upper(): read_dataset(_need(PILOT_XPT / f"{name}.xpt"))
            for name in PILOT_DATASETS}


@pytest.fixture(scope="module")
def pilot_define(pilot) -> bytes:
    return build_define(pilot, study_oid="CDISCPILOT01", study_name="CDISCPILOT01",
                        creation_datetime=STAMP)


@pytest.fixture()
def tiny_path(tmp_path: Path) -> Path:
    path = tmp_path / "define.xml"
    path.write_bytes(tiny_define())
    return path


def _edit(path: Path, change) -> Path:
    """Apply ``change(root)`` to a copy of the define.xml at ``path``; return the copy."""
    root = etree.parse(str(path)).getroot()
    change(root)
    out = path.with_name("modified.xml")
    out.write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    return out


# ----------------------------------------------------------------------------- build: pilot


def test_pilot_define_is_xsd_valid(pilot_define: bytes) -> None:
    assert validate_define_xsd(pilot_define) == []


def test_pilot_define_has_one_item_group_per_dataset(pilot_define: bytes) -> None:
    root = _tree(pilot_define)
    names = [g.get("Name") for g in _find(root, "//odm:ItemGroupDef")]
    assert sorted(names) == sorted(n.upper() for n in PILOT_DATASETS)
    dm = _find(root, "//odm:ItemGroupDef[@Name='DM']")[0]
    assert dm.get("Repeating") == "No" and dm.get("Purpose") == "Tabulation"
    assert _find(dm, "def:Class/@Name") == ["SPECIAL PURPOSE"]
    assert _find(dm, "def:leaf/@xlink:href") == ["dm.xpt"]
    assert _find(root, "//odm:ItemGroupDef[@Name='TS']/@IsReferenceData") == ["Yes"]
    assert _find(root, "//odm:ItemGroupDef[@Name='SUPPDM']/@Domain") == ["DM"]


def test_pilot_item_refs_follow_columns_with_keys(pilot, pilot_define: bytes) -> None:
    root = _tree(pilot_define)
    for name, (df, _meta) in pilot.items():
        refs = _find(root, f"//odm:ItemGroupDef[@Name='{name}']/odm:ItemRef")
        assert [r.get("ItemOID") for r in refs] == [f"IT.{name}.{c}" for c in df.columns]
        assert [r.get("OrderNumber") for r in refs] == [str(i) for i in range(1, len(refs) + 1)]

    def keys(name: str) -> list[str]:
        refs = _find(root, f"//odm:ItemGroupDef[@Name='{name}']/odm:ItemRef[@KeySequence]")
        refs.sort(key=lambda r: int(r.get("KeySequence")))
        return [r.get("ItemOID").split(".")[-1] for r in refs]

    assert keys("DM") == ["STUDYID", "USUBJID"]
    assert keys("LB") == ["STUDYID", "USUBJID", "LBTESTCD", "VISITNUM", "LBDTC"]
    assert keys("AE") == ["STUDYID", "USUBJID", "AETERM", "AESTDTC"]  # AEDECOD is empty
    assert keys("EX") == ["STUDYID", "USUBJID", "EXTRT", "EXSTDTC"]
    assert keys("TS") == ["STUDYID", "TSPARMCD", "TSSEQ"]
    mandatory = _find(root, "//odm:ItemGroupDef[@Name='DM']/odm:ItemRef[@Mandatory='Yes']/@ItemOID")
    assert "IT.DM.USUBJID" in mandatory and "IT.DM.AGE" not in mandatory


def test_pilot_item_defs_lengths_and_types(pilot, pilot_define: bytes) -> None:
    root = _tree(pilot_define)

    def item(oid: str) -> etree._Element:
        return _find(root, f"//odm:ItemDef[@OID='{oid}']")[0]

    dm = pilot["DM"][0]
    usubjid = item("IT.DM.USUBJID")
    assert usubjid.get("DataType") == "text"
    assert int(usubjid.get("Length")) == max(len(v) for v in dm["USUBJID"])
    # every text ItemDef is exactly as long as its longest value (in bytes)
    for name, (df, _meta) in pilot.items():
        for col in df.columns:
            elem = item(f"IT.{name}.{col}")
            if elem.get("DataType") == "text":
                longest = max((len(v.encode()) for v in df[col] if v), default=1)
                assert int(elem.get("Length")) == longest, f"{name}.{col}"
    assert item("IT.DM.AGE").get("DataType") == "integer"
    assert item("IT.LB.LBSTRESN").get("DataType") == "float"
    assert item("IT.LB.LBSTRESN").get("SignificantDigits") is not None
    assert item("IT.LB.LBDTC").get("DataType") == "datetime"  # dates and date-times
    assert item("IT.DM.RFSTDTC").get("DataType") == "date"
    assert item("IT.DM.BRTHDTC").get("DataType") == "partialDate"  # years only
    assert item("IT.DM.RFSTDTC").get("Length") is None
    assert _find(item("IT.DM.AGE"), "def:Origin/@Type") == ["Derived"]
    assert _find(item("IT.DM.SEX"), "def:Origin/@Type") == ["Collected"]
    assert _find(item("IT.DM.STUDYID"), "def:Origin/@Type") == ["Assigned"]
    assert _find(item("IT.TS.TSVAL"), "def:Origin/@Type") == ["Protocol"]
    assert _find(item("IT.DM.SEX"), "odm:Description/odm:TranslatedText/text()") == ["Sex"]


def test_pilot_sex_codelist_holds_the_values_present(pilot_define: bytes) -> None:
    root = _tree(pilot_define)
    ref = _find(root, "//odm:ItemDef[@OID='IT.DM.SEX']/odm:CodeListRef/@CodeListOID")
    assert ref == ["CL.C66731"]
    cl = _find(root, "//odm:CodeList[@OID='CL.C66731']")[0]
    items = {i.get("CodedValue"): _find(i, "odm:Alias[@Context='nci:ExtCodeID']/@Name")
             for i in _find(cl, "odm:CodeListItem")}
    assert items == {"F": ["C16576"], "M": ["C20197"]}
    assert _find(cl, "odm:CodeListItem[@CodedValue='M']/odm:Decode/odm:TranslatedText/text()") \
        == ["Male"]
    assert _find(cl, "odm:Alias/@Name") == ["C66731"]
    assert cl.get("{http://www.cdisc.org/ns/def/v2.1}StandardOID") == "STD.CT.SDTM.2025-03-28"
    # RACE is not extensible: the pilot's 'MULTIPLE' is left out (and reported by the checker)
    race = _find(root, "//odm:CodeList[@OID='CL.C74457']//@CodedValue")
    assert "MULTIPLE" not in race and "WHITE" in race


def test_pilot_suppdm_value_level_metadata(pilot_define: bytes) -> None:
    root = _tree(pilot_define)
    assert _find(root, "//odm:ItemDef[@OID='IT.SUPPDM.QVAL']/def:ValueListRef/@ValueListOID") \
        == ["VL.SUPPDM.QVAL"]
    refs = _find(root, "//def:ValueListDef[@OID='VL.SUPPDM.QVAL']/odm:ItemRef")
    assert [r.get("ItemOID") for r in refs] == [f"IT.SUPPDM.QVAL.RACE{i}" for i in (1, 2, 3)]
    wc = _find(root, "//def:WhereClauseDef[@OID='WC.SUPPDM.QNAM.RACE2']/odm:RangeCheck")[0]
    assert wc.get("Comparator") == "EQ"
    assert wc.get("{http://www.cdisc.org/ns/def/v2.1}ItemOID") == "IT.SUPPDM.QNAM"
    assert _find(wc, "odm:CheckValue/text()") == ["RACE2"]
    race2 = _find(root, "//odm:ItemDef[@OID='IT.SUPPDM.QVAL.RACE2']")[0]
    assert race2.get("Length") == str(len("BLACK OR AFRICAN AMERICAN"))
    assert _find(race2, "odm:Description/odm:TranslatedText/text()") == ["Race 2"]


def test_pilot_define_against_its_data_flags_only_a_ct_error(pilot, pilot_define, tmp_path):
    path = tmp_path / "define.xml"
    path.write_bytes(pilot_define)
    result = validate_define(path, pilot)
    assert [(f.rule_id, f.dataset, f.variable, f.value) for f in result.findings] == [
        ("FC-DF-0009", "DM", "RACE", "MULTIPLE")]
    assert result.findings[0].usubjid == "CDISC008"
    assert {r.status for r in result.runs} == {"success", "issues"}


def test_build_is_deterministic(pilot, pilot_define: bytes) -> None:
    reordered = dict(reversed(list(pilot.items())))
    again = build_define(reordered, study_oid="CDISCPILOT01", study_name="CDISCPILOT01",
                         creation_datetime=STAMP)
    assert again == pilot_define


# ----------------------------------------------------------------------------- golden


def test_golden_define(tmp_path: Path) -> None:
    xml = tiny_define()
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_bytes(xml)
    assert GOLDEN.exists(), "golden file missing: run with UPDATE_GOLDEN=1"
    assert xml == GOLDEN.read_bytes(), "define.xml changed; if intended, rerun with UPDATE_GOLDEN=1"
    assert validate_define_xsd(GOLDEN) == []
    path = tmp_path / "define.xml"
    path.write_bytes(xml)
    assert validate_define(path, tiny_study()).findings == []


def test_golden_extended_value_and_iso_types() -> None:
    root = _tree(tiny_define())
    epoch = _find(root, "//odm:CodeList[@OID='CL.C99079']")[0]
    extended = _find(epoch, ".//*[@def:ExtendedValue='Yes']/@CodedValue")
    assert extended == ["EXTENSION"]
    assert _find(epoch, ".//*[@CodedValue='TREATMENT']/odm:Alias/@Name") == ["C101526"]
    assert _find(root, "//odm:ItemDef[@OID='IT.AE.AESTDTC']/@DataType") == ["partialDatetime"]
    assert _find(root, "//odm:ItemDef[@OID='IT.DM.USUBJID']/@Length") == ["11"]


# ----------------------------------------------------------------------------- CDISC's files


def test_cdisc_define_21_example_is_xsd_valid() -> None:
    assert validate_define_xsd(_need(CDISC_EXAMPLE)) == []


def test_cdisc_pilot_define_has_one_known_xsd_error() -> None:
    # CDISC's pilot define.xml spells the standard 'STDTMIG' (for SDTMIG) on line 63; the
    # Define-XML 2.1 StandardName enumeration rejects it. It is the file's only XSD error.
    findings = validate_define_xsd(_need(PILOT / "define.xml"))
    assert [(f.rule_id, f.severity, f.row) for f in findings] == [("FC-DF-XSD", "error", 63)]
    assert "'STDTMIG' is not an element of the set" in findings[0].message
    assert findings[0].variable.endswith("def:Standards/def:Standard[1]")


def test_cdisc_pilot_define_against_the_pilot_data(pilot) -> None:
    # Real defects of CDISC's pilot define.xml that the consistency checks find in its data:
    # value-level lengths too short, AGEMIN 'P50Y' under an 'integer' where clause, and the
    # TS SEXPOP value 'BOTH' checked against the SEX codelist (C66731, which lacks it).
    result = validate_define(_need(PILOT / "define.xml"), pilot)
    errors = sorted((f.rule_id, f.dataset, f.variable or "", f.value or "")
                    for f in result.findings if f.severity == "error")
    assert errors == [
        ("FC-DF-0006", "LB", "LBSTRESC", "12.41"),
        ("FC-DF-0006", "LB", "LBSTRESC", "NORMAL"),
        ("FC-DF-0006", "TS", "TSVAL", "BOTH"),
        ("FC-DF-0007", "TS", "TSVAL", "P50Y"),
        ("FC-DF-0009", "TS", "TSVAL", "BOTH"),
        ("FC-DF-XSD", "define.xml", "/*/*/*[2]/def:Standards/def:Standard[1]", ""),
    ]
    assert {f.rule_id for f in result.findings if f.severity == "warning"} == {
        "FC-DF-0002", "FC-DF-0010"}  # 21 datasets not in our subset; LBTEST 'Anisocytes'


# ----------------------------------------------------------------------------- consistency


def test_dataset_missing_from_define(tiny_path: Path) -> None:
    def drop_ae(root):
        for group in _find(root, "//odm:ItemGroupDef[@Name='AE']"):
            group.getparent().remove(group)

    result = check_define_against_datasets(_edit(tiny_path, drop_ae), tiny_study())
    assert [(f.rule_id, f.severity, f.dataset) for f in result.findings] == [
        ("FC-DF-0001", "error", "AE")]


def test_item_group_without_dataset_is_a_warning(tiny_path: Path) -> None:
    study = tiny_study()
    del study["AE"]
    result = check_define_against_datasets(tiny_path, study)
    assert [(f.rule_id, f.severity, f.dataset) for f in result.findings] == [
        ("FC-DF-0002", "warning", "AE")]


def test_variable_missing_from_define(tiny_path: Path) -> None:
    def drop_age(root):
        for ref in _find(root, "//odm:ItemRef[@ItemOID='IT.DM.AGE']"):
            ref.getparent().remove(ref)

    result = check_define_against_datasets(_edit(tiny_path, drop_age), tiny_study())
    assert [(f.rule_id, f.dataset, f.variable) for f in result.findings] == [
        ("FC-DF-0003", "DM", "AGE")]


def test_length_too_short(tiny_path: Path) -> None:
    def shorten(root):
        _find(root, "//odm:ItemDef[@OID='IT.DM.USUBJID']")[0].set("Length", "10")

    result = check_define_against_datasets(_edit(tiny_path, shorten), tiny_study())
    assert len(result.findings) == 1
    finding = result.findings[0]
    assert (finding.rule_id, finding.severity, finding.dataset, finding.variable) == (
        "FC-DF-0006", "error", "DM", "USUBJID")
    assert (finding.value, finding.row, finding.usubjid) == ("TINY01-0003", 3, "TINY01-0003")


def test_codelist_value_missing_from_non_extensible_codelist(tiny_path: Path) -> None:
    def drop_female(root):
        for item in _find(root, "//odm:CodeList[@OID='CL.C66731']/odm:CodeListItem"
                                "[@CodedValue='F']"):
            item.getparent().remove(item)

    result = check_define_against_datasets(_edit(tiny_path, drop_female), tiny_study())
    assert [(f.rule_id, f.severity, f.variable, f.value, f.row) for f in result.findings] == [
        ("FC-DF-0009", "error", "SEX", "F", 2)]
    assert "2 row(s)" in result.findings[0].message


def test_codelist_value_missing_from_extensible_codelist_is_a_warning(tiny_path) -> None:
    study = tiny_study()
    study["AE"][0].loc[1, "EPOCH"] = "RUN-IN"  # CT term, but not in the define's CodeList
    result = check_define_against_datasets(tiny_path, study)
    assert [(f.rule_id, f.severity, f.variable, f.value) for f in result.findings] == [
        ("FC-DF-0010", "warning", "EPOCH", "RUN-IN")]


def test_data_type_and_order_checks(tiny_path: Path) -> None:
    def change(root):
        _find(root, "//odm:ItemDef[@OID='IT.DM.AGE']")[0].set("DataType", "text")
        _find(root, "//odm:ItemDef[@OID='IT.AE.AESTDY']")[0].set("DataType", "integer")
        refs = _find(root, "//odm:ItemGroupDef[@Name='AE']/odm:ItemRef")
        refs[0].set("OrderNumber", "2")
        refs[1].set("OrderNumber", "1")

    study = tiny_study()
    study["AE"][0].loc[1, "AESTDY"] = 1.5
    result = check_define_against_datasets(_edit(tiny_path, change), study)
    assert [(f.rule_id, f.severity, f.dataset, f.variable) for f in result.findings] == [
        ("FC-DF-0007", "error", "DM", "AGE"),
        ("FC-DF-0008", "error", "AE", "AESTDY"),
        ("FC-DF-0011", "notice", "AE", "STUDYID"),
    ]


def test_validate_define_reports_broken_references_and_skips_without_data(tiny_path) -> None:
    def break_ref(root):
        _find(root, "//odm:ItemDef[@OID='IT.DM.SEX']/odm:CodeListRef")[0].set(
            "CodeListOID", "CL.NOPE")

    result = validate_define(_edit(tiny_path, break_ref))
    assert [(f.rule_id, f.value) for f in result.findings] == [("FC-DF-0005", "CL.NOPE")]
    statuses = {r.rule_id: r.status for r in result.runs}
    assert statuses["FC-DF-XSD"] == "success" and statuses["FC-DF-0005"] == "issues"
    assert statuses["FC-DF-0001"] == "skipped"


def test_xsd_errors_become_findings_with_line(tiny_path: Path) -> None:
    def break_schema(root):
        del _find(root, "//odm:ItemGroupDef[@Name='DM']")[0].attrib[
            "{http://www.cdisc.org/ns/def/v2.1}Structure"]
        _find(root, "//odm:ItemDef[@OID='IT.DM.AGE']")[0].set("DataType", "number")

    result = validate_define(_edit(tiny_path, break_schema))
    xsd = [f for f in result.findings if f.rule_id == "FC-DF-XSD"]
    assert len(xsd) == 2 and all(f.severity == "error" and f.row for f in xsd)
    assert any("'number'" in f.message for f in xsd)
    assert any("Structure" in f.message and "required" in f.message for f in xsd)


# ----------------------------------------------------------------------------- hostile XML

ENTITY_XML = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>
<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3">&e;</ODM>
"""
EXTERNAL_DTD_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<!-- a define.xml with an external DTD -->
<!DOCTYPE ODM SYSTEM "http://example.com/x.dtd">
<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3"/>
"""
LAUGHS_XML = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">]>
<lolz>&lol2;</lolz>
"""


@pytest.fixture()
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize(("content", "line", "words"), [
    (ENTITY_XML, 2, ("DOCTYPE", "ENTITY declaration", "external reference")),
    (EXTERNAL_DTD_XML, 3, ("DOCTYPE", "external reference")),
    (LAUGHS_XML, 2, ("DOCTYPE", "ENTITY declaration")),
])
def test_hostile_xml_is_refused(tmp_path: Path, content: bytes, line: int, words) -> None:
    path = tmp_path / "hostile_define.xml"
    path.write_bytes(content)
    for call in (parse_xml_safely, validate_define_xsd, validate_define,
                 lambda p: check_define_against_datasets(p, {})):
        with pytest.raises(InputError) as info:
            call(path)
        message = str(info.value)
        assert message.startswith(f"{path} [line {line}]: refused: the XML has ")
        assert "root:" not in message and "passwd" not in message.split("refused")[1]
        for word in words:
            assert word in message
    with pytest.raises(InputError, match=r"^<bytes> \[line \d\]: refused"):
        parse_xml_safely(content)


def test_doctype_text_in_a_comment_is_not_refused() -> None:
    xml = b'<?xml version="1.0"?>\n<ODM><!-- <!DOCTYPE x> and <!ENTITY y> are text --></ODM>'
    assert parse_xml_safely(xml).getroot().tag == "ODM"


def test_utf16_doctype_is_refused() -> None:
    xml = '<?xml version="1.0" encoding="UTF-16"?>\n<!DOCTYPE x SYSTEM "x.dtd">\n<x/>'
    with pytest.raises(InputError, match=r"line 2\]: refused"):
        parse_xml_safely(xml.encode("utf-16"), "u16.xml")


def test_malformed_xml_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.xml"
    path.write_bytes(b'<?xml version="1.0"?>\n<ODM>\n  <Study OID="S">\n</ODM>\n')
    with pytest.raises(InputError) as info:
        parse_xml_safely(path)
    assert str(info.value).startswith(f"{path} [line 4, column ")
    assert "not well-formed XML" in str(info.value)


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read the file"):
        validate_define_xsd(tmp_path / "absent.xml")
