"""SDTM -> FHIR: the domain specs read backwards, checked by reading the result forwards.

DM -> Patient + ResearchSubject (+ the site-level and top-level ResearchStudy, whose
arms come from DM and whose summary comes from TS), EX -> MedicationAdministration,
LB -> Observation (laboratory), VS -> Observation (vital-signs; systolic and diastolic
blood pressure taken at the same time become one panel with two components),
AE -> AdverseEvent, TS -> ResearchStudy. Visits become Encounters.

Every mapped variable is written by the inverse of its spec's algorithm
(``mappings/inverse.py``). The resources are then converted back to SDTM in memory;
any variable that does not come back identical (no FHIR home, a partial time, a term
outside the tables, a standardized result) is added to its resource as an
``sdtm-variable`` extension, so the round trip is lossless by construction, and the
report lists which variables needed it and how often.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import re
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pandas.api.extensions import ExtensionDtype

from fhircdisc.converters.datasets import dataset_files, read_dataset
from fhircdisc.converters.fhir_reader import Origin, SourceResource
from fhircdisc.converters.fhir_to_sdtm import SPECS, convert_resources
from fhircdisc.errors import InputError
from fhircdisc.mappings import terminology as terminology_module
from fhircdisc.mappings.dates import dtc_to_fhir
from fhircdisc.mappings.extensions import (
    SITEID_SYSTEM,
    STUDYID_SYSTEM,
    SUBJID_SYSTEM,
    USUBJID_SYSTEM,
    VISITNUM_SYSTEM,
    record_extension,
    variable_extension,
)
from fhircdisc.mappings.inverse import WriteContext, missing, write_row
from fhircdisc.mappings.terminology import Terminology
from fhircdisc.schemas import sdtmig
from fhircdisc.study import Study

DOMAINS = ("DM", "EX", "LB", "VS", "AE", "TS")
REPORT_NAME = "fhir-report.json"
_REQUIRED = {"EX": "EXSTDTC", "LB": "LBTESTCD", "VS": "VSTESTCD", "AE": "AETERM"}
_RESOURCE = {"EX": "MedicationAdministration", "LB": "Observation", "VS": "Observation",
             "AE": "AdverseEvent"}
SUBJECT_DOMAINS = ("EX", "LB", "VS", "AE")
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
LOINC = "http://loinc.org"
BP_PANEL = ("85354-9", "Blood pressure panel with all children optional")
_ID_SAFE = re.compile(r"[^A-Za-z0-9\-.]")
_NAMESPACE = uuid.UUID("6f1c4a52-2f55-4d43-9a39-9b0f6e8a1c11")


@dataclass(frozen=True)
class RejectedRow:
    """An SDTM row (or whole dataset) that could not become FHIR, and why."""

    dataset: str
    file: str
    row: int | None
    variable: str | None
    value: str | None
    message: str


@dataclass
class FhirReport:
    """Counts and problems of one SDTM -> FHIR conversion."""

    fhir_version: str = "R4"
    rows_in: dict[str, int] = field(default_factory=dict)
    rows_converted: dict[str, int] = field(default_factory=dict)
    resources_out: Counter[str] = field(default_factory=Counter)
    rejected: list[RejectedRow] = field(default_factory=list)
    carried: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    skipped_datasets: dict[str, str] = field(default_factory=dict)

    def reconciles(self) -> bool:
        """Every row read became part of a resource or is listed as rejected."""
        rejected = Counter(r.dataset for r in self.rejected if r.row is not None)
        whole = {r.dataset for r in self.rejected if r.row is None}
        return all(self.rows_in[d] == self.rows_converted.get(d, 0) + rejected[d]
                   or (d in whole and self.rows_converted.get(d, 0) == 0)
                   for d in self.rows_in)

    def to_dict(self) -> dict[str, Any]:
        return {
            "fhir_version": self.fhir_version,
            "rows_in": self.rows_in,
            "rows_converted": self.rows_converted,
            "resources_out": dict(sorted(self.resources_out.items())),
            "reconciles": self.reconciles(),
            "rejected": [r.__dict__ for r in self.rejected],
            "carried_in_extension": {d: dict(sorted(c.items()))
                                     for d, c in sorted(self.carried.items())},
            "skipped_datasets": self.skipped_datasets,
        }


@dataclass
class FhirOutput:
    """The resources of one conversion, in output order, and its report."""

    resources: list[dict[str, Any]]
    report: FhirReport

    @property
    def version(self) -> str:
        return self.report.fhir_version


def fhir_id(*parts: object) -> str:
    """A FHIR id from identifying parts: readable when it fits, else a stable hash."""
    raw = [str(p) for p in parts if p is not None and p != ""]
    text = "-".join(_ID_SAFE.sub("-", p) for p in raw)
    if len(text) <= 64 and not any(_ID_SAFE.search(p) for p in raw):
        return text
    # characters an id cannot hold, or too long: a hash of the exact parts keeps ids unique
    digest = hashlib.sha1("\x1f".join(raw).encode()).hexdigest()[:16]
    return text[:47] + "-" + digest


def full_url(resource: dict[str, Any]) -> str:
    return "urn:uuid:" + str(uuid.uuid5(_NAMESPACE, f"{resource['resourceType']}/{resource['id']}"))


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows as dicts, values as ``frame.to_dict("records")`` gives them."""
    keys = [str(k) for k in frame.columns]
    columns = []
    for position in range(frame.shape[1]):
        series = frame.iloc[:, position]
        values = series.tolist()                 # numbers as Python numbers
        if (series.dtype == object or isinstance(series.dtype, ExtensionDtype)) and not all(
                v is None or type(v) in (str, float) for v in values):
            # other objects (numpy scalars, pd.NA): as to_dict boxes them
            return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]
        columns.append(values)
    return [dict(zip(keys, row, strict=True)) for row in zip(*columns, strict=True)]


