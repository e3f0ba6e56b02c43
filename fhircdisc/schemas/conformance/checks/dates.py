"""ISO 8601 dates (SDTMIG 3.4 section 4.4.2): format of every *DTC value; start not after end."""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np

from fhircdisc.column_values import ColumnValues
from fhircdisc.converters.datasets import is_missing
from fhircdisc.mappings.dates import COMPLETE_FORMS, complete_dates, is_dtc
from fhircdisc.schemas.conformance.checks.registry import check, rows
from fhircdisc.schemas.conformance.context import Dataset, Hit, Params, Skip, Study

# a date/time with missing middle components shown as '-' ("2003---15", "--12-15",
# "-----T07:15"); a missing right end is truncated instead, never dashed
_MISSING_MIDDLE = re.compile(
    r"(\d{4}|-)-(0[1-9]|1[0-2]|-)-(0[1-9]|[12]\d|3[01]|-)"
    r"(T([01]\d|2[0-3]|-)(:([0-5]\d|-)(:([0-5]\d(\.\d{1,9})?|-))?)?)?\Z"
)
_DURATION = re.compile(
    r"P(?=[\dT])(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?\Z"
)


def valid_dtc(value: str) -> bool:
    """An SDTM ISO 8601 date/time: complete or right-truncated, with missing middle
    components as '-', or an interval ``start/end`` of such values or a duration."""
    if is_dtc(value):
        return True
    if "/" in value:
        parts = value.split("/")
        return (len(parts) == 2 and all(valid_dtc(x) or _DURATION.match(x) for x in parts)
                and not all(_DURATION.match(x) for x in parts))
    dashed = value.startswith("-") or any(m in value for m in ("--", "T-", ":-"))
    return dashed and bool(_MISSING_MIDDLE.match(value)) and not value.endswith("-")


def valid_dtcs(values: list[str]) -> np.ndarray:
    """:func:`valid_dtc` of each value; complete dates and date/times checked all at once
    as arrays of characters, the other values one by one."""
    verdicts = np.zeros(len(values), dtype=bool)
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    joined = "".join(values)
    if joined.isascii():           # (a complete date is ASCII: any other value is not one)
        # the values' characters one after the other, each value's as a row of its own
        data = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
        starts = np.cumsum(lengths) - lengths
        for length in COMPLETE_FORMS:
            places = np.flatnonzero(lengths == length)
            if len(places) == len(values):
                verdicts[:] = complete_dates(data.reshape(len(values), length))
            elif len(places):
                chars = data[starts[places, None] + np.arange(length)]
                verdicts[places] = complete_dates(chars)
    return _rest_one_by_one(values, verdicts)


def _rest_one_by_one(values: list[str], verdicts: np.ndarray) -> np.ndarray:
    """``verdicts``, each value not found valid yet checked with :func:`valid_dtc`."""
    for place in np.flatnonzero(~verdicts).tolist():
        verdicts[place] = valid_dtc(values[place])
    return verdicts


def valid_values(values: ColumnValues) -> np.ndarray:
    """Where the column's value is a valid ISO 8601 text (:func:`valid_dtcs` of its
    distinct texts); checked from their characters when the codes carry them (dates of
    one length, as sorted for --SEQ), without reading each text again."""
    chars = values.chars
    if chars is None or chars.shape[1] not in COMPLETE_FORMS or not values.all_text:
        return values.texts_where(valid_dtcs)
    return values.spread(_rest_one_by_one(values.uniques, complete_dates(chars)))


@check("iso8601_dates")
def iso8601_dates(ds: Dataset, p: Params, study: Study) -> Iterator[Hit]:
    """Every value of every *DTC variable is ISO 8601 (partial dates allowed)."""
    names = [str(c) for c in ds.df.columns if str(c).endswith("DTC")]
    if not names:
        raise Skip("no *DTC variable")
    for name in names:
        values = ds.values(name)
        for row in rows(values.present() & ~valid_values(values)):
            value = ds.cell(name, row)
            if not is_missing(value):
                yield Hit(row=row, variable=name, value=value)


def _comparable(start: object, end: object) -> tuple[str, str] | None:
    """Both values cut to their common precision, or None when they cannot be compared."""
    if not (isinstance(start, str) and isinstance(end, str) and is_dtc(start) and is_dtc(end)):
        return None
    size = min(len(start), len(end))
    return start[:size], end[:size]


@check("start_not_after_end", required=("start", "end"), fields=("end_variable", "end_value"))
def start_not_after_end(ds: Dataset, p: Params, study: Study) -> Iterator[Hit]:
    """``start`` <= ``end`` where both are known to the same precision (2012-11 vs
    2012-10-05 compares months; 2012-11 vs 2012-11-05 cannot be ordered)."""
    start_name, end_name = p.name("start"), p.name("end")
    starts, ends = ds.column(start_name).tolist(), ds.column(end_name).tolist()
    for row, (start, end) in enumerate(zip(starts, ends, strict=True)):
        pair = _comparable(start, end)
        if pair is not None and pair[0] > pair[1]:
            yield Hit(row=row, variable=start_name, value=start,
                      fields={"end_variable": end_name, "end_value": end})
