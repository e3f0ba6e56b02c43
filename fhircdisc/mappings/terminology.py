"""Terminology as data: FHIR code (system + code) <-> CDISC submission value <-> NCI C-code.

The tables live in ``mappings/terminology/*.csv``, one row a mapping, with the
columns ``table, system, code, display, submission_value, decode, nci_code,
preferred, attributes``. Users extend or override them with files of the same
shape (``--terminology FILE``); a user row replaces a built-in row with the same
``(table, system, code)``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from fhircdisc.errors import InputError
from fhircdisc.schemas import ct

COLUMNS = ("table", "system", "code", "display", "submission_value", "decode", "nci_code",
           "preferred", "attributes")

#: Spellings of the same code system that appear in real data.
SYSTEM_ALIASES = {
    "https://loinc.org": "http://loinc.org",
    "http://loinc.org/": "http://loinc.org",
    "https://loinc.org/": "http://loinc.org",
    "http://snomed.info/sct/": "http://snomed.info/sct",
    "https://snomed.info/sct": "http://snomed.info/sct",
    "http://unitsofmeasure.org/": "http://unitsofmeasure.org",
    "https://unitsofmeasure.org": "http://unitsofmeasure.org",
}


def normalize_system(system: str | None) -> str:
    """The canonical spelling of a code system URI."""
    if not system:
        return ""
    if not isinstance(system, str):     # not a URI (bad input): names no table's system
        return str(system)
    system = system.strip()
    return SYSTEM_ALIASES.get(system, system)


@dataclass(frozen=True)
class Term:
    """One terminology row."""

    table: str
    system: str
    code: str
    display: str
    submission_value: str
    decode: str
    nci_code: str
    preferred: bool
    attributes: dict[str, str] = field(default_factory=dict, hash=False, compare=False)


class Terminology:
    """Lookups in both directions over a set of terminology rows."""

    def __init__(self, terms: Iterable[Term] = ()) -> None:
        self._by_code: dict[tuple[str, str, str], Term] = {}
        self._by_value: dict[tuple[str, str], Term] = {}
        self._by_nci: dict[tuple[str, str], Term] = {}
        self.sources: list[str] = []
        self.add(terms)

    def add(self, terms: Iterable[Term]) -> None:
        """Add rows; a row replaces an earlier one with the same (table, system, code)."""
        for term in terms:
            self._by_code[(term.table, term.system, term.code)] = term
            if term.nci_code:
                self._by_nci.setdefault((term.table, term.nci_code), term)
            key = (term.table, term.submission_value)
            current = self._by_value.get(key)
            if term.preferred or current is None or (current.system == term.system and \
                    current.code == term.code):
                self._by_value[key] = term

    def lookup(self, table: str, system: str | None, code: str | None) -> Term | None:
        """The row mapping a FHIR code to CDISC, or ``None`` if the table has none.

        A CDISC CT coding (NCI Thesaurus C-code) is also understood: through a table row
        with that C-code, else through the CT codelist the table stands for.
        """
        if code is None:
            return None
        system, code = normalize_system(system), str(code).strip()
        term = self._by_code.get((table, system, code))
        if term is None and system == ct.NCIT:
            term = self._by_nci.get((table, code)) or _ct_term(table, code=code)
        return term

    def reverse(self, table: str, submission_value: str | None) -> Term | None:
        """The preferred row for a CDISC submission value (for SDTM -> FHIR).

        A value with no row but in CDISC CT gives a term whose coding is its C-code.
        """
        if submission_value is None:
            return None
        return self._by_value.get((table, submission_value)) or \
            _ct_term(table, value=submission_value)

    def tables(self) -> set[str]:
        return {key[0] for key in self._by_code}

    def __len__(self) -> int:
        return len(self._by_code)


def _ct_term(table: str, *, code: str | None = None, value: str | None = None) -> Term | None:
    """A term of the CDISC CT codelist behind ``table``, by C-code or submission value."""
    lists = ct.TABLE_CODELISTS.get(table)
    if lists is None:
        return None
    found = ct.by_nci(lists[0]).get(code) if code else ct.by_value(lists[0]).get(value or "")
    if found is None:
        return None
    decode = ""
    if lists[1]:
        named = ct.by_nci(lists[1]).get(found.nci_code)
        decode = named.submission_value if named else ""
    return Term(table=table, system=ct.NCIT, code=found.nci_code,
                display=found.submission_value, submission_value=found.submission_value,
                decode=decode or found.preferred_term, nci_code=found.nci_code, preferred=False)


def parse_rows(text: str, source: str) -> list[Term]:
    """Parse terminology CSV text (``#`` lines are comments)."""
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    reader = csv.DictReader(io.StringIO("\n".join(lines)))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise InputError(f"terminology file lacks column(s) {', '.join(missing)}", source,
                         hint=f"expected columns: {','.join(COLUMNS)}")
    terms = []
    for number, row in enumerate(reader, start=2):
        table, code, value = (row.get("table") or "").strip(), (row.get("code") or "").strip(), \
            (row.get("submission_value") or "").strip()
        if not table or not code or not value:
            raise InputError("row needs table, code and submission_value", source,
                             f"data row {number - 1}")
        attributes = {}
        for item in (row.get("attributes") or "").split(";"):
            if "=" in item:
                key, _, val = item.partition("=")
                attributes[key.strip()] = val.strip()
        terms.append(Term(table=table, system=normalize_system(row.get("system")), code=code,
                          display=(row.get("display") or "").strip(), submission_value=value,
                          decode=(row.get("decode") or "").strip(),
                          nci_code=(row.get("nci_code") or "").strip(),
                          preferred=(row.get("preferred") or "").strip().upper() == "Y",
                          attributes=attributes))
    return terms


def load_builtin() -> Terminology:
    """The terminology tables shipped with the package."""
    terminology = Terminology()
    folder = resources.files("fhircdisc.mappings") / "terminology"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".csv"):
            terminology.add(parse_rows(entry.read_text(encoding="utf-8"), entry.name))
            terminology.sources.append(f"fhircdisc/mappings/terminology/{entry.name}")
    return terminology


def load(extra_files: Iterable[str | Path] = ()) -> Terminology:
    """Built-in tables plus the user's files, user rows taking precedence."""
    terminology = load_builtin()
    for path in extra_files:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise InputError(f"cannot read terminology file: {exc.strerror}", str(path)) from exc
        terminology.add(parse_rows(text, str(path)))
        terminology.sources.append(str(path))
    return terminology
