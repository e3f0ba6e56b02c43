"""CDISC Controlled Terminology versions of pooled studies, and values renamed between them.

The CT version of a study comes from its define.xml (``def:Standard Type="CT"``, the
SDTM publishing set first), else from the define.xml a Dataset-JSON file names in its
``metaDataRef``, else "unknown". A study converted from FHIR by fhircdisc is on the CT
release of the package's terminology tables.

The pooled data are held to the package's CT release (the reference). Submission values
that CDISC CT renamed are mapped by the small table :data:`CT_RENAMES` (only renames
verified against the CT files in the reference data); other values of CT-controlled
variables that are not in the reference release are reported, not changed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fhircdisc.converters.datasets import is_missing
from fhircdisc.schemas import ct, sdtmig

REFERENCE_CT_VERSION = sdtmig.CT_VERSION
UNKNOWN = "unknown"
_META_REF = re.compile(rb'"metaDataRef"\s*:\s*"([^"]+)"')
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


@dataclass(frozen=True)
class CtRename:
    """A submission value that a later CT release replaced."""

    domain: str
    variable: str
    old: str
    new: str
    codelist: str
    evidence: str


#: Known submission-value renames between CT releases (old value -> reference value).
CT_RENAMES: tuple[CtRename, ...] = (
    CtRename("TS", "TSVCDREF", "CDISC", "CDISC CT", "C66788",
             "CT 2025-03-28 codelist DICTNAM (C66788) has 'CDISC CT' (C163415) and no "
             "'CDISC'; the CDISC pilot study (CT 2020-12-18) writes 'CDISC'"),
)


@dataclass(frozen=True)
class CtVersion:
    version: str
    source: str | None      # where it was read, None when unknown


@dataclass(frozen=True)
class AppliedRename:
    study: str
    domain: str
    variable: str
    old: str
    new: str
    n_rows: int
    evidence: str


@dataclass(frozen=True)
class ValueOutsideCt:
    """Values of a CT-controlled variable that the reference CT release does not hold."""

    study: str
    domain: str
    variable: str
    codelist: str
    value: str
    n_rows: int
    extensible: bool


def define_ct_version(path: Path) -> str | None:
    """The CT version a define.xml declares (``def:Standard Type="CT"``), if any."""
    from lxml import etree

    try:
        parser = etree.XMLParser(resolve_entities=False, no_network=True)
        root = etree.parse(str(path), parser).getroot()
    except (OSError, etree.XMLSyntaxError):
        return None
    standards = [el for el in root.iter() if isinstance(el.tag, str)
                 and etree.QName(el).localname == "Standard" and el.get("Type") == "CT"
                 and el.get("Version")]
    standards.sort(key=lambda el: el.get("PublishingSet") != "SDTM")
    return str(standards[0].get("Version")) if standards else None


def folder_ct_version(folder: Path, dataset_paths: Iterable[Path] = ()) -> CtVersion:
    """The CT version of an SDTM folder (see the module docstring for the order)."""
    candidates: list[Path] = [folder / "define.xml"]
    for path in dataset_paths:
        if path.suffix.lower() in (".json", ".ndjson"):
            ref = _metadata_ref(path)
            if ref:
                candidates.append(path.parent / ref)
    # datasets kept in xpt/ or json/ subfolders of the study, define.xml beside them
    candidates.append(folder.parent / "define.xml")
    for candidate in dict.fromkeys(candidates):
        if candidate.is_file():
            version = define_ct_version(candidate)
            if version:
                return CtVersion(version, str(candidate))
    return CtVersion(UNKNOWN, None)


def _metadata_ref(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            head = handle.read(65536)
    except OSError:
        return None
    match = _META_REF.search(head)
    return match.group(1).decode("utf-8", "replace") if match else None


def apply_renames(study: str, frames: dict[str, pd.DataFrame],
                  renames: Iterable[CtRename] = CT_RENAMES) -> list[AppliedRename]:
    """Map renamed submission values to the reference release (frames changed in place)."""
    applied: list[AppliedRename] = []
    for rename in renames:
        frame = frames.get(rename.domain)
        if frame is None or rename.variable not in frame:
            continue
        hits = frame[rename.variable] == rename.old
        count = int(hits.sum())
        if not count:
            continue
        column = frame[rename.variable].astype(object).where(~hits, rename.new)
        frames[rename.domain] = frame.assign(**{rename.variable: column})
        applied.append(AppliedRename(study, rename.domain, rename.variable, rename.old,
                                     rename.new, count, rename.evidence))
    return applied


def values_outside_ct(study: str, frames: dict[str, pd.DataFrame]) -> list[ValueOutsideCt]:
    """Values of CT-controlled SDTMIG variables that the reference CT does not list.

    Numbers are skipped: in a variable such as LBSTRESC the codelist covers the text
    results only. Codelists outside the package's CT subset are not checked.
    """
    found: list[ValueOutsideCt] = []
    for domain, frame in frames.items():
        for name in frame.columns:
            spec = sdtmig.variable(domain, str(name))
            if spec is None or not spec.codelist:
                continue
            for code in re.split(r"[;, ]+", spec.codelist):
                allowed = ct.by_value(code) if code.startswith("C") else {}
                if not allowed:
                    continue      # codelist outside the package's CT subset: not checked
                counts = frame[name].map(lambda v: None if is_missing(v) else str(v))
                for value, n in counts.dropna().value_counts().sort_index().items():
                    # a number is a result, never a term (--STRESC's codelist is for text)
                    if value not in allowed and not _NUMBER.match(str(value)):
                        found.append(ValueOutsideCt(study, domain, str(name), code, str(value),
                                                    int(n), ct.is_extensible(code)))
                break
    return found
