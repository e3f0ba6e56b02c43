"""FHIR date/dateTime/instant <-> SDTM ISO 8601 character dates.

SDTM --DTC values keep the precision that was recorded (``2020``, ``2020-06``,
``2020-06-14``, ``2020-06-14T08:00``, ``2020-06-14T08:00:00``). A FHIR dateTime
with a time carries a UTC offset; SDTM dates are the site's local clock time, so
the offset is dropped, not converted: ``2020-06-14T08:00:00+03:30`` becomes
``2020-06-14T08:00:00``. Going back to FHIR, a time without offset gets the
offset of the study (``+00:00`` unless told otherwise).
"""

from __future__ import annotations

import re
from datetime import date
from itertools import compress
from typing import Any, NamedTuple

import numpy as np

from fhircdisc.caches import remember

_FHIR_DATETIME = re.compile(
    r"^(?P<date>\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?)?)"
    r"(T(?P<time>([01]\d|2[0-3]):[0-5]\d(:([0-5]\d|60)(\.\d{1,9})?)?)"
    r"(?P<tz>Z|[+-]((0\d|1[0-3]):[0-5]\d|14:00))?)?$"
)
#: the parts of a ``_FHIR_DATETIME`` with a full date and a time
_FULL_DATE = re.compile(r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])")
_TIME_PART = re.compile(
    r"T(?P<time>([01]\d|2[0-3]):[0-5]\d(:([0-5]\d|60)(\.\d{1,9})?)?)"
    r"(Z|[+-]((0\d|1[0-3]):[0-5]\d|14:00))?"
)
_CACHE_LIMIT = 50_000
_DAYS: dict[str, bool] = {}
_TIMES: dict[str, str | None] = {}
_UNSEEN: Any = object()
_SDTM_DTC = re.compile(
    r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01])"
    r"(T([01]\d|2[0-3])(:[0-5]\d(:[0-5]\d(\.\d{1,9})?)?)?)?)?)?$"
)


class DateFormatError(ValueError):
    """A value that is not an ISO 8601 date or dateTime."""


def fhir_to_dtc(value: object) -> str:
    """Convert a FHIR date/dateTime/instant string to an SDTM --DTC value."""
    if isinstance(value, str):
        text = value.strip()
        if text[10:11] == "T":
            # a full date, then a time: the two parts are checked separately, each
            # distinct day and each distinct time (with its offset) once
            day, rest = text[:10], text[10:]
            valid = _DAYS.get(day)
            if valid is None:
                valid = _full_date(day)
            time = _TIMES.get(rest, _UNSEEN)
            if time is _UNSEEN:
                found = _TIME_PART.fullmatch(rest)
                time = remember(_TIMES, rest, found["time"] if found else None, _CACHE_LIMIT)
            if valid and time is not None:
                return f"{day}T{time}"
        elif len(text) == 10 and _full_date(text):       # a full date alone (birth dates)
            return text
    return _parse_fhir_date(value)


def dtc_values(values: list[Any]) -> list[str | None]:
    """:func:`fhir_to_dtc` of each of ``values``; None for a value it refuses and for one
    that is not a non-empty string.

    The usual dateTime of an export, ``YYYY-MM-DDThh:mm:ss`` and a ``+hh:mm`` offset, is
    checked and cut for every value of that length at once; any other value goes through
    :func:`fhir_to_dtc` alone.
    """
    if not values:
        return []
    try:
        lengths = list(map(len, values))
    except TypeError:                               # something else than text
        lengths = []
    if lengths.count(_OFFSET_LENGTH) == len(values):
        places = None                                  # (the usual export: every value)
        usual = values
    else:
        places = [place for place, value in enumerate(values)
                  if value.__class__ is str and len(value) == _OFFSET_LENGTH]
        usual = [values[place] for place in places]
    found: list[str | None]
    try:
        joined = "".join(usual)
    except TypeError:                               # text of another kind than str
        joined = ""
    if not usual or not joined.isascii():
        return [_dtc_or_none(value) for value in values]
    chars = np.frombuffer(joined.encode("ascii"), dtype=np.uint8).reshape(
        len(usual), _OFFSET_LENGTH)
    good = _offset_form(chars)
    # the first 19 characters of each row, as texts (made from 4-byte characters at once)
    cut = chars[:, :19].astype(np.uint32).view(_LOCAL_FORM).ravel().tolist()
    if places is None:
        found = cut
        rest = np.flatnonzero(~good).tolist()
    else:
        found = [None] * len(values)
        for place, text, ok in zip(places, cut, good.tolist(), strict=True):
            if ok:
                found[place] = text
        taken = set(compress(places, good.tolist()))
        rest = [place for place in range(len(values)) if place not in taken]
    for place in rest:
        found[place] = _dtc_or_none(values[place])
    return found


