"""CDISC Controlled Terminology (the subset of codelists we use, release 2025-03-28).

The one reader of ``fhircdisc/schemas/ct_subset.csv``: the terminology tables, the
conformance rules, Define-XML and pooling all look terms up here.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib import resources
from operator import itemgetter

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
    """One term of a codelist: submission value, C-code and NCI preferred term."""

    codelist: str
    submission_value: str
    nci_code: str
    preferred_term: str


@dataclass(frozen=True)
class Codelist:
    """One CT codelist: C-code, name, extensibility and its terms in CT order."""

    code: str
    name: str
    extensible: bool
    terms: tuple[CtTerm, ...]
    by_value: Mapping[str, CtTerm] = field(default_factory=dict, compare=False, repr=False)

    def term(self, value: str) -> CtTerm | None:
        """The term whose submission value is exactly ``value``, or None."""
        return self.by_value.get(value)

    @cached_property
    def values(self) -> frozenset[str]:
        """The submission values (made once: the conformance checks ask per dataset)."""
        return frozenset(self.by_value)


@cache
def codelists() -> dict[str, Codelist]:
    """Codelist C-code -> :class:`Codelist`, for every codelist of the subset."""
    text = (resources.files("fhircdisc.schemas") / "ct_subset.csv").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    names: dict[str, str] = {}
    extensible: dict[str, bool] = {}
    terms: dict[str, list[CtTerm]] = {}
    # rows as lists (a dict a row took two thirds of the time: every process checking
    # datasets reads the table once)
    reader = csv.reader(io.StringIO("\n".join(lines)))
    header = next(reader, [])
    width = len(header)
    # a column the table lacks is read from the empty cell added after each row's last
    fields = itemgetter(*(header.index(name) if name in header else width
                          for name in ("codelist", "codelist_name", "extensible",
                                       "submission_value", "nci_code", "preferred_term")))
    for row in reader:
        if not row:
            continue
        if len(row) < width:
            row += [""] * (width - len(row))
        row.append("")
        code, name, extends, value, nci, preferred = fields(row)
        names.setdefault(code, name)
        extensible.setdefault(code, extends.strip().lower() == "yes")
        terms.setdefault(code, []).append(CtTerm(code, value, nci, preferred))
    return {code: Codelist(code, names[code], extensible[code], tuple(items),
                           {t.submission_value: t for t in items})
            for code, items in terms.items()}


def codelist(code: str) -> Codelist | None:
    """The codelist with C-code ``code``, or None when the subset does not hold it."""
    return codelists().get(code) if code else None


def by_value(code: str) -> Mapping[str, CtTerm]:
    """Submission value -> term of a codelist (empty when the subset does not hold it)."""
    found = codelist(code)
    return found.by_value if found else {}


@cache
def by_nci(code: str) -> dict[str, CtTerm]:
    """C-code -> term of a codelist."""
    found = codelist(code)
    return {t.nci_code: t for t in found.terms} if found else {}


def is_extensible(code: str) -> bool:
    found = codelist(code)
    return found is not None and found.extensible
