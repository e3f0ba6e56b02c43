"""Standard results (LB, VS) brought to one unit per test across the pooled studies.

Per test code, the target unit is the unit of most results across the pooled studies;
a tie goes to the unit the terminology tables give the test (``reverse(table, testcd)``,
attribute ``unit``, a UCUM code mapped back to its CDISC unit; for vital signs also
``VSORRESU``), then to the alphabetically first unit. ``target_units`` overrides this
per test (``{"GLUC": "mmol/L"}`` or ``{"LB.GLUC": "mmol/L"}``).

Only the standard result variables change: ``--STRESN`` (converted, rounded to
RESULT_DIGITS significant digits to drop float noise), ``--STRESC`` (the converted number
as text), ``--STRESU`` and the standard reference range ``--STNRLO``/``--STNRHI``. The
original result (``--ORRES``/``--ORRESU``) is what was collected and stays as it is. A
result that cannot be converted keeps its unit and is reported with its record.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fhircdisc.mappings.terminology import Terminology
from fhircdisc.pooling.report import TargetUnit, Unconvertible, UnitConversionRecord
from fhircdisc.pooling.testcodes import TEST_TABLES
from fhircdisc.pooling.units import NotConvertible, UnitConverter
from fhircdisc.pooling.values import optional_float, optional_text

RESULT_DIGITS = 10
"""Significant digits kept of a converted result (far beyond any laboratory's precision)."""


@dataclass
class ResultsOutcome:
    targets: list[TargetUnit] = field(default_factory=list)
    conversions: list[UnitConversionRecord] = field(default_factory=list)
    unconvertible: list[Unconvertible] = field(default_factory=list)


def round_significant(values: np.ndarray, digits: int = RESULT_DIGITS) -> np.ndarray:
    """Each value rounded to ``digits`` significant digits (NaN stays NaN)."""
    return np.array([v if not np.isfinite(v) else float(f"{v:.{digits}g}") for v in values],
                    dtype="float64")


def format_number(value: float) -> str:
    """A result as SDTM text: positional notation, no trailing zeros (``59.3``, ``100``)."""
    return str(np.format_float_positional(value, trim="-"))


def preferred_unit(domain: str, testcd: str, terminology: Terminology,
                   converter: UnitConverter) -> str | None:
    """The CDISC unit the terminology tables give a test, if any."""
    term = terminology.reverse(TEST_TABLES[domain], testcd)
    if term is None:
        return None
    if domain == "VS" and term.attributes.get("VSORRESU"):
        return term.attributes["VSORRESU"]
    ucum = term.attributes.get("unit")
    return converter.cdisc_unit(ucum) if ucum else None


def choose_target(domain: str, testcd: str, counts: Counter[str], terminology: Terminology,
                  converter: UnitConverter) -> tuple[str, str]:
    """(target unit, reason) for one test from its unit counts."""
    best = max(counts.values())
    tied = sorted(unit for unit, n in counts.items() if n == best)
    if len(tied) == 1:
        return tied[0], f"unit of most results ({best})"
    preferred = preferred_unit(domain, testcd, terminology, converter)
    if preferred in tied:
        return str(preferred), f"tie ({best} results each) broken by the terminology's unit"
    term = terminology.reverse(TEST_TABLES[domain], testcd)
    ucum = term.attributes.get("unit") if term is not None else None
    for unit in tied:
        if ucum and converter.ucum_code(unit) == ucum:
            return unit, f"tie ({best} results each) broken by the terminology's UCUM unit"
    return tied[0], f"tie ({best} results each), terminology names none: first alphabetically"


def harmonize_results(studies: Sequence[tuple[str, dict[str, pd.DataFrame]]],
                      converter: UnitConverter, terminology: Terminology,
                      target_units: dict[str, str] | None = None) -> ResultsOutcome:
    """Convert LB and VS standard results to one unit per test (frames changed in place)."""
    outcome = ResultsOutcome()
    given = dict(target_units or {})
    for domain in TEST_TABLES:
        testcd_col, unit_col = f"{domain}TESTCD", f"{domain}STRESU"
        counts: dict[str, Counter[str]] = {}
        for _, frames in studies:
            frame = frames.get(domain)
            if frame is None or testcd_col not in frame or unit_col not in frame:
                continue
            has_result = _has_result(frame, domain)
            sub = frame.loc[has_result, [testcd_col, unit_col]].dropna()
            for testcd, unit in zip(sub[testcd_col], sub[unit_col], strict=True):
                counts.setdefault(str(testcd), Counter())[str(unit)] += 1
        for testcd in sorted(counts):
            units = counts[testcd]
            wanted = given.get(f"{domain}.{testcd}") or given.get(testcd)
            if wanted:
                target, reason = wanted, "given"
            elif len(units) > 1:
                target, reason = choose_target(domain, testcd, units, terminology, converter)
            else:
                continue
            outcome.targets.append(TargetUnit(domain, testcd, target, reason, dict(units)))
            for study, frames in studies:
                frame = frames.get(domain)
                if frame is None or testcd_col not in frame or unit_col not in frame:
                    continue
                frames[domain] = _convert_test(study, domain, frame, testcd, target, converter,
                                               outcome)
    return outcome


def _has_result(frame: pd.DataFrame, domain: str) -> pd.Series:
    mask = pd.Series(False, index=frame.index)
    for col in (f"{domain}STRESN", f"{domain}STRESC"):
        if col in frame:
            mask |= frame[col].notna()
    return mask


def _convert_test(study: str, domain: str, frame: pd.DataFrame, testcd: str, target: str,
                  converter: UnitConverter, outcome: ResultsOutcome) -> pd.DataFrame:
    testcd_col, unit_col = f"{domain}TESTCD", f"{domain}STRESU"
    num_col, char_col = f"{domain}STRESN", f"{domain}STRESC"
    of_test = frame[testcd_col] == testcd
    if not of_test.any():
        return frame
    frame = frame.copy()
    numeric = frame[num_col].notna() if num_col in frame else pd.Series(False, index=frame.index)
    has_result = _has_result(frame, domain)
    for unit in sorted({str(u) for u in frame.loc[of_test, unit_col].dropna()} - {target}):
        rows = of_test & (frame[unit_col] == unit)
        try:
            conversion = converter.conversion(unit, target, testcd if domain == "LB" else None)
        except NotConvertible as exc:
            _unconvertible(outcome, study, domain, frame, rows & has_result, testcd, target,
                           exc.reason, exc.message)
            continue
        converted = rows & numeric
        text_only = rows & ~numeric & has_result
        empty = rows & ~has_result
        if converted.any():
            values = round_significant(conversion.apply(frame.loc[converted, num_col]))
            frame.loc[converted, num_col] = values
            if char_col in frame:
                frame[char_col] = frame[char_col].astype(object)
                frame.loc[converted, char_col] = pd.Series(
                    [format_number(v) for v in values], index=frame.index[converted],
                    dtype=object)
        for range_col in (f"{domain}STNRLO", f"{domain}STNRHI"):
            if range_col in frame and pd.api.types.is_numeric_dtype(frame[range_col]):
                in_range = (converted | empty) & frame[range_col].notna()
                if in_range.any():
                    frame.loc[in_range, range_col] = round_significant(
                        conversion.apply(frame.loc[in_range, range_col]))
        frame.loc[converted | empty, unit_col] = target
        if converted.any():
            outcome.conversions.append(UnitConversionRecord(
                study, domain, testcd, unit, target, conversion.from_ucum, conversion.to_ucum,
                conversion.factor, conversion.offset, conversion.molecular_weight,
                conversion.valence, int(converted.sum())))
        if text_only.any():
            _unconvertible(outcome, study, domain, frame, text_only, testcd, target,
                           "non-numeric-result", f"{char_col} is not a number, so it cannot "
                           f"be converted from {unit} to {target}")
    no_unit = of_test & has_result & frame[unit_col].isna()
    if no_unit.any():
        _unconvertible(outcome, study, domain, frame, no_unit, testcd, target, "no-unit",
                       f"the result has no {unit_col}, so it cannot be brought to {target}")
    return frame


def _unconvertible(outcome: ResultsOutcome, study: str, domain: str, frame: pd.DataFrame,
                   rows: pd.Series, testcd: str, target: str, reason: str,
                   message: str) -> None:
    seq_col, unit_col = f"{domain}SEQ", f"{domain}STRESU"
    for index in frame.index[rows]:
        usubjid = frame.at[index, "USUBJID"] if "USUBJID" in frame else None
        seq = frame.at[index, seq_col] if seq_col in frame else None
        unit = frame.at[index, unit_col]
        outcome.unconvertible.append(Unconvertible(
            study, domain, optional_text(usubjid), optional_float(seq), testcd,
            optional_text(unit), target, reason, message))
