"""Plain Observation lines read a batch at a time.

:meth:`ObservationLane.read_line` reads a line in a few dozen Python steps. Most lines of
a Bulk Data export are alike: a quantity result, one date, a subject and a line key
already seen. So a batch of lines is read column by column: each step runs once over the
batch, in C where it can (``map`` with attribute getters and dict look-ups, the dates with
numpy). Subjects and line templates not in the lane's caches yet are worked out as
``read_line`` works them out, and the lines ``read_line`` reports from their subject or
template alone are reported from the batch. A line of another kind is left to
``read_line`` and the ways after it, in its place among the others: a batch gives
exactly the rows and reports ``read_line`` would.
"""

from __future__ import annotations

from itertools import compress, repeat
from math import isfinite
from operator import and_, attrgetter, is_, is_not, itemgetter, not_
from typing import Any, NamedTuple, cast

from fhircdisc.converters.fhir_to_sdtm import EXCLUDED_STATUS
from fhircdisc.converters.lane_block import DERIVED_TEXT
from fhircdisc.converters.observation_lane import DECLINED, LineFailure, ObservationLane
from fhircdisc.converters.observation_lines import orjson_number
from fhircdisc.mappings.algorithms import number_text
from fhircdisc.mappings.compiled import PlainTemplate
from fhircdisc.mappings.dates import dtc_values

#: lines read as one batch (``chunk.convert_lines``), and lines decoded at a time: a
#: batch's columns are worked out over all its lines (numpy and the look-ups pay per
#: call), while its decoded lines (about 1 kB each) are read in parts that stay in a
#: core's cache. Decoding 1,024 at once made pass 2 slower than reading line by line
#: with two processes converting (benchmarks/compare.py, 2 workers: +9 %).
BATCH_LINES = 1024
DECODE_LINES = 256
#: a batch that reads less than this share of its lines is followed by this many
#: batches' worth of lines read one by one: the lines a batch leaves out cost more than
#: read one by one from the start (an export of which half the Patients are enrolled,
#: with panels and local test codes: pass 2 +13 % in batches)
BATCH_SHARE = 0.5
ALONE_BATCHES = 15

_TYPE = attrgetter("resourceType")
_STATUS = attrgetter("status")
_SUBJECT = attrgetter("subject")
_REFERENCE = attrgetter("reference")
_QUANTITY = attrgetter("valueQuantity")
_VALUE = attrgetter("value")
_COMPARATOR = attrgetter("comparator")
_ENCOUNTER = attrgetter("encounter")
_ID = attrgetter("id")
_DOMAIN = itemgetter(0)
_TEMPLATE = itemgetter(1)
_UNSEEN: Any = object()


class LineBatch(NamedTuple):
    """The lines of a batch read here, as columns: their places in the batch (in order)
    and, per line, its domain, template, subject, own values in the order
    ``CompiledSpec.own_values`` gives them (a column each: not-done flag, date, result as
    text, as a number; the text :data:`~fhircdisc.converters.lane_block.DERIVED_TEXT`
    where it is the number's), id and visit values (None: the template's). ``decoded``: lines
    left out as ``LineShape.decode`` gives them, by place, where that is known (a line
    that does not decode: None); ``failures``: by place, the lines left out that
    ``read_line`` reports as not mapping from their subject or template alone, and
    why."""

    taken: list[int]
    domains: list[str]
    templates: list[PlainTemplate]
    subjects: list[Any]
    own: list[list[Any]]
    ids: list[str | None]
    visits: list[tuple[Any, ...] | None]
    decoded: dict[int, Any]
    failures: dict[int, LineFailure]