def _values(frame: pd.DataFrame, column: str) -> list[Any]:
    """A column's values as ``row.get(column)`` gives them row by row (``None`` if absent)."""
    return frame[column].tolist() if column in frame else [None] * len(frame)


def _text(value: Any) -> str | None:
    return None if missing(value) else str(value)


def _seq_text(value: Any, index: int) -> str:
    if isinstance(value, float) and not math.isnan(value):
        return str(int(value)) if value.is_integer() else str(value)
    return str(index + 1)


# ----------------------------------------------------------------------- reading SDTM

def load_sdtm(folder: str | Path) -> dict[str, tuple[pd.DataFrame, str]]:
    """The datasets we convert from an SDTM folder: name -> (frame, file)."""
    files = dataset_files(folder)
    if not files:
        raise InputError("folder holds no SDTM datasets (.xpt, .json, .ndjson, .csv)",
                         str(folder))
    out = {}
    for name, path in files.items():
        if name not in DOMAINS:
            continue
        frame, _ = read_dataset(path)
        if path.suffix.lower() == ".csv":
            frame = _type_csv(name, frame, path)
        out[name] = (frame, str(path))
    return out


def _type_csv(domain: str, frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """CSV carries no types: SDTMIG Num variables are converted, with located errors."""
    for column in frame.columns:
        spec = sdtmig.variable(domain, column)
        if spec is None or spec.type != "Num":
            continue
        numbers = pd.to_numeric(frame[column], errors="coerce")
        # text that is no number, or one no dataset can hold ("inf", "1e400")
        bad = frame[column].notna() & (numbers.isna() | numbers.abs().eq(math.inf))
        if bad.any():
            row = int(str(bad.idxmax()))
            raise InputError(f"{column} is numeric in SDTMIG, got {frame[column][row]!r}",
                             str(path), f"row {row + 1}, variable {column}")
        frame[column] = numbers.astype("float64")
    return frame


# ----------------------------------------------------------------------- building


def encounter_resource(usubjid: str, visitnum: float, visit: Any, patient: str,
                       version: str) -> dict[str, Any]:
    """The Encounter of one subject's visit (``patient``: the ``Patient/id`` reference)."""
    number = _seq_text(visitnum, 0)
    encounter: dict[str, Any] = {
        "resourceType": "Encounter", "id": fhir_id("enc", usubjid, number),
        "identifier": [{"system": VISITNUM_SYSTEM, "value": number}],
        "subject": {"reference": patient},
    }
    if version == "R5":
        encounter.update(status="completed", **{"class": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "AMB"}]}]})
    else:
        encounter.update(status="finished", **{"class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "AMB"}})
    if not missing(visit):
        encounter["type"] = [{"text": str(visit)}]
    return encounter


def finish_resource(resource: dict[str, Any], version: str) -> None:
    """What a resource needs beyond its rows: contained Medication, required parts."""
    medication = resource.pop("_medication", None)
    if resource["resourceType"] == "MedicationAdministration":
        medication = medication or {"code": {"text": "UNKNOWN"}}
        resource["contained"] = [{"resourceType": "Medication", "id": "med", **medication}]
        if version == "R5":
            resource["medication"] = {"reference": {"reference": "#med"}}
            resource.setdefault("occurencePeriod", {})
        else:
            resource["medicationReference"] = {"reference": "#med"}
            resource.setdefault("effectivePeriod", {})
    if resource["resourceType"] == "AdverseEvent":
        for entity in resource.get("suspectEntity") or []:
            if version == "R5":
                entity.setdefault("instanceCodeableConcept", {"text": "study treatment"})
            else:
                entity.setdefault("instance", {"display": "study treatment"})
    if resource["resourceType"] == "Observation" and not resource.get("code"):
        resource["code"] = {"text": "UNKNOWN"}


class _Builder:
    def __init__(self, datasets: dict[str, tuple[pd.DataFrame, str]], terms: Terminology,
                 version: str, report: FhirReport) -> None:
        self.datasets = datasets
        self.records = {name: _records(frame) for name, (frame, _) in datasets.items()}
        self.terms = terms
        self.version = version
        self.ctx = WriteContext(terms, version)
        self.report = report
        self.resources: list[dict[str, Any]] = []
        # (resource type/id, component index or None) -> (domain, row index)
        self.origin: dict[tuple[str, int | None], tuple[str, int]] = {}
        self.patients: dict[str, str] = {}
        self.encounters: dict[tuple[str, float], str] = {}
        self.studies: dict[str, str] = {}

    # -- study level ------------------------------------------------------------------
    def study_resources(self) -> None:
        dm = self.datasets["DM"][0]
        ts = self.datasets.get("TS", (pd.DataFrame(), ""))[0]
        studyids = sorted({str(v) for v in dm.get("STUDYID", pd.Series(dtype=object)).dropna()}
                          | {str(v) for v in ts.get("STUDYID", pd.Series(dtype=object)).dropna()})
        for studyid in studyids:
            study: dict[str, Any] = {
                "resourceType": "ResearchStudy", "id": fhir_id("study", studyid),
                "identifier": [{"system": STUDYID_SYSTEM, "value": studyid}],
                "status": "active",
            }
            arms = dm[dm["STUDYID"] == studyid] if "STUDYID" in dm else dm
            pairs: dict[str, str] = {}
            columns = [_values(arms, c) for c in ("ARMCD", "ARM", "ACTARMCD", "ACTARM")]
            for armcd, arm, actarmcd, actarm in zip(*columns, strict=True):
                for code, text in ((armcd, arm), (actarmcd, actarm)):
                    if not missing(code):
                        pairs.setdefault(str(code), _text(text) or str(code))
            if pairs:
                key = "comparisonGroup" if self.version == "R5" else "arm"
                study[key] = [({"linkId": fhir_id(cd), "name": cd} if self.version == "R5"
                               else {"name": cd}) | {"description": desc}
                              for cd, desc in sorted(pairs.items())]
            ts_rows = ts[ts["STUDYID"] == studyid] if "STUDYID" in ts else ts
            self._trial_summary(study, ts_rows)
            self._add(study, None, None)
            self.studies[studyid] = f"ResearchStudy/{study['id']}"
        sites = dm[["STUDYID", "SITEID"]].dropna().drop_duplicates() \
            if {"STUDYID", "SITEID"} <= set(dm.columns) else pd.DataFrame()
        for _, row in sites.iterrows():
            site = {"resourceType": "ResearchStudy",
                    "id": fhir_id("site", row["STUDYID"], row["SITEID"]),
                    "identifier": [{"system": SITEID_SYSTEM, "value": str(row["SITEID"])}],
                    "status": "active", "title": f"{row['STUDYID']} site {row['SITEID']}",
                    "partOf": [{"reference": self.studies[str(row["STUDYID"])]}]}
            self._add(site, None, None)
            self.studies[f"{row['STUDYID']}|{row['SITEID']}"] = f"ResearchStudy/{site['id']}"

    def _trial_summary(self, study: dict[str, Any], ts: pd.DataFrame) -> None:
        if ts.empty:
            return
        spec = SPECS["TS"]
        values: dict[str, Any] = {}
        for _, row in ts.iterrows():
            values.setdefault(str(row.get("TSPARMCD")), row.get("TSVAL"))
        write_row(spec, values, study, self.ctx)
        for _, row in ts.iterrows():
            if row.get("TSPARMCD") == "REGID" and not missing(row.get("TSVAL")):
                study.setdefault("identifier", []).append(
                    {"type": {"text": "REGID"}, "value": str(row["TSVAL"])})
        columns = [c for c in ts.columns if c not in ("STUDYID", "DOMAIN")]
        study.setdefault("extension", []).extend(
            record_extension((c, row[c]) for c in columns) for _, row in ts.iterrows())
        self.report.rows_converted["TS"] = len(ts)

    # -- subjects ----------------------------------------------------------------------
    def subjects(self) -> None:
        dm, dm_file = self.datasets["DM"]
        if "USUBJID" not in dm:
            raise InputError("DM has no USUBJID", dm_file, "variable USUBJID")
        seen: set[str] = set()
        converted = 0
        for index, row in enumerate(self.records["DM"]):
            usubjid = _text(row.get("USUBJID"))
            if usubjid is None or usubjid in seen:
                self._reject("DM", dm_file, index, "USUBJID", usubjid,
                             "USUBJID missing" if usubjid is None else "USUBJID repeated in DM")
                continue
            seen.add(usubjid)
            patient = {"resourceType": "Patient", "id": fhir_id("pat", usubjid),
                       "identifier": [{"system": USUBJID_SYSTEM, "value": usubjid}]}
            write_row(SPECS["DM"], row, patient, self.ctx)
            self._add(patient, "DM", index)
            self.patients[usubjid] = f"Patient/{patient['id']}"
            self._add(self._research_subject(row, usubjid, patient), None, None)
            converted += 1
        self.report.rows_converted["DM"] = converted

    def _research_subject(self, row: dict[str, Any], usubjid: str, patient: dict[str, Any]
                          ) -> dict[str, Any]:
        studyid, siteid = _text(row.get("STUDYID")), _text(row.get("SITEID"))
        study = self.studies.get(f"{studyid}|{siteid}") or self.studies.get(studyid or "")
        identifiers = [{"system": USUBJID_SYSTEM, "value": usubjid}]
        if _text(row.get("SUBJID")):
            identifiers.insert(0, {"system": SUBJID_SYSTEM, "value": str(row["SUBJID"])})
        rs: dict[str, Any] = {"resourceType": "ResearchSubject",
                              "id": fhir_id("rs", usubjid), "identifier": identifiers,
                              "study": {"reference": study}}
        patient_ref = {"reference": f"Patient/{patient['id']}"}
        armcd, actarmcd = _text(row.get("ARMCD")), _text(row.get("ACTARMCD"))
        if self.version == "R5":
            rs.update(status="active", subject=patient_ref)
            if armcd:
                rs["assignedComparisonGroup"] = fhir_id(armcd)
            if actarmcd:
                rs["actualComparisonGroup"] = fhir_id(actarmcd)
        else:
            rs.update(status="on-study", individual=patient_ref)
            if armcd:
                rs["assignedArm"] = armcd
            if actarmcd:
                rs["actualArm"] = actarmcd
        period = {}
        for var, key in (("RFSTDTC", "start"), ("RFENDTC", "end")):
            value = _text(row.get(var))
            if value:
                with contextlib.suppress(ValueError):
                    period[key] = dtc_to_fhir(value)
        if period:
            rs["period"] = period
        return rs

    # -- encounters --------------------------------------------------------------------
    def encounter(self, usubjid: str, visitnum: Any, visit: Any) -> str | None:
        if missing(visitnum):
            return None
        key = (usubjid, float(visitnum))
        if key not in self.encounters:
            encounter = encounter_resource(usubjid, float(visitnum), visit,
                                           self.patients[usubjid], self.version)
            self._add(encounter, None, None)
            self.encounters[key] = f"Encounter/{encounter['id']}"
        return self.encounters[key]

    # -- subject-level domains -----------------------------------------------------------
    def domain(self, name: str) -> None:
        if name not in self.datasets:
            return
        frame, file = self.datasets[name]
        if "USUBJID" not in frame:
            self._reject(name, file, None, "USUBJID", None,
                         f"{name} has no USUBJID variable: the dataset is not converted")
            return
        converted = 0
        pending_bp: dict[tuple[str, Any, Any], list[int]] = defaultdict(list)
        for position, row in enumerate(self.records[name]):
            usubjid = _text(row.get("USUBJID"))
            if usubjid is None or usubjid not in self.patients:
                self._reject(name, file, position, "USUBJID", usubjid,
                             "USUBJID is missing" if usubjid is None
                             else f"USUBJID {usubjid} is not in DM")
                continue
            required = _REQUIRED[name]
            if missing(row.get(required)):
                self._reject(name, file, position, required, None,
                             f"{required} is required to make a {_RESOURCE[name]}")
                continue
            if name == "VS" and row.get("VSTESTCD") in ("SYSBP", "DIABP") \
                    and not missing(row.get("VSDTC")):
                key = (usubjid, row.get("VSDTC"), row.get("VISITNUM"))
                pending_bp[key].append(position)
                converted += 1
                continue
            resource = self._resource(name, row, usubjid, position)
            write_row(SPECS[name], row, resource, self.ctx)
            self._finish(resource)
            self._add(resource, name, position)
            converted += 1
        for key, positions in pending_bp.items():
            self._blood_pressure(self.records[name], key[0], positions)
        self.report.rows_converted[name] = converted

    def _blood_pressure(self, records: list[dict[str, Any]], usubjid: str,
                        positions: list[int]) -> None:
        tests = [records[p]["VSTESTCD"] for p in positions]
        if sorted(tests) != ["DIABP", "SYSBP"]:
            for position in positions:              # not a pair: one Observation each
                row = records[position]
                resource = self._resource("VS", row, usubjid, position)
                write_row(SPECS["VS"], row, resource, self.ctx)
                self._finish(resource)
                self._add(resource, "VS", position)
            return
        first = records[positions[0]]
        panel = self._resource("VS", first, usubjid, positions[0], suffix="bp")
        panel["code"] = {"coding": [{"system": LOINC, "code": BP_PANEL[0],
                                     "display": BP_PANEL[1]}], "text": "Blood pressure"}
        panel["component"] = []
        shared = None
        for number, position in enumerate(sorted(positions, key=lambda p: records[p][
                "VSTESTCD"] != "SYSBP")):
            row = records[position]
            scratch = self._resource("VS", row, usubjid, position)
            write_row(SPECS["VS"], row, scratch, self.ctx)
            component = {k: scratch[k] for k in ("code", "valueQuantity", "valueString",
                                                 "interpretation", "referenceRange",
                                                 "dataAbsentReason") if k in scratch}
            panel["component"].append(component)
            if shared is None:
                shared = {str(k): scratch[k] for k in ("effectiveDateTime", "bodySite",
                                                       "extension", "encounter") if k in scratch}
            self.origin[(f"Observation/{panel['id']}", number)] = ("VS", position)
        panel.update(shared or {})
        self._add(panel, None, None)

    def _resource(self, domain: str, row: dict[str, Any], usubjid: str, position: int,
                  suffix: str | None = None) -> dict[str, Any]:
        seq = _seq_text(row.get(f"{domain}SEQ"), position)
        patient = {"reference": self.patients[usubjid]}
        rid = fhir_id(domain.lower(), usubjid, suffix, seq)
        if domain in ("LB", "VS"):
            category = "laboratory" if domain == "LB" else "vital-signs"
            resource: dict[str, Any] = {
                "resourceType": "Observation", "id": rid, "status": "final",
                "category": [{"coding": [{"system": OBS_CATEGORY, "code": category}]}],
                "code": {}, "subject": patient}
            encounter = self.encounter(usubjid, row.get("VISITNUM"), row.get("VISIT"))
            if encounter:
                resource["encounter"] = {"reference": encounter}
            return resource
        if domain == "EX":
            return {"resourceType": "MedicationAdministration", "id": rid,
                    "status": "completed", "subject": patient}
        resource = {"resourceType": "AdverseEvent", "id": rid, "actuality": "actual",
                    "subject": patient}
        if self.version == "R5":
            resource["status"] = "completed"
        return resource

    def _finish(self, resource: dict[str, Any]) -> None:
        finish_resource(resource, self.version)

    # -- bookkeeping -------------------------------------------------------------------
    def _add(self, resource: dict[str, Any], domain: str | None, position: int | None) -> None:
        self.resources.append(resource)
        self.report.resources_out[resource["resourceType"]] += 1
        if domain is not None and position is not None:
            self.origin[(f"{resource['resourceType']}/{resource['id']}", None)] = \
                (domain, position)

    def _reject(self, dataset: str, file: str, row: int | None, variable: str | None,
                value: str | None, message: str) -> None:
        self.report.rejected.append(RejectedRow(dataset, file, None if row is None else row + 1,
                                                variable, value, message))


# ----------------------------------------------------------------------- the check pass


def _same(a: Any, b: Any) -> bool:
    if missing(a) and missing(b):
        return True
    if isinstance(a, float) or isinstance(b, float):
        try:
            return float(a) == float(b)
        except (TypeError, ValueError):
            return False
    return bool(a == b)


def _carry(builder: _Builder, context: Iterable[dict[str, Any]] = ()) -> Study:
    """Add ``sdtm-variable`` extensions for everything that would not come back.

    ``context``: resources the builder's resources refer to that are not among them
    (read back with them, given no extensions). Returns the study read back.
    """
    items = [SourceResource(r, Origin("<memory>", f"{r['resourceType']}/{r['id']}"))
             for r in [*builder.resources, *context]]
    back = convert_resources(items, sources=["<memory>"], terminology=builder.terms,
                             fhir_version=builder.version)
    by_key = {f"{r['resourceType']}/{r['id']}": r for r in builder.resources}
    prov = back.provenance
    first_row = {d: int(prov.index[prov["DOMAIN"] == d][0]) for d in prov["DOMAIN"].unique()}
    mapped: dict[tuple[str, int | None], tuple[str, int]] = {}
    for position, (domain, source, location) in enumerate(
            zip(prov["DOMAIN"], prov["SOURCE"], prov["LOCATION"], strict=True)):
        component = re.search(r"component\[(\d+)\]$", str(location))
        key = (str(source), int(component.group(1)) if component else None)
        mapped[key] = (str(domain), position - first_row[str(domain)])
    pending: list[tuple[dict[str, Any], str, dict[str, Any], dict[str, Any]]] = []
    seq_differs: set[str] = set()
    back_records = {name: _records(frame) for name, frame in back.domains.items()}
    for key, (domain, position) in builder.origin.items():
        original = builder.records[domain][position]
        target = by_key[key[0]]
        node = target["component"][key[1]] if key[1] is not None else target
        got = mapped.get(key)
        restored = back_records[got[0]][got[1]] if got else None
        differing: dict[str, Any] = {}
        for column, value in original.items():
            if column in ("STUDYID", "DOMAIN", "USUBJID"):
                continue
            mine = restored.get(column) if restored is not None else None
            if not _same(value, mine):
                differing[column] = value
        if restored is not None:
            for column, value in restored.items():
                if column not in original and not missing(value):
                    differing[column] = None
        if f"{domain}SEQ" in differing:
            seq_differs.add(domain)
        pending.append((node, domain, differing, original))
    for node, domain, differing, original in pending:
        seq = f"{domain}SEQ"
        if domain in seq_differs and seq in original:
            differing[seq] = original[seq]       # a domain's --SEQ is carried whole or not
        for column in differing:
            builder.report.carried[domain][column] += 1
        if differing:
            node.setdefault("extension", []).extend(
                variable_extension(c, v) for c, v in differing.items())
    return back


# ----------------------------------------------------------------------- entry points


def to_fhir(sdtm: str | Path | dict[str, pd.DataFrame], *, fhir_version: str = "R4",
            terminology: Iterable[str | Path] = (), validate: bool = True) -> FhirOutput:
    """Convert SDTM datasets (a folder of XPT / Dataset-JSON / CSV, or frames) to FHIR.

    Returns the resources (R4 or R5 JSON dicts) in a stable order and a report. Every
    resource is validated with fhir.resources (R4B models for R4) unless ``validate`` is
    false; a resource that fails is a bug and raises ``ConversionError``.
    """
    version = _fhir_version(fhir_version)
    datasets = _input_datasets(sdtm)
    terms = terminology_module.load(terminology)
    return _convert(datasets, terms, version, validate)


def _fhir_version(fhir_version: str) -> str:
    version = fhir_version.upper()
    if version not in ("R4", "R4B", "R5"):
        raise InputError(f"unknown FHIR version {fhir_version!r}", hint="use R4 or R5")
    return "R5" if version == "R5" else "R4"


def _input_datasets(sdtm: str | Path | dict[str, pd.DataFrame]
                    ) -> dict[str, tuple[pd.DataFrame, str]]:
    """The datasets to convert (name -> (frame, file)); DM is required."""
    if isinstance(sdtm, dict):
        datasets = {k.upper(): (v.reset_index(drop=True), f"<{k.upper()}>")
                    for k, v in sdtm.items() if k.upper() in DOMAINS}
    else:
        datasets = load_sdtm(sdtm)
    if "DM" not in datasets:
        raise InputError("no DM dataset: subjects are needed to convert SDTM to FHIR",
                         str(sdtm) if not isinstance(sdtm, dict) else None)
    return datasets


def _convert(datasets: dict[str, tuple[pd.DataFrame, str]], terms: Terminology, version: str,
             validate: bool) -> FhirOutput:
    """``to_fhir`` on datasets already read."""
    report = FhirReport(fhir_version=version,
                        rows_in={name: len(frame) for name, (frame, _) in datasets.items()})
    builder = _Builder(datasets, terms, version, report)
    builder.study_resources()
    builder.subjects()
    for name in SUBJECT_DOMAINS:
        builder.domain(name)
    _carry(builder)
    resources = builder.resources
    if validate:
        from fhircdisc.converters.fhir_validation import validate_resources
        validate_resources(resources, version)
    return FhirOutput(resources, report)


__all__ = ["FhirOutput", "FhirReport", "fhir_id", "full_url", "load_sdtm", "to_fhir"]
