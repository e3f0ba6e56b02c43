"""Build a Define-XML 2.1 document for a set of SDTM datasets, with odmlib's model objects.

Everything in the output comes from the datasets themselves (names, labels, column order,
types, lengths, the values of controlled variables) plus the SDTMIG 3.4 and CT 2025-03-28
tables of :mod:`fhircdisc.schemas`, and the conventions in
:mod:`fhircdisc.schemas.define.conventions`. The same input and ``creation_datetime``
give the same bytes: datasets are ordered by SDTM class then name, codelists by name,
odmlib emits attributes in the order the builder sets them, and the namespace
declarations are bound to the document rather than read from odmlib's process-wide
registry.

Codelists hold only the values present in the data, with their NCI C-codes. A value that
is not in an extensible CT codelist is listed with ``def:ExtendedValue="Yes"``; a value
not in a non-extensible codelist is left out (it is a CT error in the data, which
:func:`~fhircdisc.schemas.define.check.check_define_against_datasets` reports).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import odmlib.define_2_1.model as DEF
import odmlib.ns_registry as NS
import pandas as pd
from lxml import etree
from odmlib.exceptions import OdmlibError
from odmlib.oid_generator import create_oid_checker

from fhircdisc.converters.datasets import is_missing
from fhircdisc.errors import ConversionError
from fhircdisc.schemas import sdtmig
from fhircdisc.schemas.columns import DatasetMeta
from fhircdisc.schemas.ct import Codelist, codelist
from fhircdisc.schemas.define import conventions as conv
from fhircdisc.schemas.define.datatypes import ItemType, char_type, num_type
from fhircdisc.schemas.define.safe_xml import safe_parser
from fhircdisc.schemas.define.xsd import enumeration

DEFINE_VERSION = "2.1.0"
STD_IG = "STD.SDTMIG." + sdtmig.SDTMIG_VERSION
STD_CT = "STD.CT.SDTM." + sdtmig.CT_VERSION
NAMESPACES = {
    "namespaces": {"odm": "http://www.cdisc.org/ns/odm/v1.3",
                   "xlink": "http://www.w3.org/1999/xlink",
                   "def": "http://www.cdisc.org/ns/def/v2.1"},
    "default": {"odm": "http://www.cdisc.org/ns/odm/v1.3"},
}
_CLASS_ORDER = ("Trial Design", "Special-Purpose", "Interventions", "Events", "Findings",
                "Findings About", "Relationship")
_UNKNOWN_STRUCTURE = "Not described in the SDTMIG 3.4 tables of fhircdisc"


@dataclass
class _Column:
    dataset: str
    name: str
    label: str
    sdtm_type: str
    values: list[Any]
    item_type: ItemType
    spec: sdtmig.VariableSpec | None
    codelist: Codelist | None = None

    @property
    def oid(self) -> str:
        return f"IT.{self.dataset}.{self.name}"

    def present(self) -> list[Any]:
        return [v for v in self.values if not is_missing(v) and v != ""]


@dataclass
class _Dataset:
    name: str
    label: str
    columns: list[_Column] = field(default_factory=list)


# ----------------------------------------------------------------------------- reading


def _char_values(series: pd.Series) -> list[str | None]:
    return [None if is_missing(v) or str(v) == "" else str(v) for v in series.tolist()]


def _num_values(series: pd.Series) -> list[float]:
    return [float("nan") if is_missing(v) else float(v) for v in series.tolist()]


def _prepare(name: str, df: pd.DataFrame, meta: DatasetMeta) -> _Dataset:
    info = conv.dataset_info(name)
    label = meta.label or (info.label.replace("[domain name]", conv.parent_domain(name))
                           if info else name)
    ds = _Dataset(name, label)
    for col_name in [str(c) for c in df.columns]:
        col_meta = meta.column(col_name)
        spec = conv.variable_spec(name, col_name)
        if col_meta is not None:
            sdtm_type = col_meta.type
        else:
            sdtm_type = "Num" if pd.api.types.is_numeric_dtype(df[col_name]) else "Char"
        label = (col_meta.label if col_meta and col_meta.label else
                 spec.label if spec else col_name)
        if sdtm_type == "Num":
            values: list[Any] = _num_values(df[col_name])
            item_type = num_type(values)
        else:
            values = _char_values(df[col_name])
            item_type = char_type(col_name, values)
        column = _Column(name, col_name, label, sdtm_type, values, item_type, spec)
        if spec is not None and sdtm_type == "Char":
            column.codelist = codelist(spec.codelist)
        ds.columns.append(column)
    return ds


def _dataset_rank(name: str) -> tuple[int, str]:
    info = conv.dataset_info(name)
    cls = info.sdtm_class if info else ""
    return (_CLASS_ORDER.index(cls) if cls in _CLASS_ORDER else len(_CLASS_ORDER), name)


# ----------------------------------------------------------------------------- codelists


def _text(value: str) -> DEF.Description:
    return DEF.Description(TranslatedText=[DEF.TranslatedText(lang="en", _content=value)])


def _decode(value: str) -> DEF.Decode:
    return DEF.Decode(TranslatedText=[DEF.TranslatedText(lang="en", _content=value)])


def _nci(code: str) -> DEF.Alias:
    return DEF.Alias(Context="nci:ExtCodeID", Name=code)


def _codelist_def(cl: Codelist, used: set[str]) -> DEF.CodeList | None:
    """The CodeList of ``cl`` holding the ``used`` values (CT order, then extended values)."""
    in_ct = [t for t in cl.terms if t.submission_value in used]
    extended = sorted(v for v in used if cl.term(v) is None) if cl.extensible else []
    if not in_ct and not extended:
        return None
    decoded = any(t.preferred_term and t.preferred_term.casefold() != t.submission_value.casefold()
                  for t in in_ct)
    out = DEF.CodeList(OID=f"CL.{cl.code}", Name=cl.name, DataType="text",
                       StandardOID=STD_CT)
    order = 0
    for term in in_ct:
        order += 1
        if decoded:
            out.CodeListItem.append(DEF.CodeListItem(
                CodedValue=term.submission_value, OrderNumber=order,
                Decode=_decode(term.preferred_term or term.submission_value),
                Alias=[_nci(term.nci_code)]))
        else:
            out.EnumeratedItem.append(DEF.EnumeratedItem(
                CodedValue=term.submission_value, OrderNumber=order,
                Alias=[_nci(term.nci_code)]))
    for value in extended:
        order += 1
        if decoded:
            out.CodeListItem.append(DEF.CodeListItem(
                CodedValue=value, OrderNumber=order, ExtendedValue="Yes", Decode=_decode(value)))
        else:
            out.EnumeratedItem.append(DEF.EnumeratedItem(
                CodedValue=value, OrderNumber=order, ExtendedValue="Yes"))
    out.Alias = [_nci(cl.code)]
    return out


def _codelists(datasets: list[_Dataset]) -> dict[str, DEF.CodeList]:
    used: dict[str, tuple[Codelist, set[str]]] = {}
    for ds in datasets:
        for col in ds.columns:
            if col.codelist is not None:
                used.setdefault(col.codelist.code, (col.codelist, set()))[1].update(
                    conv.controlled_values(col.codelist.code, col.present()))
    out = {}
    for code, (cl, values) in used.items():
        cl_def = _codelist_def(cl, values)
        if cl_def is not None:
            out[code] = cl_def
    return out


# ----------------------------------------------------------------------------- items


def _origin(origin_type: str) -> DEF.Origin:
    source = conv.ORIGIN_SOURCE.get(origin_type)
    if source is None:
        return DEF.Origin(Type=origin_type)
    return DEF.Origin(Type=origin_type, Source=source)


def _item_def(oid: str, name: str, item_type: ItemType, label: str,
              origin_type: str) -> DEF.ItemDef:
    kwargs: dict[str, Any] = {"OID": oid, "Name": name, "DataType": item_type.data_type}
    if item_type.length is not None:
        kwargs["Length"] = item_type.length
    if item_type.significant_digits is not None:
        kwargs["SignificantDigits"] = item_type.significant_digits
    if len(name) <= 8 and name.isidentifier() and name.isascii():
        kwargs["SASFieldName"] = name
    item = DEF.ItemDef(**kwargs)
    item.Description = _text(label)
    item.Origin = [_origin(origin_type)]
    return item


def _group_def(ds: _Dataset) -> DEF.ItemGroupDef:
    info = conv.dataset_info(ds.name)
    kwargs: dict[str, Any] = {
        "OID": f"IG.{ds.name}", "Domain": conv.parent_domain(ds.name), "Name": ds.name,
        "Repeating": "Yes" if conv.is_repeating(ds.name) else "No",
        "IsReferenceData": "Yes" if conv.is_reference_data(ds.name) else "No",
    }
    if len(ds.name) <= 8 and ds.name.isidentifier():
        kwargs["SASDatasetName"] = ds.name
    kwargs.update({"Structure": info.structure if info else _UNKNOWN_STRUCTURE,
                   "Purpose": "Tabulation", "StandardOID": STD_IG,
                   "ArchiveLocationID": f"LF.{ds.name}"})
    group = DEF.ItemGroupDef(**kwargs)
    group.Description = _text(ds.label)
    present = {c.name: bool(c.present()) for c in ds.columns}
    keys = {name: seq for seq, name in
            enumerate(conv.key_variables(ds.name, present), start=1)}
    for order, col in enumerate(ds.columns, start=1):
        ref: dict[str, Any] = {"ItemOID": col.oid,
                               "Mandatory": "Yes" if col.spec and col.spec.core == "Req"
                               else "No",
                               "OrderNumber": order}
        if col.name in keys:
            ref["KeySequence"] = keys[col.name]
        if info is not None and col.spec is None:
            ref["IsNonStandard"] = "Yes"
        group.ItemRef.append(DEF.ItemRef(**ref))
    if info is not None:
        cls = conv.define_class(info.sdtm_class)
        if cls in enumeration("ItemGroupClass"):
            group.Class = DEF.Class(Name=cls)
    file_name = f"{ds.name.lower()}.xpt"
    group.leaf = DEF.leaf(ID=f"LF.{ds.name}", href=file_name, title=DEF.title(_content=file_name))
    return group


# ----------------------------------------------------------------------------- SUPP-- value lists


@dataclass
class _ValueLevel:
    value_list: DEF.ValueListDef
    where_clauses: list[DEF.WhereClauseDef]
    item_defs: list[DEF.ItemDef]


def _value_level(ds: _Dataset) -> _ValueLevel | None:
    """ValueListDef on QVAL of a SUPP-- dataset: one ItemDef and WhereClauseDef per QNAM."""
    cols = {c.name: c for c in ds.columns}
    if not {"QNAM", "QVAL"} <= cols.keys():
        return None
    qnams: dict[str, list[int]] = {}
    for row, qnam in enumerate(cols["QNAM"].values):
        if qnam:
            qnams.setdefault(qnam, []).append(row)
    if not qnams:
        return None
    vl = DEF.ValueListDef(OID=f"VL.{ds.name}.QVAL")
    where_clauses, item_defs = [], []
    for order, (qnam, rows) in enumerate(qnams.items(), start=1):
        wc_oid = f"WC.{ds.name}.QNAM.{qnam}"
        item_oid = f"IT.{ds.name}.QVAL.{qnam}"
        vl.ItemRef.append(DEF.ItemRef(ItemOID=item_oid, OrderNumber=order, Mandatory="Yes",
                                      WhereClauseRef=[DEF.WhereClauseRef(WhereClauseOID=wc_oid)]))
        where_clauses.append(DEF.WhereClauseDef(OID=wc_oid, RangeCheck=[DEF.RangeCheck(
            Comparator="EQ", SoftHard="Soft", ItemOID=f"IT.{ds.name}.QNAM",
            CheckValue=[DEF.CheckValue(_content=qnam)])]))
        qvals = [cols["QVAL"].values[r] for r in rows]
        labels = [cols["QLABEL"].values[r] for r in rows] if "QLABEL" in cols else []
        origins = [cols["QORIG"].values[r] for r in rows] if "QORIG" in cols else []
        label = next((v for v in labels if v), qnam)
        qorig = next((v for v in origins if v), "")
        origin = conv.QORIG_TO_ORIGIN.get(qorig.upper(), "Collected")
        item_defs.append(_item_def(item_oid, "QVAL", char_type("QVAL", qvals), label, origin))
    return _ValueLevel(vl, where_clauses, item_defs)


# ----------------------------------------------------------------------------- assembly


def _standards() -> DEF.Standards:
    return DEF.Standards(Standard=[
        DEF.Standard(OID=STD_IG, Name="SDTMIG", Type="IG", Version=sdtmig.SDTMIG_VERSION,
                     Status="Final"),
        DEF.Standard(OID=STD_CT, Name="CDISC/NCI", Type="CT", PublishingSet="SDTM",
                     Version=sdtmig.CT_VERSION, Status="Final"),
    ])


def _metadata_version(datasets: list[_Dataset], study_oid: str,
                      study_name: str) -> DEF.MetaDataVersion:
    mdv = DEF.MetaDataVersion(
        OID=f"MDV.{study_oid}.SDTMIG.{sdtmig.SDTMIG_VERSION}",
        Name=f"{study_name} SDTM data definitions",
        Description=f"Data definitions of the {study_name} SDTM datasets "
                    f"(SDTMIG {sdtmig.SDTMIG_VERSION}, CDISC CT {sdtmig.CT_VERSION})",
        DefineVersion=DEFINE_VERSION)
    mdv.Standards = _standards()
    codelists = _codelists(datasets)
    item_defs: list[DEF.ItemDef] = []
    for ds in datasets:
        mdv.ItemGroupDef.append(_group_def(ds))
        value_level = _value_level(ds) if conv.is_supp(ds.name) else None
        if value_level is not None:
            mdv.ValueListDef.append(value_level.value_list)
            mdv.WhereClauseDef.extend(value_level.where_clauses)
        for col in ds.columns:
            item = _item_def(col.oid, col.name, col.item_type, col.label,
                             conv.origin_type(ds.name, col.name))
            if col.codelist is not None and col.codelist.code in codelists:
                item.CodeListRef = DEF.CodeListRef(CodeListOID=codelists[col.codelist.code].OID)
            if value_level is not None and col.name == "QVAL":
                item.ValueListRef = DEF.ValueListRef(ValueListOID=value_level.value_list.OID)
            item_defs.append(item)
        if value_level is not None:
            item_defs.extend(value_level.item_defs)
    mdv.ItemDef = item_defs
    mdv.CodeList = sorted(codelists.values(), key=lambda c: (c.Name, c.OID))
    return mdv


def _check_references(odm: DEF.ODM) -> None:
    """odmlib's OID check: every OID unique, every OID reference defined (a bug guard)."""
    try:
        odm.verify_oids(create_oid_checker("define_2_1"))
    except OdmlibError as exc:
        raise ConversionError(f"internal error: define.xml OIDs are inconsistent: {exc}") from exc


