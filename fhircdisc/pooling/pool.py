"""Pool several SDTM studies into one harmonized set of datasets.

Steps, in order, each reported (see :mod:`fhircdisc.pooling.report`):

1. USUBJID made unique across studies (:mod:`.ids`);
2. CT submission values renamed between CT releases, other values outside the
   reference release reported (:mod:`.ct_versions`);
3. test codes reconciled through LOINC (:mod:`.testcodes`);
4. LB/VS standard results brought to one unit per test through UCUM (:mod:`.results`);
5. datasets stacked: every variable of every study kept (nulls where a study lacks it),
   a variable typed Num in one study and Char in another made one type.

Rows are never dropped or merged: each pooled dataset has exactly the rows of the
studies' datasets of that name, study after study, in input order.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from fhircdisc.converters.atomic import write_bytes_atomic
from fhircdisc.converters.datasets import FORMATS, is_missing, write_dataset
from fhircdisc.errors import ConversionError, InputError, OutputError
from fhircdisc.mappings.terminology import Terminology, load_builtin
from fhircdisc.pooling.ct_versions import REFERENCE_CT_VERSION, apply_renames, values_outside_ct
from fhircdisc.pooling.ids import apply_ids, harmonize_ids
from fhircdisc.pooling.inputs import PoolInput
from fhircdisc.pooling.report import (
    ID_MAP_NAME,
    REPORT_NAME,
    Conflict,
    PoolingReport,
    StudySummary,
    TypeChange,
    VariablesAdded,
)
from fhircdisc.pooling.results import format_number, harmonize_results
from fhircdisc.pooling.testcodes import reconcile_test_codes
from fhircdisc.pooling.units import UnitConverter
from fhircdisc.schemas import sdtmig
from fhircdisc.schemas.columns import ColumnMeta, DatasetMeta

DOMAIN_ORDER = ("DM", "EX", "AE", "LB", "VS", "TS")


@dataclass
class PooledStudy:
    """The pooled datasets (``domains``), their variable types and the pooling report."""

    domains: dict[str, pd.DataFrame]
    report: PoolingReport
    types: dict[str, dict[str, str]] = field(default_factory=dict)   # domain -> var -> type
    labels: dict[str, DatasetMeta] = field(default_factory=dict)     # input metadata, per domain

    def __getitem__(self, domain: str) -> pd.DataFrame:
        return self.domains[domain]

    @property
    def id_map(self) -> pd.DataFrame:
        """STUDYID, USUBJID_ORIGINAL, USUBJID_POOLED of every subject."""
        return pd.DataFrame([(r.STUDYID, r.USUBJID_ORIGINAL, r.USUBJID_POOLED)
                             for r in self.report.id_map],
                            columns=["STUDYID", "USUBJID_ORIGINAL", "USUBJID_POOLED"],
                            dtype=object)

    def meta(self, domain: str) -> DatasetMeta:
        """Writer metadata: SDTMIG labels (the studies' own where SDTMIG has none), pooled types."""
        frame = self.domains[domain]
        base = sdtmig.dataset_meta(domain, [str(c) for c in frame.columns])
        given = self.labels.get(domain)
        types = self.types.get(domain, {})
        columns = []
        for col in base.columns:
            label = col.label
            if sdtmig.variable(domain, col.name) is None and given is not None:
                own = given.column(col.name)
                label = own.label if own is not None and own.label else col.label
            kind = types.get(col.name) or col.type
            columns.append(ColumnMeta(col.name, label, "Num" if kind == "Num" else "Char"))
        label = base.label
        if label == domain and given is not None and given.label:
            label = given.label
        return DatasetMeta(domain, label, tuple(columns))

    def write(self, out_dir: str | Path, formats: Iterable[str] = ("xpt",), *,
              creation_datetime: str | None = None) -> list[Path]:
        """Write every pooled dataset in each format, the report and the USUBJID map.

        Everything is written to a temporary folder first and moved into ``out_dir`` only
        when all files succeeded: a failure leaves no partial output.
        """
        out = Path(out_dir)
        wanted = list(dict.fromkeys(formats))
        unknown = [f for f in wanted if f not in FORMATS]
        if unknown or not wanted:
            raise ConversionError(f"unknown dataset format(s) {', '.join(unknown) or 'none'}; "
                                  f"choose from {', '.join(FORMATS)}")
        stamp = creation_datetime or datetime.now(UTC).replace(microsecond=0).isoformat()
        fresh = not out.exists()
        parent = out.parent if fresh else out
        try:
            parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".fhircdisc-pool-", dir=parent))
        except OSError as exc:
            raise OutputError(f"cannot create output folder {out}: {exc.strerror}") from exc
        try:
            for domain, frame in self.domains.items():
                meta = self.meta(domain)
                for fmt in wanted:
                    write_dataset(frame, staging, meta, fmt, creation_datetime=stamp)
            write_bytes_atomic(staging / REPORT_NAME, orjson.dumps(
                self.report.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
            write_bytes_atomic(staging / ID_MAP_NAME, _id_map_csv(self.report))
            names = sorted(item.name for item in staging.iterdir())
            if fresh:
                os.replace(staging, out)        # one rename: the folder appears whole
            else:
                for name in names:
                    (staging / name).replace(out / name)
            return [out / name for name in names]
        except OSError as exc:
            raise OutputError(f"cannot write the pooled study to {out}: {exc.strerror}") \
                from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _id_map_csv(report: PoolingReport) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["STUDYID", "USUBJID_ORIGINAL", "USUBJID_POOLED"])
    for row in report.id_map:
        writer.writerow([row.STUDYID, row.USUBJID_ORIGINAL, row.USUBJID_POOLED])
    return buffer.getvalue().encode("utf-8")


# --------------------------------------------------------------------------------- pooling

def pool_studies(studies: Sequence[PoolInput], *, target_units: dict[str, str] | None = None,
                 terminology: Terminology | None = None) -> PooledStudy:
    """Pool two or more studies into one harmonized set of SDTM datasets.

    ``target_units`` fixes the standard unit of some tests (``{"GLUC": "mg/dL"}``);
    ``terminology`` replaces the built-in tables (e.g. with a user's rows added). The
    inputs are not changed. Raises :class:`InputError` for fewer than two studies or two
    studies with one STUDYID.
    """
    studies = list(studies)
    if len(studies) < 2:
        raise InputError(f"pooling needs at least two studies, got {len(studies)}")
    seen: dict[str, str] = {}
    for study in studies:
        if study.study_id in seen:
            raise InputError(f"two inputs are the same study {study.study_id!r}: "
                             f"{seen[study.study_id]} and {study.source}",
                             hint="pool distinct studies, each once")
        seen[study.study_id] = study.source
    terms = terminology if terminology is not None else load_builtin()
    work = [(s.study_id, {name: frame.copy() for name, frame in s.domains.items()})
            for s in studies]
    report = PoolingReport(ct_reference=REFERENCE_CT_VERSION)
    counts_in = {sid: {name: len(frame) for name, frame in frames.items()}
                 for sid, frames in work}

    # 1. subject identifiers
    ids = harmonize_ids(work)
    for sid, frames in work:
        apply_ids(frames, ids.mapping[sid])
    report.id_map, report.id_collisions = ids.rows, ids.collisions
    report.subjects_without_dm = ids.without_dm
    for dup in ids.duplicates:
        report.conflicts.append(Conflict(
            "duplicate-subject", dup.study, "DM", dup.usubjid,
            "rows " + ", ".join(str(r) for r in dup.rows), "USUBJID", dup.usubjid,
            f"USUBJID {dup.usubjid} has {len(dup.rows)} DM rows in study {dup.study}: "
            "one subject or several? Left as is"))

    # 2. controlled terminology: known renames (values outside CT are listed after step 3)
    for sid, frames in work:
        report.ct_renames.extend(apply_renames(sid, frames))

    # 3. test codes
    codes = reconcile_test_codes(work, terms)
    report.test_code_changes, report.shared_test_codes = codes.changes, codes.shared
    for lc in codes.conflicts:
        report.conflicts.append(Conflict(
            "test-code", lc.study, lc.domain, lc.usubjid, _record(lc.domain, lc.seq, lc.row),
            f"{lc.domain}TESTCD", lc.testcd,
            f"LOINC {lc.loinc} is coded as {' and '.join(lc.testcds)} across the pool and "
            "the terminology tables do not map it"))

    for study, (sid, frames) in zip(studies, work, strict=True):
        if study.ct_version.version != REFERENCE_CT_VERSION:
            report.ct_values_outside.extend(values_outside_ct(sid, frames))

    # 4. units of standard results
    converter = UnitConverter(terms)
    outcome = harmonize_results(work, converter, terms, target_units)
    report.target_units, report.unit_conversions = outcome.targets, outcome.conversions
    report.unconvertible = outcome.unconvertible
    for u in outcome.unconvertible:
        report.conflicts.append(Conflict(
            "unconvertible-result", u.study, u.domain, u.usubjid,
            _record(u.domain, u.seq, None), f"{u.domain}STRESU", u.unit,
            f"{u.test} in {u.unit or 'no unit'} not converted to {u.target_unit}: {u.message}"))

    # 5. stack
    domains: dict[str, pd.DataFrame] = {}
    types: dict[str, dict[str, str]] = {}
    labels: dict[str, DatasetMeta] = {}
    names = sorted({n for _, frames in work for n in frames},
                   key=lambda n: (DOMAIN_ORDER.index(n) if n in DOMAIN_ORDER else 99, n))
    for name in names:
        parts = [(sid, frames[name], study.meta(name))
                 for study, (sid, frames) in zip(studies, work, strict=True) if name in frames]
        domains[name], types[name] = _stack(name, parts, report)
        labels[name] = parts[0][2]
        report.row_counts[name] = {sid: counts_in[sid][name] for sid, _, _ in parts}
        report.row_counts[name]["POOLED"] = len(domains[name])
        if len(domains[name]) != sum(counts_in[sid][name] for sid, _, _ in parts):
            raise AssertionError(f"pooling changed the row count of {name}")  # never happens

    for study, (sid, frames) in zip(studies, work, strict=True):
        dm = frames.get("DM")
        report.studies.append(StudySummary(
            sid, study.source, study.kind, study.ct_version.version, study.ct_version.source,
            0 if dm is None else len(dm), dict(counts_in[sid])))
    return PooledStudy(domains, report, types, labels)


def _record(domain: str, seq: float | None, row: int | None) -> str | None:
    if seq is not None:
        return f"{domain}SEQ={seq:g}"
    return f"row {row}" if row is not None else None


# ------------------------------------------------------------------------------- stacking

def _kind_of(frame: pd.DataFrame, meta: DatasetMeta, name: str) -> str | None:
    """A study's type of a variable; None when the variable is empty there (no evidence)."""
    if frame[name].isna().all():
        return None
    col = meta.column(name)
    if col is not None:
        return col.type
    return "Num" if pd.api.types.is_numeric_dtype(frame[name]) else "Char"


def _stack(domain: str, parts: list[tuple[str, pd.DataFrame, DatasetMeta]],
           report: PoolingReport) -> tuple[pd.DataFrame, dict[str, str]]:
    union: list[str] = []
    for _, frame, _ in parts:
        union.extend(str(c) for c in frame.columns if str(c) not in union)
    columns = sdtmig.order_columns(domain, union)

    pooled_types: dict[str, str] = {}
    for name in columns:
        kinds = {sid: kind for sid, frame, meta in parts if name in frame
                 for kind in [_kind_of(frame, meta, name)] if kind is not None}
        spec = sdtmig.variable(domain, name)
        if len(set(kinds.values())) <= 1:
            declared = spec.type if spec is not None else _declared_type(name, parts)
            pooled_types[name] = next(iter(kinds.values()), declared)
            continue
        pooled_types[name] = _settle_type(domain, name, parts, kinds,
                                          spec.type if spec is not None else None, report)

    pieces = []
    for sid, frame, _ in parts:
        missing = [c for c in columns if c not in frame]
        if missing:
            report.variables_added.append(VariablesAdded(sid, domain, tuple(missing)))
        data = {}
        for name in columns:
            values = frame[name] if name in frame else pd.Series([None] * len(frame),
                                                                 index=frame.index, dtype=object)
            data[name] = _as_type(values, pooled_types[name])
        pieces.append(pd.DataFrame(data, index=frame.index))
    return pd.concat(pieces, ignore_index=True), pooled_types


def _declared_type(name: str, parts: list[tuple[str, pd.DataFrame, DatasetMeta]]) -> str:
    """The type the studies' metadata give a variable that is empty everywhere."""
    for _, frame, meta in parts:
        col = meta.column(name) if name in frame else None
        if col is not None:
            return col.type
    return "Char"


def _settle_type(domain: str, name: str, parts: list[tuple[str, pd.DataFrame, DatasetMeta]],
                 kinds: dict[str, str], spec_type: str | None, report: PoolingReport) -> str:
    """One type for a variable typed Num in some studies and Char in others.

    SDTMIG Char: Char (numbers written as text). SDTMIG Num: Num when every text value
    reads as a number. Not in SDTMIG: Num only when every text value is a number written
    as a number is (``12``, ``0.5``; not ``007``), so that nothing is lost; else Char.
    """
    if spec_type != "Char":
        texts = [str(v).strip() for sid, frame, _ in parts if kinds.get(sid) == "Char"
                 for v in frame[name] if not is_missing(v)]
        numbers = pd.to_numeric(pd.Series(texts, dtype=object), errors="coerce")
        if bool(numbers.notna().all()) and (spec_type == "Num" or all(
                format_number(float(n)) == t for n, t in zip(numbers, texts, strict=True))):
            reason = "SDTMIG type Num; every text value is a number" if spec_type == "Num" \
                else "every text value is a number as written (e.g. an untyped CSV)"
            report.type_changes.append(TypeChange(domain, name, "Num", kinds, reason))
            return "Num"
    report.type_changes.append(TypeChange(
        domain, name, "Char", kinds, "types differ; numbers kept as text so nothing is lost"))
    return "Char"


def _as_type(values: pd.Series, kind: str) -> pd.Series:
    if kind == "Num":
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            return values.astype("float64")
        text = values.map(lambda v: None if is_missing(v) else str(v).strip())
        return pd.to_numeric(text, errors="coerce").astype("float64")
    return pd.Series([_text(v) for v in values], index=values.index, dtype=object)


def _text(value: object) -> str | None:
    if is_missing(value):
        return None
    if isinstance(value, (float, np.floating)):
        return format_number(float(value))
    return str(value)
