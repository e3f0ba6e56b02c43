"""The conversion report: what was read, what became rows, and what did not, with reasons.

Counts reconcile per resource type: ``read = mapped + context + unmapped``.
*mapped* resources produced at least one SDTM row; *context* resources were read
for what other rows need (ResearchSubject, Encounter, Consent, Medication,
Organization, Specimen, site-level ResearchStudy); *unmapped* ones are listed
with a reason. Entries that were not resources at all (a Bundle entry without a
resource, a resource without resourceType) count under ``(not a resource)``.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from operator import attrgetter
from pathlib import Path
from typing import Any

import orjson

from fhircdisc.caches import remember
from fhircdisc.report_runs import ItemRuns

NOT_A_RESOURCE = "(not a resource)"
STATUSES = ("mapped", "context", "unmapped")


_DOMAIN_RANK = {name: rank for rank, name in enumerate(("DM", "EX", "AE", "LB", "VS", "TS"))}
_DIGITS = re.compile(r"(\d+)")


def _natural(text: str) -> tuple[Any, ...]:
    """Sort key reading digit runs as numbers (``line 9`` before ``line 10``)."""
    # the split alternates text and digit runs: the runs are at the odd places (a "²" is a
    # digit to isdigit, not to the pattern, and int() refuses it)
    return tuple(int(part) if place % 2 else part
                 for place, part in enumerate(_DIGITS.split(text)))


@lru_cache(maxsize=1024)
def _file_order(file: str) -> tuple[Any, ...]:
    return _natural(file)                # a chunk's items share their file


def unmapped_order(item: UnmappedItem) -> tuple[Any, ...]:
    """Where an unmapped item goes in the report: by file, then place in the file."""
    location = item.location
    number = location[5:]
    if location.startswith("line ") and number.isascii() and number.isdigit():
        return _file_order(item.file), ("line ", int(number), "")   # _natural's, faster
    return _file_order(item.file), _natural(location)


def issue_order(item: ValueIssueItem) -> tuple[Any, ...]:
    """Where a value issue goes in the report: by domain, then resource."""
    return _DOMAIN_RANK.get(item.domain, 99), _natural(item.resource)


@dataclass(frozen=True, slots=True)
class UnmappedItem:
    """A resource (or panel component) that did not become an SDTM row."""

    resource_type: str
    resource: str
    file: str
    location: str
    reason_code: str
    message: str
    element: str | None = None
    system: str | None = None
    code: str | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled as its values (a chunk's items go from process to process), not by the
        # dataclass state functions, which take several times as long
        return UnmappedItem, _UNMAPPED_VALUES(self)


@dataclass(frozen=True, slots=True)
class ValueIssueItem:
    """A value left empty or kept as written in a row that was otherwise mapped."""

    domain: str
    resource: str
    variable: str
    reason_code: str
    message: str
    element: str | None = None
    system: str | None = None
    code: str | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        return ValueIssueItem, _ISSUE_VALUES(self)


_UNMAPPED_VALUES = attrgetter(*UnmappedItem.__slots__)
_ISSUE_VALUES = attrgetter(*ValueIssueItem.__slots__)
_REASON_VALUES = attrgetter("reason_code", "message", "element", "system", "code")


def unmapped_item_text(item: UnmappedItem) -> bytes:
    """``list_item_text(item)``: the item as the report's list of unmapped resources
    holds it. A long tail of unmapped resources repeats everything but the resource and
    its place (one file, one reason): only those two are written for each item."""
    return _item_text(item.resource_type, item.resource, item.file, item.location,
                      _REASON_VALUES(item))


def _item_text(resource_type: str, resource: str, file: str, location: str,
               reason: tuple[Any, ...]) -> bytes:
    fronts = _TEXT_FRONTS.get((resource_type, file))
    if fronts is None:
        fronts = remember(_TEXT_FRONTS, (resource_type, file), _fronts(resource_type, file),
                          _TEXTS_LIMIT)
    return b"".join((fronts[0], orjson.dumps(resource), fronts[1], orjson.dumps(location),
                     _tail(reason)))


def _fronts(resource_type: str, file: str) -> tuple[bytes, bytes]:
    """An unmapped item's text before its resource, and between it and its location."""
    return (b'{\n    "resource_type": ' + orjson.dumps(resource_type) + b',\n    "resource": ',
            b',\n    "file": ' + orjson.dumps(file) + b',\n    "location": ')