def read_batch(lane: ObservationLane, lines: list[bytes]) -> LineBatch:
    """The lines of ``lines`` that are plain Observations of the common kind, read as
    ``lane.read_line`` would read each, as columns (:class:`LineBatch`). The subjects and
    line templates not in the lane's caches yet are worked out as ``read_line`` works
    them out, so that a batch takes the first lines of a subject or a test too."""
    date = lane.batch_date
    decoded: dict[int, Any] = {}
    if date is None or not lane.shape.one_unit:
        return LineBatch([], [], [], [], [[], [], [], []], [], [], decoded, {})
    read = _Read()
    for start in range(0, len(lines), DECODE_LINES):
        read.take(lane, lines[start:start + DECODE_LINES], start, date, decoded)
    places, statuses, keys, lines = read.places, read.statuses, read.keys, read.lines
    subjects = read.subjects
    # the lines read_line reports from their subject or template
    failures: dict[int, LineFailure] = {}
    for place, key, line, reference, rid in read.not_enrolled:
        failure = lane.line_failure(key, line, None, reference, rid, False, None)
        if failure is not None:
            failures[place] = failure
    entries: list[Any] = list(map(lane.batch_entries.get, keys))
    if any(map(is_, entries, repeat(None))):
        entries = [lane.batch_entry(key, line) if entry is None else entry
                   for entry, key, line in zip(entries, keys, lines, strict=True)]
    dates = dtc_values(read.dates)
    texts, numbers = _results(read.values)
    # own values as own_values reads them: a result without a comparator, a date
    own_read = _where_none(_where_set(_where_set([True] * len(places), texts), dates),
                           read.comparators)
    # a line read here besides: a template kept for batches
    keep = _where_set(own_read, entries)
    if keep is not own_read:
        for at in compress(range(len(places)), map(is_, entries, repeat(None))):
            failure = lane.line_failure(keys[at], lines[at], subjects[at],
                                        read.references[at], read.ids[at], own_read[at],
                                        read.encounters[at])
            if failure is not None:
                failures[places[at]] = failure
    keep = list(keep)                   # its own: the visits below change it
    visits: list[Any] = [None] * len(places)
    encounters = read.encounters
    if any(map(is_not, encounters, repeat(None))):
        for at in compress(range(len(places)), map(is_not, encounters, repeat(None))):
            if keep[at]:
                domain, _, spec = entries[at]
                visits[at] = visit = lane.visit_of(encounters[at], domain, spec)
                keep[at] = visit is not DECLINED
    ids = read.ids
    if not all(keep):
        places, statuses, subjects, entries, dates, texts, numbers, visits, ids = _where(
            keep, places, statuses, subjects, entries, dates, texts, numbers, visits, ids)
    flags: list[Any] = [None] * len(places)
    if "cancelled" in statuses:
        flags = ["NOT DONE" if status == "cancelled" else None for status in statuses]
    return LineBatch(places, list(map(_DOMAIN, entries)), list(map(_TEMPLATE, entries)),
                     subjects, [flags, dates, texts, numbers], ids, visits, decoded,
                     failures)



