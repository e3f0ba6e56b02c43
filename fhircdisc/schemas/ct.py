"""CDISC Controlled Terminology (the subset of codelists we use, release 2025-03-28)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import cache
from importlib import resources

#: NCI Thesaurus: the code system of CDISC CT C-codes in FHIR.
NCIT = "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"

#: terminology table role -> (CT codelist of the value, CT codelist of its decode)
TABLE_CODELISTS: dict[str, tuple[str, str | None]] = {
    "LBTEST": ("C65047", "C67154"), "VSTEST": ("C66741", "C67153"), "UNIT": ("C71620", None),
    "SEX": ("C66731", None), "RACE": ("C74457", None), "ETHNIC": ("C66790", None),
    "ROUTE": ("C66729", None), "DOSFRM": ("C66726", None), "NRIND": ("C78736", None),
    "SPEC": ("C78734", None), "VSPOS": ("C71148", None), "LOC": ("C74456", None),
    "AESEV": ("C66769", None), "AESER": ("C66742", None), "AEOUT": ("C66768", None),
    "AEACN": ("C66767", None), "TPHASE": ("C66737", None), "STYPE": ("C99077", None),
    "TTYPE": ("C66739", None),
}


@dataclass(frozen=True)
class CtTerm:
    codelist: str
    submission_value: str
    nci_code: str
    preferred_term: str
    extensible: bool


@cache
def _terms() -> dict[str, list[CtTerm]]:
    text = (resources.files("fhircdisc.schemas") / "ct_subset.csv").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    out: dict[str, list[CtTerm]] = {}
    for row in csv.DictReader(io.StringIO("\n".join(lines))):
        out.setdefault(row["codelist"], []).append(CtTerm(
            row["codelist"], row["submission_value"], row["nci_code"],
            row.get("preferred_term") or "", (row.get("extensible") or "").lower() == "yes"))
    return out


def codelist(code: str) -> list[CtTerm]:
    """Every term of a codelist (empty when the subset does not hold it)."""
    return _terms().get(code, [])


@cache
def by_value(code: str) -> dict[str, CtTerm]:
    return {t.submission_value: t for t in codelist(code)}


@cache
def by_nci(code: str) -> dict[str, CtTerm]:
    return {t.nci_code: t for t in codelist(code)}


def is_extensible(code: str) -> bool:
    terms = codelist(code)
    return bool(terms) and terms[0].extensible