def _tail(reason: tuple[Any, ...]) -> bytes:
    """An unmapped item's text after its location: its reason code, message, element,
    system and code (made once per distinct reason, in a bounded cache)."""
    tail = _TEXT_TAILS.get(reason)
    if tail is None:
        tail = remember(_TEXT_TAILS, reason, b"".join(
            b',\n    "' + name.encode() + b'": ' + orjson.dumps(value)
            for name, value in zip(("reason_code", "message", "element", "system", "code"),
                                   reason, strict=True)) + b"\n  }", _TEXTS_LIMIT)
    return tail


@dataclass
class FailedLines:
    """NDJSON lines of one resource type that did not map, each kept as its file, line
    number, report key and error (anything with ``reason_code``, ``message``,
    ``element``, ``system`` and ``code``): the :class:`UnmappedItem` of each (its place
    ``line N``) is made only where it is needed (:meth:`items`), and the report's sort
    keys and texts straight from these parts (:meth:`keys`, :meth:`texts`). A hospital
    export converted for a trial's subjects has one for most of its lines."""

    resource_type: str
    files: list[str] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)
    errors: list[Any] = field(default_factory=list)

    def add(self, file: str, number: int, resource: str, error: Any) -> None:
        self.files.append(file)
        self.numbers.append(number)
        self.resources.append(resource)
        self.errors.append(error)

    def extend(self, other: FailedLines) -> None:
        if other.resource_type != self.resource_type:
            raise ValueError(f"lines of {other.resource_type} among {self.resource_type}")
        self.files += other.files
        self.numbers += other.numbers
        self.resources += other.resources
        self.errors += other.errors

    def __len__(self) -> int:
        return len(self.numbers)

    def items(self) -> list[UnmappedItem]:
        """The unmapped item of each line, in order."""
        return [UnmappedItem(self.resource_type, resource, file, f"line {number}",
                             *_REASON_VALUES(error))
                for file, number, resource, error in zip(
                    self.files, self.numbers, self.resources, self.errors, strict=True)]

    def keys(self) -> list[tuple[Any, ...]]:
        """``unmapped_order`` of the item of each line."""
        order = _file_order
        return [(order(file), ("line ", number, ""))
                for file, number in zip(self.files, self.numbers, strict=True)]

    def reason_codes(self) -> list[str]:
        """The reason code of each line's item."""
        return [error.reason_code for error in self.errors]

    def texts(self) -> list[bytes]:
        """``unmapped_item_text`` of each line's item."""
        fronts: dict[str, tuple[bytes, bytes]] = {}
        tails: dict[int, bytes] = {}
        dumps = orjson.dumps
        out = []
        for file, number, resource, error in zip(self.files, self.numbers, self.resources,
                                                 self.errors, strict=True):
            front = fronts.get(file)
            if front is None:
                front = fronts[file] = _fronts(self.resource_type, file)
            tail = tails.get(id(error))
            if tail is None:         # the errors live as long as this: their ids hold
                tail = tails[id(error)] = _tail(_REASON_VALUES(error))
            # a line's place is "line N": JSON text as it is
            out.append(b'%b%b%b"line %d"%b' % (front[0], dumps(resource), front[1], number,
                                                tail))
        return out


_TEXT_FRONTS: dict[tuple[str, str], tuple[bytes, bytes]] = {}
_TEXT_TAILS: dict[tuple[Any, ...], bytes] = {}

_TEXTS_LIMIT = 10_000


