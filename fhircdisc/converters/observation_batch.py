"""Plain Observation lines read a batch at a time.

:meth:`ObservationLane.read_line` reads a line in a few dozen Python steps. Most lines of
a Bulk Data export are alike: a quantity result, one date, a subject and a line key
already seen. So a batch of lines is read column by column: each step runs once over the
batch, in C where it can (``map`` with attribute getters and dict look-ups, the dates with
numpy). A line that is not of that common kind, or whose subject, template or visit is
not in the lane's caches yet, is left to ``read_line`` and the ways after it, in its place
among the others: a batch gives exactly the rows ``read_line`` would.
"""

from __future__ import annotations

from itertools import compress, repeat
from math import isfinite
from operator import and_, attrgetter, is_, is_not, itemgetter
from typing import Any, NamedTuple

from fhircdisc.converters.fhir_to_sdtm import EXCLUDED_STATUS
from fhircdisc.converters.observation_lane import DECLINED, ObservationLane
from fhircdisc.converters.observation_lines import orjson_number
from fhircdisc.mappings.algorithms import number_text, number_texts
from fhircdisc.mappings.compiled import PlainTemplate
from fhircdisc.mappings.dates import dtc_values

#: lines read as one batch (``chunk.convert_lines``): a batch's decoded lines (about
#: 1 kB each) stay in a core's cache while every step goes over them; 1,024 did not, with
#: two processes converting (benchmarks/compare.py, 2 workers: pass 2 +9 % against
#: reading line by line, where 256 gave -10 %; 512 as 256, 128 a little slower)
BATCH_LINES = 256

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
    text, as a number), id and visit values (None: the template's). ``decoded``: every
    line of the batch as ``LineShape.decode`` gives it, for the lines left out."""

    taken: list[int]
    domains: list[str]
    templates: list[PlainTemplate]
    subjects: list[Any]
    own: list[list[Any]]
    ids: list[str | None]
    visits: list[tuple[Any, ...] | None]
    decoded: list[Any]


def read_batch(lane: ObservationLane, lines: list[bytes]) -> LineBatch:
    """The lines of ``lines`` that are plain Observations of the common kind, read as
    ``lane.read_line`` would read each, as columns (:class:`LineBatch`). The subjects and
    line templates not in the lane's caches yet are worked out as ``read_line`` works
    them out, so that a batch takes the first lines of a subject or a test too."""
    decoded = lane.shape.decode_all(lines)
    date = lane.batch_date
    if date is None:
        return LineBatch([], [], [], [], [[], [], [], []], [], [], decoded)
    places = list(range(len(lines)))
    objs = decoded
    # what the columns below are read from: a decoded line, its subject and quantity
    if any(map(is_, objs, repeat(None))):
        places, objs = _where(list(map(is_not, objs, repeat(None))), places, objs)
    references, quantities = list(map(_SUBJECT, objs)), list(map(_QUANTITY, objs))
    if any(map(is_, references, repeat(None))) or any(map(is_, quantities, repeat(None))):
        keep = list(map(and_, map(is_not, references, repeat(None)),
                        map(is_not, quantities, repeat(None))))
        places, objs, references, quantities = _where(keep, places, objs, references,
                                                      quantities)
    # lines read_line reads on past its first checks: Observations of a status that maps,
    # with a subject reference
    statuses = list(map(_STATUS, objs))
    subject_references = list(map(_REFERENCE, references))
    keep = [kind == "Observation" for kind in map(_TYPE, objs)]
    if any(map(is_, subject_references, repeat(None))):
        keep = list(map(and_, keep, map(is_not, subject_references, repeat(None))))
    if any(status in statuses for status in EXCLUDED_STATUS):
        keep = [good and status not in EXCLUDED_STATUS
                for good, status in zip(keep, statuses, strict=True)]
    if not all(keep):
        places, objs, statuses, subject_references, quantities = _where(
            keep, places, objs, statuses, subject_references, quantities)
    if len(places) < len(lines):
        lines = [lines[place] for place in places]
    keys = lane.shape.unit_keys(objs, lines)
    if keys is None:
        return LineBatch([], [], [], [], [[], [], [], []], [], [], decoded)
    subjects = list(map(lane.subjects.get, subject_references, repeat(_UNSEEN)))
    if any(map(is_, subjects, repeat(_UNSEEN))):
        subjects = [lane.subject_of(reference) if subject is _UNSEEN else subject
                    for subject, reference in zip(subjects, subject_references, strict=True)]
    entries: list[Any] = list(map(lane.batch_entries.get, keys))
    if any(map(is_, entries, repeat(None))):
        entries = [lane.batch_entry(key, obj, line) if entry is None else entry
                   for entry, key, obj, line in zip(entries, keys, objs, lines, strict=True)]
    values = list(map(_VALUE, quantities))
    dates = dtc_values(list(map(attrgetter(date), objs)))
    texts, numbers = _results(values)
    # a line read here besides: an enrolled subject, a template kept for batches, a
    # result as own_values reads it without a comparator, a date it takes
    keep = list(map(is_not, subjects, repeat(None)))
    for column in (entries, texts, dates):
        if any(map(is_, column, repeat(None))):
            keep = list(map(and_, keep, map(is_not, column, repeat(None))))
    comparators = list(map(_COMPARATOR, quantities))
    if any(map(is_not, comparators, repeat(None))):
        keep = list(map(and_, keep, map(is_, comparators, repeat(None))))
    visits: list[Any] = [None] * len(objs)
    encounters = list(map(_ENCOUNTER, objs))
    if any(map(is_not, encounters, repeat(None))):
        for at in compress(range(len(objs)), map(is_not, encounters, repeat(None))):
            if keep[at]:
                domain, _, spec = entries[at]
                visits[at] = visit = lane.line_visit(objs[at], domain, spec)
                keep[at] = visit is not DECLINED
    if not all(keep):
        places, objs, statuses, subjects, entries, dates, texts, numbers, visits = _where(
            keep, places, objs, statuses, subjects, entries, dates, texts, numbers, visits)
    flags: list[Any] = [None] * len(objs)
    if "cancelled" in statuses:
        flags = ["NOT DONE" if status == "cancelled" else None for status in statuses]
    return LineBatch(places, list(map(_DOMAIN, entries)), list(map(_TEMPLATE, entries)),
                     subjects, [flags, dates, texts, numbers], list(map(_ID, objs)),
                     visits, decoded)


def _results(values: list[Any]) -> tuple[list[str | None], list[float | None]]:
    """Per ``valueQuantity.value`` (a float, an int or None) with no comparator: the
    result as text and as a number as ``CompiledSpec.own_values`` gives them; text None
    where it declines the value."""
    if values and not any(map(is_, values, repeat(None))) \
            and set(map(type, values)) <= _NUMBER_TYPES:
        floats = list(map(float, values))
        # finite, and an int below 1e15 is exactly its float, written alike ("140")
        if max(map(abs, floats)) < 1e15:
            return [*number_texts(floats)], [*floats]
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


def _where(keep: list[bool], *columns: list[Any]) -> Any:
    """Each of ``columns`` with only the items where ``keep`` is true."""
    return tuple(list(compress(column, keep)) for column in columns)
