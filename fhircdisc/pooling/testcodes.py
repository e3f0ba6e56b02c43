"""Test codes reconciled across pooled studies through their LOINC codes.

Rule: where a row carries a LOINC code (``LBLOINC``/``VSLOINC``) that the terminology
tables map to a test code, that test code wins: the row's ``--TESTCD`` (and ``--TEST``,
from the table's decode) become the table's, and every change is reported. What the rule
cannot settle is left as it is and reported:

* the same LOINC code still under different test codes (a LOINC code the tables do not
  know): a conflict, one per affected record, since pooled analyses would split the test;
* the same test code under different LOINC codes: a note (legitimate when the LOINC
  codes are variants of one test, e.g. glucose by mass and by moles, which the tables map
  to the same code; flagged when a LOINC code is unknown to the tables).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from fhircdisc.converters.datasets import is_missing
from fhircdisc.mappings.terminology import Terminology
from fhircdisc.pooling.values import optional_float, optional_text

LOINC_SYSTEM = "http://loinc.org"
#: findings domain -> its terminology table of test codes
TEST_TABLES = {"LB": "LBTEST", "VS": "VSTEST"}


@dataclass(frozen=True)
class TestCodeChange:
    study: str
    domain: str
    loinc: str
    from_testcd: str | None
    to_testcd: str
    to_test: str | None
    n_rows: int
    rule: str = "terminology maps this LOINC code to the test code"


@dataclass(frozen=True)
class LoincConflict:
    """One record whose LOINC code appears under several test codes after the rule."""

    study: str
    domain: str
    usubjid: str | None
    seq: float | None
    row: int
    loinc: str
    testcd: str | None
    testcds: tuple[str, ...]


@dataclass(frozen=True)
class SharedTestCode:
    """A test code carried with several LOINC codes across the pool (a note)."""

    domain: str
    testcd: str
    loincs: dict[str, list[str]] = field(hash=False)   # LOINC -> studies
    unknown_loincs: tuple[str, ...] = ()                # LOINC codes the tables do not map


@dataclass
class TestCodeResult:
    changes: list[TestCodeChange] = field(default_factory=list)
    conflicts: list[LoincConflict] = field(default_factory=list)
    shared: list[SharedTestCode] = field(default_factory=list)


def reconcile_test_codes(studies: Sequence[tuple[str, dict[str, pd.DataFrame]]],
                         terminology: Terminology) -> TestCodeResult:
    """Apply the LOINC rule to the LB and VS datasets of every study (frames changed in place)."""
    result = TestCodeResult()
    for domain, table in TEST_TABLES.items():
        testcd_col, loinc_col = f"{domain}TESTCD", f"{domain}LOINC"
        for study, frames in studies:
            frame = frames.get(domain)
            if frame is None or loinc_col not in frame or testcd_col not in frame:
                continue
            frames[domain] = _apply_rule(study, domain, frame, table, terminology, result)
        _find_leftovers(studies, domain, table, terminology, result)
    return result


def _apply_rule(study: str, domain: str, frame: pd.DataFrame, table: str,
                terminology: Terminology, result: TestCodeResult) -> pd.DataFrame:
    testcd_col, test_col, loinc_col = f"{domain}TESTCD", f"{domain}TEST", f"{domain}LOINC"
    testcds = list(frame[testcd_col])
    tests = list(frame[test_col]) if test_col in frame else None
    counts: dict[tuple[str, str | None, str, str | None], int] = {}
    for i, (loinc, testcd) in enumerate(zip(frame[loinc_col], frame[testcd_col], strict=True)):
        if is_missing(loinc):
            continue
        term = terminology.lookup(table, LOINC_SYSTEM, str(loinc))
        current = None if is_missing(testcd) else str(testcd)
        if term is None or term.submission_value == current:
            continue
        testcds[i] = term.submission_value
        if tests is not None and term.decode:
            tests[i] = term.decode
        key = (str(loinc), current, term.submission_value, term.decode or None)
        counts[key] = counts.get(key, 0) + 1
    if not counts:
        return frame
    for (loinc, old, new, decode), n in counts.items():
        result.changes.append(TestCodeChange(study, domain, loinc, old, new, decode, n))
    changed = {testcd_col: pd.Series(testcds, index=frame.index, dtype=object)}
    if tests is not None:
        changed[test_col] = pd.Series(tests, index=frame.index, dtype=object)
    return frame.assign(**changed)


def _find_leftovers(studies: Sequence[tuple[str, dict[str, pd.DataFrame]]], domain: str,
                    table: str, terminology: Terminology, result: TestCodeResult) -> None:
    testcd_col, loinc_col = f"{domain}TESTCD", f"{domain}LOINC"
    by_loinc: dict[str, set[str]] = {}
    by_testcd: dict[str, dict[str, list[str]]] = {}
    for study, frames in studies:
        frame = frames.get(domain)
        if frame is None or loinc_col not in frame or testcd_col not in frame:
            continue
        pairs = frame[[loinc_col, testcd_col]].dropna().drop_duplicates()
        for loinc, testcd in pairs.itertuples(index=False):
            by_loinc.setdefault(str(loinc), set()).add(str(testcd))
            studies_of = by_testcd.setdefault(str(testcd), {}).setdefault(str(loinc), [])
            if study not in studies_of:
                studies_of.append(study)
    split = {loinc: tuple(sorted(codes)) for loinc, codes in by_loinc.items() if len(codes) > 1}
    if split:
        seq_col = f"{domain}SEQ"
        for study, frames in studies:
            frame = frames.get(domain)
            if frame is None or loinc_col not in frame or testcd_col not in frame:
                continue
            for row, (loinc, testcd) in enumerate(zip(frame[loinc_col], frame[testcd_col],
                                                      strict=True), start=1):
                if is_missing(loinc) or str(loinc) not in split:
                    continue
                usubjid = frame["USUBJID"].iloc[row - 1] if "USUBJID" in frame else None
                seq = frame[seq_col].iloc[row - 1] if seq_col in frame else None
                result.conflicts.append(LoincConflict(
                    study, domain, optional_text(usubjid), optional_float(seq), row, str(loinc),
                    optional_text(testcd), split[str(loinc)]))
    for testcd, loincs in sorted(by_testcd.items()):
        if len(loincs) < 2:
            continue
        unknown = tuple(sorted(code for code in loincs
                               if terminology.lookup(table, LOINC_SYSTEM, code) is None))
        result.shared.append(SharedTestCode(domain, testcd, dict(sorted(loincs.items())),
                                            unknown))
