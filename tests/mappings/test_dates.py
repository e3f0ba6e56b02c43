import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhircdisc.mappings.dates import (
    DateFormatError,
    age_in_years,
    dtc_to_fhir,
    fhir_to_dtc,
    is_dtc,
    study_day,
)


@pytest.mark.parametrize(("fhir", "sdtm"), [
    ("2020", "2020"),
    ("2020-06", "2020-06"),
    ("2020-06-14", "2020-06-14"),
    ("2020-06-14T08:00:00+04:30", "2020-06-14T08:00:00"),
    ("2020-06-14T08:00:00Z", "2020-06-14T08:00:00"),
    ("2020-06-14T08:00:00.123-05:00", "2020-06-14T08:00:00.123"),
])
def test_fhir_dates_keep_their_precision_and_drop_the_offset(fhir, sdtm):
    assert fhir_to_dtc(fhir) == sdtm


@pytest.mark.parametrize("bad", ["2020-13-01", "2020-02-30", "14/06/2020", "2020-6-1", "",
                                 "20200614"])
def test_non_iso_dates_are_refused(bad):
    with pytest.raises(DateFormatError):
        fhir_to_dtc(bad)


def test_study_day_has_no_day_zero():
    assert study_day("2020-04-06", "2020-04-06") == 1
    assert study_day("2020-04-05", "2020-04-06") == -1
    assert study_day("2020-04-10T08:00", "2020-04-06") == 5
    assert study_day("2020-04", "2020-04-06") is None


def test_age_from_partial_birth_dates():
    assert age_in_years("1970-06-15", "2020-06-14") == 49
    assert age_in_years("1970-06-15", "2020-06-15") == 50
    assert age_in_years("1970-01", "2020-06-15") == 50      # any day of Jan 1970 gives 50
    assert age_in_years("1970-06", "2020-06-15") is None    # 49 or 50: not guessed
    assert age_in_years("1970", "2020-12-31") == 50


@given(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2100, 12, 31)),
       st.one_of(st.none(), st.times()), st.sampled_from(["Z", "+04:30", "-05:00"]),
       st.sampled_from([4, 7, 10]))
def test_round_trip_sdtm_fhir_sdtm(day, time, offset, cut):
    dtc = day.isoformat()[:cut] if time is None else f"{day.isoformat()}T{time:%H:%M:%S}"
    assert is_dtc(dtc)
    assert fhir_to_dtc(dtc_to_fhir(dtc, offset if offset != "Z" else "+00:00")) == dtc


@given(st.dates(min_value=dt.date(1950, 1, 1), max_value=dt.date(2050, 1, 1)),
       st.integers(min_value=-400, max_value=400))
def test_study_day_matches_calendar_difference(ref, offset):
    event = ref + dt.timedelta(days=offset)
    day = study_day(event.isoformat(), ref.isoformat())
    assert day == (offset + 1 if offset >= 0 else offset)
    assert day != 0


_days = st.sampled_from(["2021-05-06", "2020-02-29", "2021-02-29", "2021-02-30", "2021-13-01",
                         "2021-00-10", "2021-05-32", "\u0662\u0660\u0662\u0661-05-06",
                         "2021-05", "2021", "21-05-06", "2021/05/06"])
_times = st.sampled_from(["07", "07:08", "07:08:09", "23:59:60", "24:00:00", "07:60",
                          "07:08:09.5", "07:08:09.1234567891", "7:08", ""])
_zones = st.sampled_from(["", "Z", "-05:00", "+14:00", "+14:30", "+13:59", "+5:00", "z"])
_texts = st.one_of(
    st.tuples(st.sampled_from(["", " ", "\n"]), _days, st.sampled_from(["T", "t", " ", ""]),
              _times, _zones, st.sampled_from(["", " ", "x"])).map("".join),
    st.text(alphabet="0123456789-T:+Z. ", max_size=30))


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_texts)
def test_cached_parts_convert_as_the_whole_pattern(text: str) -> None:
    """The day-and-time fast path (cached per part) gives the whole pattern's value, or
    its error, for any text: valid or not, seen before or not."""
    from fhircdisc.mappings.dates import _parse_fhir_date

    for _ in range(2):                       # the second time from the caches
        try:
            expected: object = _parse_fhir_date(text)
        except DateFormatError as exc:
            expected = str(exc)
        try:
            got: object = fhir_to_dtc(text)
        except DateFormatError as exc:
            got = str(exc)
        assert got == expected


def _dtc_or_none(value: object) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return fhir_to_dtc(value)
    except DateFormatError:
        return None


_offset_times = st.builds(
    lambda year, month, day, hour, minute, second, sign, off_hour, off_minute:
    f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
    f"{sign}{off_hour:02d}:{off_minute:02d}",
    st.integers(0, 9999), st.integers(0, 14), st.integers(0, 32), st.integers(0, 25),
    st.integers(0, 61), st.integers(0, 61), st.sampled_from("+-x"), st.integers(0, 15),
    st.integers(0, 60))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_offset_times, _offset_times, _texts, st.none(), st.just(""),
                          st.integers(0, 10)), max_size=40))
def test_dates_of_a_batch_convert_one_by_one(values: list[object]) -> None:
    """``dtc_values``, which checks the usual dateTime form of every value at once, gives
    each value's ``fhir_to_dtc`` (None where it refuses one, or for a value that is not
    text): leap days, months, hours and offsets out of range, other forms among them."""
    from fhircdisc.mappings.dates import dtc_values

    assert dtc_values(values) == [_dtc_or_none(value) for value in values]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_offset_times, min_size=1, max_size=40))
def test_a_batch_of_usual_length_converts_one_by_one(values: list[str]) -> None:
    """A batch of values all of the usual length (checked together as rows of
    characters) gives each value's ``fhir_to_dtc``."""
    from fhircdisc.mappings.dates import dtc_values

    assert dtc_values(values) == [_dtc_or_none(value) for value in values]


def test_values_one_short_and_one_long_are_not_read_across() -> None:
    """Two values whose text, joined, lines up as two usual dateTimes: each is still read
    on its own (neither is one)."""
    from fhircdisc.mappings.dates import dtc_values

    short, long = "2021-01-01T00:00:00-05:0", "22021-01-01T00:00:00-05:00"
    assert dtc_values([short, long]) == [None, None]
    assert dtc_values([short, long, "2021-01-01T00:00:00-05:00"]) == [
        None, None, "2021-01-01T00:00:00"]


def test_usual_datetimes_of_a_batch() -> None:
    from fhircdisc.mappings.dates import dtc_values

    assert dtc_values(["2024-02-29T23:59:60+14:00", "2023-02-29T10:00:00+00:00",
                       "1900-02-29T10:00:00-05:00", "2000-02-29T10:00:00-05:00",
                       "2021-04-31T10:00:00+01:00", "2021-01-01T10:00:00+14:30",
                       "0000-01-01T00:00:00+00:00", "2021-01-01T10:00:00-13:59"]) == [
        "2024-02-29T23:59:60", None, None, "2000-02-29T10:00:00", None, None, None,
        "2021-01-01T10:00:00"]
