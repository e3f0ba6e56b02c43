"""The domain specs are well formed, and docs/mappings.md is generated from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from fhircdisc.mappings.algorithms import ALGORITHMS, check_spec
from fhircdisc.mappings.docs import SPECS, mapping_markdown
from fhircdisc.mappings.spec import DomainSpec, Rule
from fhircdisc.mappings.terminology import load_builtin
from fhircdisc.schemas import sdtmig

ROOT = Path(__file__).resolve().parents[2]


def test_docs_are_current():
    assert (ROOT / "docs" / "mappings.md").read_text(encoding="utf-8") == mapping_markdown(), \
        "run: python tools/mapping_docs.py"


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.domain)
def test_every_variable_is_sdtmig_and_unique(spec):
    names = [rule.var for rule in spec.rules]
    assert len(names) == len(set(names))
    if spec.domain != "TS":
        unknown = [n for n in names if sdtmig.variable(spec.domain, n) is None]
        assert unknown == []


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.domain)
def test_tables_named_by_specs_exist(spec):
    tables = load_builtin().tables()
    for rule in spec.rules:
        for part in (rule, rule.fallback):
            if part is not None and part.table is not None:
                assert part.table in tables, f"{spec.domain}.{rule.var}: {part.table}"


def test_unknown_algorithm_fails_at_load_time():
    with pytest.raises(ValueError, match="unknown algorithm 'guess'"):
        check_spec(DomainSpec("XX", "Observation", (Rule("XXTESTCD", "guess"),)))
    with pytest.raises(ValueError, match="needs a table"):
        check_spec(DomainSpec("XX", "Observation", (Rule("XXTESTCD", "ct", ("code",)),)))
    assert {"assign", "ct", "dtc", "derived", "context", "hardcode"} <= set(ALGORITHMS)