@dataclass
class ConversionReport:
    """Counts, unmapped resources and value issues of one FHIR -> SDTM conversion."""

    fhir_version: str = "R4"
    sources: list[str] = field(default_factory=list)
    terminology: list[str] = field(default_factory=list)
    enrolment: str = ""
    status: dict[str, str] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)
    read_counts: Counter[str] = field(default_factory=Counter)
    rows: dict[str, int] = field(default_factory=dict)
    unmapped: list[UnmappedItem] = field(default_factory=list)
    value_issues: list[ValueIssueItem] = field(default_factory=list)
    #: outcomes counted without keeping each resource's key: (resource type, status) -> n
    settled: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: where the items go instead of ``unmapped`` and ``value_issues`` once
    #: :meth:`keep_items_on_disk` was called
    runs: ItemRuns | None = field(default=None, repr=False, compare=False)

    def keep_items_on_disk(self, folder: Path) -> None:
        """From now on keep the unmapped items and value issues (those already here too)
        in sorted runs in ``folder``, not in memory; they come back, merged in report
        order, in :meth:`to_dict` until :meth:`items_written` is called."""
        self.runs = ItemRuns(folder, unmapped_order, issue_order, unmapped_item_text)
        self.add_items(self.unmapped, self.value_issues)
        self.unmapped, self.value_issues = [], []

    def add_items(self, unmapped: list[UnmappedItem], issues: list[ValueIssueItem],
                  failed: FailedLines | None = None) -> None:
        """Take in a share of unmapped items and value issues (in the order they came),
        and of lines that did not map (after the items: an item and a line never share
        their place)."""
        if self.runs is None:
            self.unmapped.extend(unmapped)
            if failed:
                self.unmapped.extend(failed.items())
            self.value_issues.extend(issues)
        else:
            self.runs.add(unmapped, issues, failed)

    def items_written(self) -> None:
        """The items kept on disk are in the report file now: only their counts stay."""
        if self.runs is not None:
            self.runs.close()

    @property
    def issue_count(self) -> int:
        """How many value issues there are."""
        return len(self.value_issues) + (self.runs.issues if self.runs is not None else 0)

    def read(self, resource_type: str, key: str) -> None:
        self.read_counts[resource_type] += 1
        self.types[key] = resource_type

    def mark(self, key: str, status: str) -> None:
        """Record a resource's outcome; ``mapped`` wins over the others."""
        assert status in STATUSES
        if self.status.get(key) != "mapped":
            self.status[key] = status

    def settle(self, outcomes: Counter[tuple[str, str]]) -> None:
        """Add outcomes decided elsewhere (a chunk of resources mapped in another process),
        each resource read once and given its final status there."""
        for (rtype, status), count in outcomes.items():
            assert status in STATUSES
            self.read_counts[rtype] += count
            self.settled[(rtype, status)] += count

    def counts(self) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(STATUSES, 0))
        for key, status in self.status.items():
            table[self.types[key]][status] += 1
        for (rtype, status), count in self.settled.items():
            table[rtype][status] += count
        result = {}
        for rtype in sorted(self.read_counts):
            result[rtype] = {"read": self.read_counts[rtype], **table[rtype]}
        return result

    def reconciles(self) -> bool:
        """Whether every resource read has exactly one outcome."""
        return all(c["read"] == sum(c[s] for s in STATUSES) for c in self.counts().values())

    @property
    def unmapped_count(self) -> int:
        return (sum(1 for status in self.status.values() if status == "unmapped")
                + sum(n for (_, status), n in self.settled.items() if status == "unmapped"))

    def sort_items(self) -> None:
        """Put unmapped items in file and place order, value issues in domain and resource
        order, so that the report does not depend on the order resources were mapped in."""
        self.unmapped.sort(key=unmapped_order)
        self.value_issues.sort(key=issue_order)

    def reasons(self) -> dict[str, int]:
        """Unmapped items by reason code, the most frequent first."""
        counts = Counter(item.reason_code for item in self.unmapped)
        if self.runs is not None:
            counts.update(self.runs.reasons)
        return dict(counts.most_common())

    def to_dict(self, *, objects: bool = False, lazy: bool = False) -> dict[str, Any]:
        """The report as JSON-ready data. ``objects``: leave the unmapped items and value
        issues as dataclasses, which orjson writes as the same JSON without a dict made
        per item (an export with a million unmapped resources holds them all at once);
        those kept on disk (:meth:`keep_items_on_disk`) come back as dicts either way.
        ``lazy`` (with ``objects``): give them as iterables to be read once, in order,
        instead of lists, for :func:`fhircdisc.streamed_json.write_streamed` (those kept
        on disk already written: ``orjson.Fragment`` of their ``list_item_text``)."""
        def items(values: Iterable[Any]) -> Iterable[Any]:
            if lazy and objects:
                return values
            return list(values) if objects or self.runs is not None \
                else [asdict(item) for item in values]

        unmapped: Iterable[Any] = self.unmapped
        issues: Iterable[Any] = self.value_issues
        if self.runs is not None and lazy and objects:
            unmapped, issues = self.runs.written("unmapped"), self.runs.written("issues")
        elif self.runs is not None:
            unmapped, issues = self.runs.unmapped(), self.runs.value_issues()

        return {
            "fhir_version": self.fhir_version,
            "sources": self.sources,
            "terminology": self.terminology,
            "enrolment": self.enrolment,
            "resources": self.counts(),
            "reconciles": self.reconciles(),
            "rows": dict(sorted(self.rows.items())),
            "unmapped_reasons": self.reasons(),
            "unmapped": items(unmapped),
            "value_issues": items(issues),
        }