class _Read:
    """What a batch reads of its lines, decoded a part at a time: per line that can be
    read in a batch (an Observation of a status that maps, with a quantity and an
    enrolled subject), its place, text, key, and the columns ``read_batch`` works on;
    per line of a subject not enrolled, its place, key, text, subject reference and id."""

    def __init__(self) -> None:
        self.places: list[int] = []
        self.lines: list[bytes] = []
        self.keys: list[tuple[Any, ...]] = []
        self.statuses: list[Any] = []
        self.references: list[Any] = []
        self.values: list[Any] = []
        self.comparators: list[Any] = []
        self.dates: list[Any] = []
        self.ids: list[str | None] = []
        self.encounters: list[Any] = []
        self.subjects: list[Any] = []
        self.not_enrolled: list[tuple[int, tuple[Any, ...], bytes, str, str | None]] = []

    def take(self, lane: ObservationLane, lines: list[bytes], first: int, date: str,
             decoded: dict[int, Any]) -> None:
        """Decode ``lines`` (from place ``first`` of the batch) and keep what is read of
        them; a line that cannot be read in a batch goes into ``decoded`` by place."""
        objs = lane.shape.decode_all(lines)
        places = list(range(first, first + len(lines)))
        # what the columns below are read from: a decoded line, its subject and quantity
        if any(map(is_, objs, repeat(None))):
            keep = list(map(is_not, objs, repeat(None)))
            decoded.update((place, None) for place in compress(places, map(not_, keep)))
            places, objs, lines = _where(keep, places, objs, lines)
        references, quantities = list(map(_SUBJECT, objs)), list(map(_QUANTITY, objs))
        statuses = list(map(_STATUS, objs))
        subject_references: list[Any] = list(map(_REFERENCE, references)) \
            if not any(map(is_, references, repeat(None))) \
            else [None if subject is None else subject.reference for subject in references]
        # read_line reads on past its first checks: Observations of a status that maps,
        # with a subject reference; a batch, with a quantity too
        # (the shape takes no other resource type than Observation: the type is it or None)
        keep = _where_set(_where_set(_where_set([True] * len(objs), list(map(_TYPE, objs))),
                                     subject_references), quantities)
        if any(status in statuses for status in EXCLUDED_STATUS):
            keep = [good and status not in EXCLUDED_STATUS
                    for good, status in zip(keep, statuses, strict=True)]
        if not all(keep):
            decoded.update(zip(compress(places, map(not_, keep)),
                               compress(objs, map(not_, keep)), strict=True))
            places, objs, lines, statuses, subject_references, quantities = _where(
                keep, places, objs, lines, statuses, subject_references, quantities)
        keys = lane.shape.unit_keys(objs)
        assert keys is not None
        ids = list(map(_ID, objs))
        subjects = list(map(lane.subjects.get, subject_references, repeat(_UNSEEN)))
        if any(map(is_, subjects, repeat(_UNSEEN))):
            subjects = [lane.subject_of(reference) if subject is _UNSEEN else subject
                        for subject, reference in zip(subjects, subject_references,
                                                      strict=True)]
        if any(map(is_, subjects, repeat(None))):
            enrolled = list(map(is_not, subjects, repeat(None)))
            others = list(map(not_, enrolled))
            self.not_enrolled += zip(*(compress(column, others) for column in (
                places, keys, lines, subject_references, ids)), strict=True)
            places, objs, lines, statuses, subject_references, quantities, keys, ids, \
                subjects = _where(enrolled, places, objs, lines, statuses, subject_references,
                                  quantities, keys, ids, subjects)
        encounters = list(map(_ENCOUNTER, objs))
        if not all(map(is_, encounters, repeat(None))):
            encounters = [None if encounter is None else encounter.reference
                          for encounter in encounters]
        self.places += places
        self.lines += lines
        self.keys += keys
        self.statuses += statuses
        self.references += subject_references
        self.values += map(_VALUE, quantities)
        self.comparators += map(_COMPARATOR, quantities)
        self.dates += map(attrgetter(date), objs)
        self.ids += ids
        self.encounters += encounters
        self.subjects += subjects


def _results(values: list[Any]) -> tuple[list[str | None], list[float | None]]:
    """Per ``valueQuantity.value`` (a float, an int or None) with no comparator: the
    result as text and as a number as ``CompiledSpec.own_values`` gives them (the text
    :data:`~fhircdisc.converters.lane_block.DERIVED_TEXT` when it is the number's); text
    None where it declines the value."""
    if values and not any(map(is_, values, repeat(None))) \
            and set(map(type, values)) <= _NUMBER_TYPES:
        floats = list(map(float, values))
        # finite, and an int below 1e15 is exactly its float, written alike ("140"): the
        # texts are the numbers', made for each distinct number once the rows are in a
        # dataset piece (``LaneBlock.column``)
        if max(map(abs, floats)) < 1e15:
            return [DERIVED_TEXT] * len(floats), cast("list[float | None]", floats)
    texts: list[str | None] = []
    numbers: list[float | None] = []
    for value in values:
        if value.__class__ is float:
            texts.append(number_text(value))
            numbers.append(value if isfinite(value) else None)
        elif value.__class__ is int and orjson_number(value):
            texts.append(number_text(value))
            numbers.append(float(value))
        else:
            texts.append(None)
            numbers.append(None)
    return texts, numbers


_NUMBER_TYPES = frozenset({float, int})


def _where_set(mask: list[bool], column: list[Any]) -> list[bool]:
    """``mask``, false too where ``column`` holds None (``mask`` itself when it holds
    none)."""
    if not any(map(is_, column, repeat(None))):
        return mask
    return list(map(and_, mask, map(is_not, column, repeat(None))))


def _where_none(mask: list[bool], column: list[Any]) -> list[bool]:
    """``mask``, false too where ``column`` holds something else than None (``mask``
    itself when it holds None only)."""
    if not any(map(is_not, column, repeat(None))):
        return mask
    return list(map(and_, mask, map(is_, column, repeat(None))))


def _where(keep: list[bool], *columns: list[Any]) -> Any:
    """Each of ``columns`` with only the items where ``keep`` is true."""
    return tuple(list(compress(column, keep)) for column in columns)
