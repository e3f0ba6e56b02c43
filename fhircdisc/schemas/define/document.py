"""A define.xml read back into the few facts the consistency checks need.

Read with lxml through :func:`~fhircdisc.schemas.define.safe_xml.parse_xml_safely` (not
with odmlib's loader: a checker must read imperfect files, such as CDISC's own pilot
define.xml, and report on them rather than stop at the first surprise).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from fhircdisc.schemas.define.safe_xml import parse_xml_safely

ODM_NS = "http://www.cdisc.org/ns/odm/v1.3"
DEF_NS = "http://www.cdisc.org/ns/def/v2.1"
XLINK_NS = "http://www.w3.org/1999/xlink"
NS = {"odm": ODM_NS, "def": DEF_NS}


def _odm(tag: str) -> str:
    return f"{{{ODM_NS}}}{tag}"


def _def(tag: str) -> str:
    return f"{{{DEF_NS}}}{tag}"


@dataclass(frozen=True)
class ItemRef:
    item_oid: str
    order: int | None
    line: int | None
    has_no_data: bool = False
    where_oids: tuple[str, ...] = ()


@dataclass
class ItemGroup:
    oid: str
    name: str
    line: int | None
    has_no_data: bool
    archive_id: str | None
    refs: list[ItemRef] = field(default_factory=list)


@dataclass(frozen=True)
class ItemDef:
    oid: str
    name: str
    data_type: str
    length: int | None
    line: int | None
    codelist_oid: str | None
    value_list_oid: str | None


@dataclass(frozen=True)
class CodeList:
    oid: str
    name: str
    values: frozenset[str]
    nci_code: str | None
    external: bool
    has_extended_values: bool


@dataclass(frozen=True)
class RangeCheck:
    item_oid: str
    comparator: str
    values: tuple[str, ...]


@dataclass
class DefineDocument:
    """The parts of a define.xml the checks use, keyed by OID."""

    source: str
    groups: list[ItemGroup] = field(default_factory=list)
    items: dict[str, ItemDef] = field(default_factory=dict)
    codelists: dict[str, CodeList] = field(default_factory=dict)
    value_lists: dict[str, list[ItemRef]] = field(default_factory=dict)
    where_clauses: dict[str, list[RangeCheck]] = field(default_factory=dict)
    leaf_ids: set[str] = field(default_factory=set)

    def group(self, name: str) -> ItemGroup | None:
        for group in self.groups:
            if group.name.upper() == name.upper():
                return group
        return None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _item_ref(elem: etree._Element) -> ItemRef:
    wheres = tuple(w.get("WhereClauseOID", "") for w in elem.iter(_def("WhereClauseRef")))
    return ItemRef(elem.get("ItemOID", ""), _int(elem.get("OrderNumber")), elem.sourceline,
                   elem.get(_def("HasNoData")) == "Yes", wheres)


def _codelist(elem: etree._Element) -> CodeList:
    entries = [*elem.findall(_odm("CodeListItem")), *elem.findall(_odm("EnumeratedItem"))]
    nci = next((a.get("Name") for a in elem.findall(_odm("Alias"))
                if a.get("Context") == "nci:ExtCodeID"), None)
    return CodeList(elem.get("OID", ""), elem.get("Name", ""),
                    frozenset(e.get("CodedValue", "") for e in entries), nci,
                    elem.find(_odm("ExternalCodeList")) is not None,
                    any(e.get(_def("ExtendedValue")) == "Yes" for e in entries))


def read_define(xml: bytes | str | Path, source: str | None = None) -> DefineDocument:
    """Parse ``xml`` safely and collect its ItemGroupDefs, ItemDefs, CodeLists, value lists."""
    name = source or ("<bytes>" if isinstance(xml, bytes) else str(xml))
    root = parse_xml_safely(xml, name).getroot()
    doc = DefineDocument(name)
    for mdv in root.iter(_odm("MetaDataVersion")):
        for elem in mdv.iter(_odm("ItemGroupDef")):
            group = ItemGroup(elem.get("OID", ""), elem.get("Name", ""), elem.sourceline,
                              elem.get(_def("HasNoData")) == "Yes",
                              elem.get(_def("ArchiveLocationID")))
            group.refs = [_item_ref(r) for r in elem.findall(_odm("ItemRef"))]
            doc.groups.append(group)
        for elem in mdv.iter(_odm("ItemDef")):
            cl_ref = elem.find(_odm("CodeListRef"))
            vl_ref = elem.find(_def("ValueListRef"))
            doc.items[elem.get("OID", "")] = ItemDef(
                elem.get("OID", ""), elem.get("Name", ""), elem.get("DataType", ""),
                _int(elem.get("Length")), elem.sourceline,
                cl_ref.get("CodeListOID") if cl_ref is not None else None,
                vl_ref.get("ValueListOID") if vl_ref is not None else None)
        for elem in mdv.iter(_odm("CodeList")):
            doc.codelists[elem.get("OID", "")] = _codelist(elem)
        for elem in mdv.iter(_def("ValueListDef")):
            doc.value_lists[elem.get("OID", "")] = [
                _item_ref(r) for r in elem.findall(_odm("ItemRef"))]
        for elem in mdv.iter(_def("WhereClauseDef")):
            doc.where_clauses[elem.get("OID", "")] = [
                RangeCheck(rc.get(_def("ItemOID"), ""), rc.get("Comparator", ""),
                           tuple(cv.text or "" for cv in rc.findall(_odm("CheckValue"))))
                for rc in elem.findall(_odm("RangeCheck"))]
        doc.leaf_ids.update(leaf.get("ID", "") for leaf in mdv.iter(_def("leaf")))
    return doc
