"""The choices a define.xml generator has to make, written down as data.

Dataset class and structure come from SDTMIG 3.4 (``sdtmig_3_4_datasets.csv``); natural
keys, origins and the reference-data flag are fhircdisc conventions, listed here so that
the builder only looks them up.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from fhircdisc.schemas import sdtmig

SUPPQUAL = "SUPPQUAL"


@dataclass(frozen=True)
class DatasetInfo:
    """SDTMIG dataset-level metadata: label, class and structure."""

    label: str
    sdtm_class: str
    structure: str


@lru_cache(maxsize=1)
def _datasets() -> dict[str, DatasetInfo]:
    text = (resources.files("fhircdisc.schemas") / "sdtmig_3_4_datasets.csv").read_text(
        encoding="utf-8")
    rows = csv.DictReader(io.StringIO(
        "\n".join(line for line in text.splitlines() if not line.startswith("#"))))
    return {r["dataset"]: DatasetInfo(r["label"], r["class"], r["structure"]) for r in rows}


def is_supp(name: str) -> bool:
    """True for a supplemental-qualifier dataset name (``SUPPDM``)."""
    return name.startswith("SUPP") and len(name) > 4


def spec_name(name: str) -> str:
    """The SDTMIG table that describes dataset ``name`` (``SUPPDM`` -> ``SUPPQUAL``)."""
    return SUPPQUAL if is_supp(name) else name


def parent_domain(name: str) -> str:
    """The Domain attribute of a dataset: ``SUPPDM`` -> ``DM``, ``LB`` -> ``LB``."""
    return name[4:] if is_supp(name) else name


def dataset_info(name: str) -> DatasetInfo | None:
    """SDTMIG metadata of dataset ``name``, or None for a dataset our tables do not hold."""
    return _datasets().get(spec_name(name))


def variable_spec(dataset: str, variable: str) -> sdtmig.VariableSpec | None:
    """SDTMIG metadata of one variable (SUPP-- datasets use the SUPPQUAL table)."""
    return sdtmig.variable(spec_name(dataset), variable)


def define_class(sdtm_class: str) -> str:
    """SDTMIG class name as Define-XML spells it: ``Special-Purpose`` -> ``SPECIAL PURPOSE``."""
    return sdtm_class.replace("-", " ").upper()


# ----------------------------------------------------------------------------- keys

#: Natural keys per dataset, in key order; alternatives separated by "/" (first present wins).
NATURAL_KEYS: dict[str, tuple[str, ...]] = {
    "DM": ("STUDYID", "USUBJID"),
    "LB": ("STUDYID", "USUBJID", "LBTESTCD", "VISITNUM", "LBTPTNUM", "LBDTC"),
    "VS": ("STUDYID", "USUBJID", "VSTESTCD", "VISITNUM", "VSTPTNUM", "VSDTC"),
    "AE": ("STUDYID", "USUBJID", "AEDECOD/AETERM", "AESTDTC"),
    "EX": ("STUDYID", "USUBJID", "EXTRT", "EXSTDTC"),
    "TS": ("STUDYID", "TSPARMCD", "TSSEQ"),
    SUPPQUAL: ("STUDYID", "RDOMAIN", "USUBJID", "IDVAR", "IDVARVAL", "QNAM"),
}


def key_variables(dataset: str, present: dict[str, bool]) -> list[str]:
    """Key variables of ``dataset`` in key order, keeping only columns that exist.

    ``present`` maps each column to whether it holds any value; of alternatives such as
    ``AEDECOD/AETERM`` the first column holding data is chosen (else the first that exists).
    Datasets without a listed key get ``STUDYID, USUBJID, <dataset>SEQ``.
    """
    keys = NATURAL_KEYS.get(spec_name(dataset),
                            ("STUDYID", "USUBJID", f"{parent_domain(dataset)}SEQ"))
    out: list[str] = []
    for key in keys:
        options = [k for k in key.split("/") if k in present]
        with_data = [k for k in options if present[k]]
        if with_data or options:
            out.append((with_data or options)[0])
    return out


# ----------------------------------------------------------------------------- terminology

#: Codelists that control only the non-numeric results of a variable (SDTMIG: --STRESC
#: holds numeric results as text too); a number in such a variable is not a CT value.
NUMERIC_EXEMPT_CODELISTS = frozenset({"C102580"})


def is_number(text: str) -> bool:
    """True when ``text`` reads as a decimal number (``"0.5"``, ``"-3"``, ``".09"``)."""
    try:
        float(text)
    except ValueError:
        return False
    return text.strip().lower() not in ("nan", "inf", "-inf", "+inf", "infinity")


def controlled_values(codelist_code: str, values: list[str]) -> list[str]:
    """The values of a variable that its codelist ``codelist_code`` controls."""
    if codelist_code in NUMERIC_EXEMPT_CODELISTS:
        return [v for v in values if not is_number(v)]
    return values


# ----------------------------------------------------------------------------- origins

#: Variables assigned by the sponsor rather than collected or derived.
ASSIGNED = frozenset({
    "STUDYID", "DOMAIN", "RDOMAIN", "SITEID", "COUNTRY", "INVID", "INVNAM",
    "ARMCD", "ARM", "ACTARMCD", "ACTARM", "ARMNRS", "ACTARMUD", "AGEU",
    "VISITNUM", "VISIT", "IDVAR", "IDVARVAL", "QNAM", "QLABEL", "QORIG", "QEVAL",
})
#: Variables derived from other data.
DERIVED = frozenset({"USUBJID", "AGE", "EPOCH", "DTHFL", "VISITDY"})
#: Suffixes (after the two-letter domain prefix) of derived variables.
DERIVED_SUFFIXES = ("SEQ", "DY", "STDY", "ENDY", "STRESC", "STRESN", "STRESU", "NRIND",
                    "LOBXFL", "BLFL", "DRVFL")
#: Suffixes of variables the sponsor assigns (test codes and names, categories).
ASSIGNED_SUFFIXES = ("TESTCD", "TEST", "CAT", "SCAT")
#: Origin/@Source per origin type (Define-XML 2.1 OriginSource).
ORIGIN_SOURCE = {"Collected": "Investigator", "Derived": "Sponsor", "Assigned": "Sponsor",
                 "Protocol": "Sponsor"}
#: SUPPQUAL QORIG values -> Define-XML origin type.
QORIG_TO_ORIGIN = {"CRF": "Collected", "COLLECTED": "Collected", "EDT": "Collected",
                   "DERIVED": "Derived", "ASSIGNED": "Assigned", "PROTOCOL": "Protocol",
                   "PREDECESSOR": "Predecessor"}


def origin_type(dataset: str, variable: str) -> str:
    """Define-XML def:Origin/@Type of one variable (a fhircdisc convention)."""
    domain = parent_domain(dataset)
    suffix = variable[len(domain):] if variable.startswith(domain) else ""
    if variable in ASSIGNED:
        return "Assigned"
    if variable in DERIVED or (domain == "DM" and variable.startswith("RF")):
        return "Derived"
    if suffix in DERIVED_SUFFIXES:
        return "Derived"
    info = dataset_info(dataset)
    if info is not None and info.sdtm_class == "Trial Design":
        return "Protocol"
    if suffix in ASSIGNED_SUFFIXES:
        return "Assigned"
    return "Collected"


def is_reference_data(dataset: str) -> bool:
    """Trial-design datasets (TS, TA, ...) are reference data, not subject data."""
    info = dataset_info(dataset)
    return info is not None and info.sdtm_class == "Trial Design"


def is_repeating(dataset: str) -> bool:
    """False for one-record-per-subject (DM) and reference-data datasets."""
    info = dataset_info(dataset)
    if info is not None and info.structure.lower() == "one record per subject":
        return False
    return not is_reference_data(dataset)