def _dtc_or_none(value: Any) -> str | None:
    if value.__class__ is not str or not value:
        return None
    try:
        return fhir_to_dtc(value)
    except DateFormatError:
        return None


#: ``2021-07-05T02:48:00-05:00``: what :func:`_offset_form` checks, and its --DTC (the
#: first 19 characters)
_OFFSET_LENGTH = 25
_LOCAL_FORM = np.dtype("<U19")


#: complete dates and date/times by length: where the digits are, and the marks between
COMPLETE_FORMS = {10: "dddd-dd-dd", 16: "dddd-dd-ddTdd:dd", 19: "dddd-dd-ddTdd:dd:dd"}


def _two_digits() -> np.ndarray:
    """Per two ASCII characters (first * 256 + second): the number they write when both
    are digits, else -1."""
    table = np.full(65536, -1, dtype=np.int16)
    for number in range(100):
        first, second = divmod(number, 10)
        table[(48 + first) * 256 + 48 + second] = number
    return table


_TWO_DIGITS = _two_digits()


class _Form(NamedTuple):
    """A fixed-width date/time form as rows of ASCII codes: where its two-digit numbers
    start (century, year, month, day, then the time's) and the highest value of each;
    where its marks are and which they are."""

    pairs: np.ndarray
    highs: np.ndarray
    marks: np.ndarray
    texts: np.ndarray


def _form(form: str, highs: list[int]) -> _Form:
    """``form`` written with ``d`` for a digit (in pairs) and ``s`` for a sign (not
    checked here)."""
    pairs: list[int] = []
    place = 0
    while place < len(form):
        if form[place] == "d":
            pairs.append(place)
        place += 2 if form[place] == "d" else 1
    return _Form(np.array(pairs), np.array(highs, dtype=np.int16),
                 np.array([place for place, mark in enumerate(form) if mark not in "ds"]),
                 np.frombuffer(form.replace("d", "").replace("s", "").encode(), dtype=np.uint8))


