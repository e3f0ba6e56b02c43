"""Check a define.xml against the datasets it describes; validate a define.xml as a whole.

Rules (``FC-DF-XSD`` is the XSD; the others are run by id, each reporting its run status):

========== ======== ===============================================================
rule       severity finding
========== ======== ===============================================================
FC-DF-0001 error    a dataset in the folder has no ItemGroupDef
FC-DF-0002 warning  an ItemGroupDef has no dataset (unless def:HasNoData="Yes")
FC-DF-0003 error    a variable of a dataset has no ItemRef/ItemDef in its ItemGroupDef
FC-DF-0004 warning  an ItemRef names a variable the dataset lacks (unless HasNoData)
FC-DF-0005 error    a reference (ItemOID, CodeListOID, ValueListOID, WhereClauseOID,
                    def:ArchiveLocationID) names nothing defined in the document
FC-DF-0006 error    declared Length is shorter than the longest value of a Char variable
                    (in UTF-8 bytes; in digits when the DataType is integer or float)
FC-DF-0007 error    DataType does not fit the data: a Num variable declared text or
                    ISO 8601, or a Char value that is not a number where the DataType
                    is integer/float (as value-level metadata on --ORRES may declare)
FC-DF-0008 error    DataType integer, but the data holds a non-integral number
FC-DF-0009 error    a value is not in the variable's non-extensible (or sponsor) CodeList
FC-DF-0010 warning  a value is not in the variable's extensible CT CodeList
FC-DF-0011 notice   the ItemRef order differs from the dataset's column order
========== ======== ===============================================================

Value-level metadata (def:ValueListDef with EQ/NE/IN/NOTIN where clauses, as used for
SUPP-- QVAL) is checked like a variable, on the rows its where clause selects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from fhircdisc.converters.datasets import is_missing
from fhircdisc.schemas.columns import DatasetMeta
from fhircdisc.schemas.ct import codelist as ct_codelist
from fhircdisc.schemas.define import conventions as conv
from fhircdisc.schemas.define.datatypes import NUMERIC_TYPES, digits, is_integral
from fhircdisc.schemas.define.document import CodeList, DefineDocument, ItemDef, read_define
from fhircdisc.schemas.define.xsd import XSD_RULE, validate_define_xsd
from fhircdisc.schemas.findings import Finding, RuleRun, Severity, ValidationResult

Datasets = Mapping[str, tuple[pd.DataFrame, DatasetMeta]]
KIND = "define"
_SUPPORTED_COMPARATORS = ("EQ", "NE", "IN", "NOTIN")


# ----------------------------------------------------------------------------- context


@dataclass
class _Variable:
    """One variable of one dataset (or the rows of it a value-level ItemDef covers)."""

    dataset: str
    name: str
    sdtm_type: str
    values: list[object]
    rows: list[int]  # 1-based row numbers of ``values``
    frame: pd.DataFrame
    item: ItemDef
    where: str = ""

    def present(self) -> Iterator[tuple[int, object]]:
        for row, value in zip(self.rows, self.values, strict=True):
            if not is_missing(value) and value != "":
                yield row, value

    @property
    def label(self) -> str:
        return f"{self.dataset}.{self.name}{self.where}"


def _sdtm_type(df: pd.DataFrame, meta: DatasetMeta, name: str) -> str:
    col = meta.column(name)
    if col is not None:
        return col.type
    return "Num" if pd.api.types.is_numeric_dtype(df[name]) else "Char"


def _row_ids(frame: pd.DataFrame, dataset: str, row: int) -> dict[str, Any]:
    """Row number, and USUBJID and --SEQ of that 1-based row when the dataset has them."""
    out: dict[str, Any] = {"row": row}
    if "USUBJID" in frame.columns:
        value = frame["USUBJID"].iloc[row - 1]
        out["usubjid"] = None if is_missing(value) else str(value)
    seq = f"{conv.parent_domain(dataset)}SEQ"
    if seq in frame.columns and not conv.is_supp(dataset):
        value = frame[seq].iloc[row - 1]
        out["seq"] = None if is_missing(value) else float(value)
    return out


class _Context:
    """The define.xml and the datasets, matched up once for every rule."""

    def __init__(self, doc: DefineDocument, datasets: Datasets) -> None:
        self.doc = doc
        self.datasets = {name.upper(): pair for name, pair in datasets.items()}
        self._variables: list[_Variable] | None = None

    def matched(self) -> Iterator[tuple[str, pd.DataFrame, DatasetMeta]]:
        for name in sorted(self.datasets):
            if self.doc.group(name) is not None:
                df, meta = self.datasets[name]
                yield name, df, meta

    def described(self, name: str) -> dict[str, ItemDef]:
        """Variable name -> ItemDef for the ItemRefs of dataset ``name``."""
        group = self.doc.group(name)
        out: dict[str, ItemDef] = {}
        for ref in group.refs if group else []:
            item = self.doc.items.get(ref.item_oid)
            if item is not None:
                out.setdefault(item.name.upper(), item)
        return out

    def variables(self) -> list[_Variable]:
        """Every described variable, then every value-level item on the rows it selects."""
        if self._variables is None:
            self._variables = list(self._all_variables())
        return self._variables

    def _all_variables(self) -> Iterator[_Variable]:
        for name, df, meta in self.matched():
            items = self.described(name)
            for col in [str(c) for c in df.columns]:
                item = items.get(col.upper())
                if item is None:
                    continue
                rows = list(range(1, len(df) + 1))
                var = _Variable(name, col, _sdtm_type(df, meta, col), df[col].tolist(), rows,
                                df, item)
                yield var
                if item.value_list_oid:
                    yield from self._value_level(var, items)

    def _value_level(self, var: _Variable, items: dict[str, ItemDef]) -> Iterator[_Variable]:
        by_oid = {item.oid: name for name, item in items.items()}
        for ref in self.doc.value_lists.get(var.item.value_list_oid or "", []):
            item = self.doc.items.get(ref.item_oid)
            selected = self._select(var.frame, ref.where_oids, by_oid)
            if item is None or selected is None:
                continue
            where = " where " + " or ".join(ref.where_oids)
            yield _Variable(var.dataset, var.name, var.sdtm_type,
                            [var.values[r] for r in selected], [r + 1 for r in selected],
                            var.frame, item, where)

    def _select(self, df: pd.DataFrame, where_oids: tuple[str, ...],
                columns: dict[str, str]) -> list[int] | None:
        """0-based rows any of the where clauses selects; None when one cannot be evaluated."""
        chosen: set[int] = set()
        for oid in where_oids:
            checks = self.doc.where_clauses.get(oid)
            if not checks:
                return None
            mask = pd.Series(True, index=df.index)
            for check in checks:
                col = columns.get(check.item_oid)
                if col is None or col not in df.columns \
                        or check.comparator not in _SUPPORTED_COMPARATORS:
                    return None
                if pd.api.types.is_numeric_dtype(df[col]):
                    numbers = [float(v) for v in check.values if conv.is_number(v)]
                    hit = df[col].isin(numbers)
                else:
                    hit = df[col].map(lambda v: None if is_missing(v) else str(v)).isin(
                        check.values)
                mask &= ~hit if check.comparator in ("NE", "NOTIN") else hit
            chosen.update(i for i, ok in enumerate(mask.tolist()) if ok)
        return sorted(chosen)


# ----------------------------------------------------------------------------- rules

Check = Callable[[_Context], Iterator[Finding]]


@dataclass(frozen=True)
class Rule:
    rule_id: str
    description: str
    check: Check


def _finding(rule_id: str, severity: Severity, ctx: _Context, dataset: str, message: str, *,
             row: int | None = None, usubjid: str | None = None, seq: float | None = None,
             variable: str | None = None, value: str | None = None) -> Finding:
    return Finding(rule_id=rule_id, severity=severity, dataset=dataset, message=message,
                   row=row, usubjid=usubjid, seq=seq, variable=variable, value=value,
                   source=ctx.doc.source)


def _undescribed_datasets(ctx: _Context) -> Iterator[Finding]:
    for name in sorted(ctx.datasets):
        if ctx.doc.group(name) is None:
            yield _finding("FC-DF-0001", "error", ctx, name,
                           f"dataset {name} has no ItemGroupDef in define.xml")


def _groups_without_data(ctx: _Context) -> Iterator[Finding]:
    for group in ctx.doc.groups:
        if group.name.upper() not in ctx.datasets and not group.has_no_data:
            yield _finding("FC-DF-0002", "warning", ctx, group.name,
                           f"ItemGroupDef {group.oid} ({group.name}) describes a dataset that "
                           "is not in the folder (and is not marked def:HasNoData)",
                           row=group.line)


def _undescribed_variables(ctx: _Context) -> Iterator[Finding]:
    for name, df, _meta in ctx.matched():
        items = ctx.described(name)
        for col in [str(c) for c in df.columns]:
            if col.upper() not in items:
                yield _finding("FC-DF-0003", "error", ctx, name,
                               f"variable {name}.{col} has no ItemRef/ItemDef in define.xml",
                               variable=col)


def _variables_without_data(ctx: _Context) -> Iterator[Finding]:
    for name, df, _meta in ctx.matched():
        group = ctx.doc.group(name)
        columns = {str(c).upper() for c in df.columns}
        for ref in group.refs if group else []:
            item = ctx.doc.items.get(ref.item_oid)
            if item is not None and item.name.upper() not in columns and not ref.has_no_data:
                yield _finding("FC-DF-0004", "warning", ctx, name,
                               f"define.xml describes {name}.{item.name} ({item.oid}), "
                               "which the dataset does not have", variable=item.name,
                               row=ref.line)


def _measure(var: _Variable, value: str) -> int | None:
    """A Char value's length as its ItemDef counts it: digits for numeric DataTypes
    (None when the text is not a number, which FC-DF-0007 reports), else UTF-8 bytes."""
    if var.item.data_type in NUMERIC_TYPES:
        return digits(value)[0] if conv.is_number(value) else None
    return len(value.encode("utf-8"))


def _char_lengths(ctx: _Context) -> Iterator[Finding]:
    for var in ctx.variables():
        if var.sdtm_type != "Char" or var.item.length is None:
            continue
        sizes = ((_measure(var, str(v)), row, str(v)) for row, v in var.present())
        longest = max(((n, row, v) for n, row, v in sizes if n is not None), default=None)
        if longest and longest[0] > var.item.length:
            size, row, value = longest
            unit = "digits" if var.item.data_type in NUMERIC_TYPES else "bytes"
            yield _finding("FC-DF-0006", "error", ctx, var.dataset,
                           f"{var.label}: define.xml Length {var.item.length} "
                           f"({var.item.oid}) is shorter than the longest value "
                           f"({size} {unit})", variable=var.name, value=value,
                           **_row_ids(var.frame, var.dataset, row))


def _data_types(ctx: _Context) -> Iterator[Finding]:
    for var in ctx.variables():
        declared = var.item.data_type
        numeric = declared in NUMERIC_TYPES
        if var.sdtm_type == "Num" and not numeric:
            yield _finding("FC-DF-0007", "error", ctx, var.dataset,
                           f"{var.label} is a Num variable but define.xml declares DataType "
                           f"{declared!r} ({var.item.oid})", variable=var.name, value=declared)
        elif var.sdtm_type == "Char" and numeric:
            seen: set[str] = set()
            for row, value in var.present():
                text = str(value)
                if text not in seen and not conv.is_number(text):
                    seen.add(text)
                    yield _finding("FC-DF-0007", "error", ctx, var.dataset,
                                   f"{var.label}: define.xml declares DataType {declared!r} "
                                   f"({var.item.oid}) but the value is not a number",
                                   variable=var.name, value=text,
                                   **_row_ids(var.frame, var.dataset, row))


def _integers(ctx: _Context) -> Iterator[Finding]:
    for var in ctx.variables():
        if var.item.data_type != "integer":
            continue
        bad = [(row, value) for row, value in var.present()
               if (var.sdtm_type == "Num" and not is_integral(float(value)))  # type: ignore[arg-type]
               or (var.sdtm_type == "Char" and conv.is_number(str(value))
                   and not is_integral(float(str(value))))]
        if bad:
            row, value = bad[0]
            yield _finding("FC-DF-0008", "error", ctx, var.dataset,
                           f"{var.label}: define.xml declares DataType 'integer' "
                           f"({var.item.oid}) but {len(bad)} value(s) are not whole numbers, "
                           f"e.g. {value!r}", variable=var.name, value=str(value),
                           **_row_ids(var.frame, var.dataset, row))


def _extensible(cl: CodeList) -> bool:
    """A CT codelist is extensible per CT (unknown CT codelists count as extensible);
    a sponsor codelist (no NCI code) is not, unless it lists extended values."""
    if cl.nci_code:
        known = ct_codelist(cl.nci_code)
        return known.extensible if known else True
    return cl.has_extended_values


def _codelist_values(ctx: _Context, want_extensible: bool) -> Iterator[Finding]:
    rule_id = "FC-DF-0010" if want_extensible else "FC-DF-0009"
    severity: Severity = "warning" if want_extensible else "error"
    for var in ctx.variables():
        cl = ctx.doc.codelists.get(var.item.codelist_oid or "")
        if cl is None or cl.external or _extensible(cl) != want_extensible:
            continue
        outside: dict[str, list[int]] = {}
        for row, value in var.present():
            text = str(value) if var.sdtm_type == "Char" else _number_text(value)
            if text not in cl.values:
                outside.setdefault(text, []).append(row)
        if cl.nci_code:
            allowed = set(conv.controlled_values(cl.nci_code, list(outside)))
            outside = {v: r for v, r in outside.items() if v in allowed}
        kind = "extensible" if want_extensible else "non-extensible"
        for value, rows in outside.items():
            yield _finding(rule_id, severity, ctx, var.dataset,
                           f"{var.label} value {value!r} ({len(rows)} row(s)) is not in "
                           f"{kind} CodeList {cl.oid} ({cl.name})", variable=var.name,
                           value=value, **_row_ids(var.frame, var.dataset, rows[0]))


def _number_text(value: object) -> str:
    number = float(value)  # type: ignore[arg-type]
    return str(int(number)) if number.is_integer() else repr(number)


def _column_order(ctx: _Context) -> Iterator[Finding]:
    for name, df, _meta in ctx.matched():
        group = ctx.doc.group(name)
        assert group is not None
        refs = sorted(enumerate(group.refs),
                      key=lambda p: (p[1].order if p[1].order is not None else 10**9, p[0]))
        columns = [str(c).upper() for c in df.columns]
        declared = [n for n in (ctx.doc.items[r.item_oid].name.upper() for _, r in refs
                                if r.item_oid in ctx.doc.items) if n in columns]
        actual = [c for c in columns if c in set(declared)]
        if declared != actual:
            pos = next(i for i, (a, b) in enumerate(zip(declared, actual, strict=True)) if a != b)
            yield _finding("FC-DF-0011", "notice", ctx, name,
                           f"{name}: ItemRef order differs from the dataset's column order "
                           f"(position {pos + 1}: define.xml has {declared[pos]}, the dataset "
                           f"has {actual[pos]})", variable=actual[pos], row=group.line)


def _references(ctx: _Context) -> Iterator[Finding]:
    doc = ctx.doc
    refs: list[tuple[str, str, str, set[str]]] = []  # (dataset, kind, oid, defined)
    for group in doc.groups:
        refs += [(group.name, "ItemOID", r.item_oid, set(doc.items)) for r in group.refs]
        if group.archive_id:
            refs.append((group.name, "def:ArchiveLocationID", group.archive_id, doc.leaf_ids))
    for item in doc.items.values():
        if item.codelist_oid:
            refs.append(("", "CodeListOID", item.codelist_oid, set(doc.codelists)))
        if item.value_list_oid:
            refs.append(("", "ValueListOID", item.value_list_oid, set(doc.value_lists)))
    for vl_oid, vl_refs in doc.value_lists.items():
        for ref in vl_refs:
            refs.append((vl_oid, "ItemOID", ref.item_oid, set(doc.items)))
            refs += [(vl_oid, "WhereClauseOID", w, set(doc.where_clauses))
                     for w in ref.where_oids]
    for wc_oid, checks in doc.where_clauses.items():
        refs += [(wc_oid, "def:ItemOID", c.item_oid, set(doc.items)) for c in checks]
    for where, kind, oid, defined in refs:
        if oid not in defined:
            yield _finding("FC-DF-0005", "error", ctx, where or "define.xml",
                           f"{kind}={oid!r}{' in ' + where if where else ''} refers to "
                           "nothing defined in define.xml", value=oid)


DATA_RULES: tuple[Rule, ...] = (
    Rule("FC-DF-0001", "every dataset has an ItemGroupDef", _undescribed_datasets),
    Rule("FC-DF-0002", "every ItemGroupDef has a dataset", _groups_without_data),
    Rule("FC-DF-0003", "every variable has an ItemRef/ItemDef", _undescribed_variables),
    Rule("FC-DF-0004", "every described variable is in the dataset", _variables_without_data),
    Rule("FC-DF-0006", "Length covers the longest Char value", _char_lengths),
    Rule("FC-DF-0007", "DataType fits Num/Char", _data_types),
    Rule("FC-DF-0008", "integer DataType holds whole numbers", _integers),
    Rule("FC-DF-0009", "values in non-extensible CodeLists",
         lambda ctx: _codelist_values(ctx, want_extensible=False)),
    Rule("FC-DF-0010", "values in extensible CodeLists",
         lambda ctx: _codelist_values(ctx, want_extensible=True)),
    Rule("FC-DF-0011", "ItemRef order is the column order", _column_order),
)
REFERENCE_RULE = Rule("FC-DF-0005", "every OID reference resolves", _references)


def _run(rules: tuple[Rule, ...], ctx: _Context, result: ValidationResult) -> None:
    for rule in rules:
        try:
            found = list(rule.check(ctx))
        except Exception as exc:  # a rule that crashes is reported, never counted as passed
            result.runs.append(RuleRun(rule.rule_id, "error",
                                       reason=f"{type(exc).__name__}: {exc}"))
            continue
        result.findings.extend(found)
        result.runs.append(RuleRun(rule.rule_id, "issues" if found else "success", len(found)))


# ----------------------------------------------------------------------------- public API


def check_define_against_datasets(define_xml_path: Path | str | bytes,
                                  datasets: Datasets) -> ValidationResult:
    """Check that ``define_xml_path`` describes ``datasets`` ({NAME: (frame, meta)}) truly.

    Runs rules FC-DF-0001..0004 and 0006..0011 (see the module docstring). Raises
    :class:`~fhircdisc.errors.InputError` when the define.xml cannot be read safely.
    """
    doc = read_define(define_xml_path)
    result = ValidationResult(target=doc.source, kind=KIND,
                              metadata={"datasets": sorted(n.upper() for n in datasets)})
    _run(DATA_RULES, _Context(doc, datasets), result)
    return result


def validate_define(path: Path | str | bytes,
                    datasets: Datasets | None = None) -> ValidationResult:
    """XSD validation (``FC-DF-XSD``), OID references (``FC-DF-0005``) and, when
    ``datasets`` are given, the consistency checks of :func:`check_define_against_datasets`.
    """
    source = "<bytes>" if isinstance(path, bytes) else str(path)
    xsd_findings = validate_define_xsd(path, source)
    doc = read_define(path, source)
    result = ValidationResult(target=source, kind=KIND)
    result.findings.extend(xsd_findings)
    result.runs.append(RuleRun(XSD_RULE, "issues" if xsd_findings else "success",
                               len(xsd_findings)))
    ctx = _Context(doc, datasets or {})
    _run((REFERENCE_RULE,), ctx, result)
    if datasets is None:
        result.runs += [RuleRun(r.rule_id, "skipped", reason="no datasets given")
                        for r in DATA_RULES]
    else:
        result.metadata["datasets"] = sorted(n.upper() for n in datasets)
        _run(DATA_RULES, ctx, result)
    return result
