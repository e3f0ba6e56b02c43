"""CDISC controlled terminology as Define-XML needs it: codelists, their terms and C-codes.

Read from ``fhircdisc/schemas/ct_subset.csv`` (CDISC/NCI SDTM CT 2025-03-28, the codelists
the SDTMIG variables we write refer to).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources


@dataclass(frozen=True)
class Term:
    """One term of a codelist: the submission value, its C-code and NCI preferred term."""

    value: str
    code: str
    preferred_term: str


@dataclass(frozen=True)
class Codelist:
    """One CT codelist: C-code, name, extensibility and its terms in CT order."""

    code: str
    name: str
    extensible: bool
    terms: tuple[Term, ...]
    by_value: Mapping[str, Term] = field(default_factory=dict, compare=False, repr=False)

    def term(self, value: str) -> Term | None:
        """The term whose submission value is exactly ``value``, or None."""
        return self.by_value.get(value)


@lru_cache(maxsize=1)
def codelists() -> dict[str, Codelist]:
    """Codelist C-code -> :class:`Codelist`, for every codelist of ``ct_subset.csv``."""
    text = (resources.files("fhircdisc.schemas") / "ct_subset.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(io.StringIO(
        "\n".join(line for line in text.splitlines() if not line.startswith("#"))))
    names: dict[str, str] = {}
    extensible: dict[str, bool] = {}
    terms: dict[str, list[Term]] = {}
    for row in rows:
        code = row["codelist"]
        names.setdefault(code, row["codelist_name"])
        extensible.setdefault(code, row["extensible"].strip().lower() == "yes")
        terms.setdefault(code, []).append(
            Term(row["submission_value"], row["nci_code"], row.get("preferred_term") or ""))
    return {code: Codelist(code, names[code], extensible[code], tuple(items),
                           {t.value: t for t in items})
            for code, items in terms.items()}


def codelist(code: str) -> Codelist | None:
    """The codelist with C-code ``code``, or None when it is not in our CT subset."""
    return codelists().get(code) if code else None