_HIGHS = [99, 99, 12, 31, 23, 59, 59]
_FORMS = {length: _form(form, _HIGHS[:form.count("d") // 2])
          for length, form in COMPLETE_FORMS.items()}
#: ``2021-07-05T02:48:00-05:00``: a complete date/time and an offset
_OFFSET = _form("dddd-dd-ddTdd:dd:ddsdd:dd", [*_HIGHS, 14, 59])
_MONTH_DAYS = np.array([0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int16)


def _checked(chars: np.ndarray, form: _Form) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ASCII codes: whether it is ``form`` with digits in range, a calendar
    date among them; and its two-digit numbers."""
    numbers = _TWO_DIGITS[chars[:, form.pairs].astype(np.uint16) * 256
                          + chars[:, form.pairs + 1]]
    ok = ((numbers >= 0) & (numbers <= form.highs)).all(axis=1)
    ok &= (chars[:, form.marks] == form.texts).all(axis=1)
    century, year, month, day = numbers[:, 0], numbers[:, 1], numbers[:, 2], numbers[:, 3]
    ok &= (month >= 1) & (day >= 1) & ((century > 0) | (year > 0))
    ok &= day <= _MONTH_DAYS[np.clip(month, 0, 12)]
    leap_days = np.flatnonzero(ok & (month == 2) & (day == 29))
    if len(leap_days):                              # the 29th of February: a leap year's
        full = century[leap_days].astype(np.int64) * 100 + year[leap_days]
        ok[leap_days] = (full % 4 == 0) & ((full % 100 != 0) | (full % 400 == 0))
    return ok, numbers


def complete_dates(chars: np.ndarray) -> np.ndarray:
    """Rows of ASCII codes (``uint8``, as many a row as the form's length) that are a
    valid complete date or date/time of their form."""
    return _checked(chars, _FORMS[chars.shape[1]])[0]


def _offset_form(chars: np.ndarray) -> np.ndarray:
    """Per row of ASCII codes (25 a row): whether it is a calendar date and a time with
    seconds (:func:`complete_dates`) and then an offset ``fhir_to_dtc`` takes, in exactly
    that form (ASCII digits, no fraction, no blanks). A leap second (``:60``), which
    ``fhir_to_dtc`` takes, is left to it."""
    good, numbers = _checked(chars, _OFFSET)
    sign = chars[:, 19]
    good &= (sign == ord("+")) | (sign == ord("-"))
    good &= (numbers[:, 7] < 14) | (numbers[:, 8] == 0)        # at most +-14:00
    return good


def _full_date(day: str) -> bool:
    """Whether ``day`` is a calendar date written in full (each distinct one checked once:
    :data:`_DAYS`)."""
    valid = _DAYS.get(day)
    if valid is None:
        valid = remember(_DAYS, day, _FULL_DATE.fullmatch(day) is not None
                         and _is_calendar_date(day), _CACHE_LIMIT)
    return valid


def _parse_fhir_date(value: object) -> str:
    """:func:`fhir_to_dtc` by the whole pattern."""
    if not isinstance(value, str):
        raise DateFormatError(f"expected an ISO 8601 date string, got {value!r}")
    match = _FHIR_DATETIME.match(value.strip())
    if not match:
        raise DateFormatError(f"{value!r} is not an ISO 8601 date or dateTime")
    day = match["date"]
    _check_calendar(day, value)
    if match["time"] is None:
        return day
    return f"{day}T{match['time']}"


def dtc_to_fhir(dtc: str, offset: str = "+00:00") -> str:
    """Convert an SDTM --DTC value to a FHIR date or dateTime (offset added to times)."""
    if not is_dtc(dtc):
        raise DateFormatError(f"{dtc!r} is not an ISO 8601 SDTM date")
    if "T" not in dtc:
        return dtc
    day, time = dtc.split("T", 1)
    if len(time) == 2:
        time += ":00:00"
    elif len(time) == 5:
        time += ":00"
    return f"{day}T{time}{offset}"


def is_dtc(value: str) -> bool:
    """Whether ``value`` is a well-formed SDTM ISO 8601 date (complete or partial)."""
    if not _SDTM_DTC.match(value):
        return False
    try:
        _check_calendar(value.split("T", 1)[0], value)
    except DateFormatError:
        return False
    return True


def _is_calendar_date(day: str) -> bool:
    try:
        date.fromisoformat(day)
    except ValueError:
        return False
    return True


def _check_calendar(day: str, original: str) -> None:
    if len(day) == 10 and not _is_calendar_date(day):
        raise DateFormatError(f"{original!r} is not a calendar date")


def date_part(dtc: str | None) -> date | None:
    """The complete calendar date of a --DTC value, or ``None`` when partial or missing."""
    if not dtc or len(dtc) < 10:
        return None
    try:
        return date.fromisoformat(dtc[:10])
    except ValueError:
        return None


def study_day(dtc: str | None, rfstdtc: str | None) -> int | None:
    """SDTM study day: no day 0; the reference start date is day 1."""
    event, ref = date_part(dtc), date_part(rfstdtc)
    if event is None or ref is None:
        return None
    delta = (event - ref).days
    return delta + 1 if delta >= 0 else delta


def age_in_years(birth: str | None, reference: str | None) -> int | None:
    """Completed years between a birth date and a reference date.

    A partial birth date gives an age only where every day it could stand for gives
    the same age; otherwise ``None``.
    """
    ref = date_part(reference)
    if not birth or ref is None:
        return None
    candidates = _bounds(birth[:10])
    if candidates is None:
        return None
    ages = {ref.year - b.year - ((ref.month, ref.day) < (b.month, b.day)) for b in candidates}
    return ages.pop() if len(ages) == 1 else None


def _bounds(partial: str) -> tuple[date, date] | None:
    try:
        if len(partial) == 10:
            d = date.fromisoformat(partial)
            return d, d
        if len(partial) == 7:
            year, month = int(partial[:4]), int(partial[5:7])
            start = date(year, month, 1)
            end = date(year + (month == 12), month % 12 + 1, 1)
            return start, date.fromordinal(end.toordinal() - 1)
        if len(partial) == 4:
            year = int(partial)
            return date(year, 1, 1), date(year, 12, 31)
    except ValueError:
        return None
    return None
