"""Define-XML DataType, Length and SignificantDigits of a column, inferred from its values.

* ``Char`` -> ``text`` with Length = the longest value in UTF-8 bytes (at least 1), except
  ISO 8601 variables: ``--DTC`` becomes ``date`` when every value is a complete date,
  ``datetime`` when every value is a complete date or a complete date with a time
  (as CDISC's own Define-XML 2.1 example does for LBDTC), ``partialDate`` /
  ``partialDatetime`` when some are truncated, and ``text`` when any value is not
  ISO 8601; ``--DUR`` / ``--ELTM`` become ``durationDatetime`` when every value is an
  ISO 8601 duration. An empty ``--DTC`` column is ``datetime``. The ISO 8601 types carry
  no Length (the Define-XML specification gives Length only for text, integer, float).
* ``Num`` -> ``integer`` when every value is integral, else ``float``. As in ODM and
  CDISC's examples, a number's Length counts its digits (no sign, no point) and
  SignificantDigits the digits after the point; values are written out positionally with
  at most 12 significant digits.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

TEXT_TYPES = frozenset({"text", "string"})
NUMERIC_TYPES = frozenset({"integer", "float", "double", "hexFloat", "base64Float"})
ISO8601_TYPES = frozenset({"date", "time", "datetime", "partialDate", "partialTime",
                           "partialDatetime", "incompleteDatetime", "incompleteDate",
                           "incompleteTime", "durationDatetime", "intervalDatetime"})

_TIME = r"T([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?"
_DATE = r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
_FULL_DATE = re.compile(rf"{_DATE}")
_FULL_DATETIME = re.compile(rf"{_DATE}{_TIME}")
_PARTIAL_DATE = re.compile(r"\d{4}(-(0[1-9]|1[0-2]))?")
_PARTIAL_DATETIME = re.compile(rf"{_DATE}T([01]\d|2[0-3])")
_DURATION = re.compile(
    r"P(?=\d|T\d)(\d+(\.\d+)?Y)?(\d+(\.\d+)?M)?(\d+(\.\d+)?W)?(\d+(\.\d+)?D)?"
    r"(T(?=\d)(\d+(\.\d+)?H)?(\d+(\.\d+)?M)?(\d+(\.\d+)?S)?)?")


@dataclass(frozen=True)
class ItemType:
    """What an ItemDef says about a variable's values."""

    data_type: str
    length: int | None = None
    significant_digits: int | None = None


def char_length(values: Iterable[str | None]) -> int:
    """The longest value in UTF-8 bytes, at least 1."""
    return max((len(v.encode("utf-8")) for v in values if v), default=0) or 1


def _iso_class(value: str) -> str | None:
    if _FULL_DATE.fullmatch(value):
        return "date"
    if _FULL_DATETIME.fullmatch(value):
        return "datetime"
    if _PARTIAL_DATE.fullmatch(value):
        return "partialDate"
    if _PARTIAL_DATETIME.fullmatch(value):
        return "partialDatetime"
    return None


def _dtc_type(values: list[str]) -> str:
    if not values:
        return "datetime"
    seen = set()
    for value in values:
        kind = _iso_class(value)
        if kind is None:
            return "text"
        seen.add(kind)
    if seen <= {"date"}:
        return "date"
    if seen <= {"date", "datetime"}:
        return "datetime"
    if seen <= {"date", "partialDate"}:
        return "partialDate"
    return "partialDatetime"


def char_type(name: str, values: Iterable[str | None]) -> ItemType:
    """ItemDef type of a Char variable named ``name`` holding ``values``."""
    present = [v for v in values if v]
    if name.endswith("DTC"):
        kind = _dtc_type(present)
        if kind != "text":
            return ItemType(kind)
    elif (name.endswith("DUR") or name.endswith("ELTM")) and present \
            and all(_DURATION.fullmatch(v) for v in present):
        return ItemType("durationDatetime")
    return ItemType("text", char_length(present))


def _positional(value: float) -> str:
    """``value`` written out without exponent, at most 12 significant digits (SAS BEST12.),
    so that binary artefacts such as 0.30000000000000004 do not count as precision."""
    return np.format_float_positional(float(f"{value:.12g}"), trim="-")


def digits(text: str) -> tuple[int, int]:
    """(all digits, digits after the point) of a number written out: "-12.50" -> (4, 2)."""
    whole, _, fraction = text.strip().lstrip("+-").partition(".")
    return len(whole) + len(fraction), len(fraction)


def num_type(values: Iterable[float]) -> ItemType:
    """ItemDef type of a Num variable holding ``values`` (NaN = missing)."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if all(v.is_integer() for v in finite):
        length = max((digits(str(int(v)))[0] for v in finite), default=1)
        return ItemType("integer", max(length, 1))
    counts = [digits(_positional(v)) for v in finite]
    return ItemType("float", max(c[0] for c in counts), max(c[1] for c in counts))


def is_integral(value: float) -> bool:
    """True for a finite whole number."""
    return math.isfinite(value) and float(value).is_integer()