def build_define(datasets: Mapping[str, tuple[pd.DataFrame, DatasetMeta]], *, study_oid: str,
                 study_name: str, creation_datetime: str) -> bytes:
    """Define-XML 2.1 for ``datasets`` ({NAME: (frame, meta)}, as ``read_sdtm_folder`` gives).

    ``creation_datetime`` is ODM/@CreationDateTime (``YYYY-MM-DDThh:mm:ss``, optionally
    with fraction and offset). Returns UTF-8 bytes, indented, ending in a newline.
    """
    if not datasets:
        raise ConversionError("cannot build define.xml: no datasets given")
    prepared = [_prepare(name.upper(), df, meta) for name, (df, meta) in datasets.items()]
    prepared.sort(key=lambda d: _dataset_rank(d.name))
    try:
        odm = DEF.ODM(FileOID=f"DEF.{study_oid}", FileType="Snapshot",
                      CreationDateTime=creation_datetime, ODMVersion="1.3.2",
                      Originator="fhircdisc", SourceSystem="fhircdisc", Context="Submission")
        study = DEF.Study(OID=study_oid, GlobalVariables=DEF.GlobalVariables(
            StudyName=DEF.StudyName(_content=study_name),
            StudyDescription=DEF.StudyDescription(_content=study_name),
            ProtocolName=DEF.ProtocolName(_content=study_name)))
        study.MetaDataVersion = _metadata_version(prepared, study_oid, study_name)
        odm.Study = study
        _check_references(odm)
        NS.bind_document_namespaces(odm, snapshot=NAMESPACES)
        text = odm.to_xml_string(xml_declaration=True)
    except OdmlibError as exc:
        raise ConversionError(f"cannot build define.xml: {exc}") from exc
    return _indent(text.encode("utf-8"))


def _indent(xml: bytes) -> bytes:
    """odmlib writes one line; indent it (two spaces) so that diffs and reviews are readable."""
    root = etree.fromstring(xml, safe_parser())
    etree.indent(root, space="  ")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8") + b"\n"
