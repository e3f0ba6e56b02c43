"""Report items kept on disk while a streamed conversion runs.

An export with a long tail of local codes has an unmapped item per such resource, and
a value issue per unit kept as written: held in memory they grow with the input. Here
each share of items (a chunk's) is sorted in report order and pickled to a *run* file
in batches, each item as its sort key and its JSON text as the report file holds it
(:func:`fhircdisc.streamed_json.list_item_text`: worked out by the worker process that
made the item); the report file is then written from a merge of the runs, reading one
batch per run at a time. Merging sorted runs keeps the order a stable sort of all the
items in arrival order would give, which is what :meth:`ConversionReport.sort_items`
does. Runs whose sort keys do not overlap (the chunks of the files, read in order) are
read one after the other, and only those that do go through a heap.
"""

from __future__ import annotations

import heapq
import pickle
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any, Protocol

import orjson

from fhircdisc.streamed_json import list_item_text

#: items pickled together and read back together: the merge holds a batch per run (at
#: 2,000 a batch, 100 runs held 200,000 items, 25 MB at the end of a 2M-line export)
BATCH = 200


class ItemRuns:
    """Sorted runs of unmapped items and of value issues in ``folder``, with their counts.

    ``unmapped_key`` and ``issue_key`` are the report's sort keys; ``unmapped_text``
    gives an unmapped item's :func:`~fhircdisc.streamed_json.list_item_text` (faster for
    the kind of item)."""

    def __init__(self, folder: Path, unmapped_key: Callable[[Any], Any],
                 issue_key: Callable[[Any], Any],
                 unmapped_text: Callable[[Any], bytes] = list_item_text) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.keys = {"unmapped": unmapped_key, "issues": issue_key}
        self.unmapped_text = unmapped_text
        self.paths: dict[str, list[Path]] = {"unmapped": [], "issues": []}
        #: per run, its first and last sort key
        self.bounds: dict[str, list[tuple[Any, Any]]] = {"unmapped": [], "issues": []}
        self._reasons: Counter[str] = Counter()
        #: reason code -> where its first item is in the merged order
        self._first: dict[str, tuple[Any, int, int]] = {}
        self.issues = 0
        self.closed = False

    def add(self, unmapped: list[Any], issues: list[Any], failed: Lines | None = None
            ) -> None:
        """One share of items, each list in arrival order (``failed``: lines that stand
        for unmapped items, see :class:`Lines`)."""
        self._check_open()
        if not unmapped and not issues and not failed:   # a worker wrote them already
            return
        number = len(self.paths["unmapped"]) + len(self.paths["issues"])
        self.adopt(self.write_share(f"{number:06d}", unmapped, issues, failed))

    def write_share(self, name: str, unmapped: list[Any], issues: list[Any],
                    failed: Lines | None = None) -> SharedRuns:
        """A share of items (each list in arrival order) sorted into runs named ``name``
        in this folder, for :meth:`adopt`. Nothing of this object changes: a worker
        process that maps a share writes its runs, and the process that holds the report
        adopts them, in order."""
        return write_runs(self.folder, name, unmapped, issues, self.keys["unmapped"],
                          self.keys["issues"], self.unmapped_text, failed)

    def adopt(self, share: SharedRuns) -> None:
        """One share of items that :meth:`write_share` put into runs, after those of every
        share before it."""
        self._check_open()
        self.issues += share.issues
        if share.issue_path is not None:
            self.paths["issues"].append(share.issue_path)
            self.bounds["issues"].append(share.bounds["issues"])
        if share.unmapped_path is not None:
            run = len(self.paths["unmapped"])
            self.paths["unmapped"].append(share.unmapped_path)
            self.bounds["unmapped"].append(share.bounds["unmapped"])
            self._reasons.update(share.reasons)
            for code, (key, place) in share.first.items():
                where = (key, run, place)
                if code not in self._first or where < self._first[code]:
                    self._first[code] = where

    @property
    def reasons(self) -> Counter[str]:
        """Unmapped items by reason code, the codes in the order of their first item in the
        merged runs (as a count over the items in report order lists them)."""
        return Counter({code: self._reasons[code]
                        for code in sorted(self._first, key=self._first.__getitem__)})

    def unmapped(self) -> Iterator[dict[str, Any]]:
        """Every unmapped item, in report order, as the dict of its fields."""
        return map(orjson.loads, self.texts("unmapped"))

    def value_issues(self) -> Iterator[dict[str, Any]]:
        """Every value issue, in report order, as the dict of its fields."""
        return map(orjson.loads, self.texts("issues"))

    def written(self, kind: str) -> Iterator[orjson.Fragment]:
        """The items of ``kind`` (``unmapped``, ``issues``) in report order, as
        :func:`fhircdisc.streamed_json.write_streamed` takes them (fragments of their
        ``list_item_text``)."""
        return map(orjson.Fragment, self.texts(kind))

    def texts(self, kind: str) -> Iterator[bytes]:
        """The items of ``kind`` in report order, as their ``list_item_text``."""
        self._check_open()
        groups = _groups(_chains(self.paths[kind], self.bounds[kind]))
        return map(itemgetter(1), chain.from_iterable(map(_merge, groups)))

    def close(self) -> None:
        """The items have been written out; the runs may go (the counts stay)."""
        self.closed = True

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("the items of this report were written to its file; "
                               "read them from there")


@dataclass
class SharedRuns:
    """A share of items written as runs by :func:`write_runs` (in the process that made
    them), with what :meth:`ItemRuns.adopt` needs of them."""

    unmapped_path: Path | None
    issue_path: Path | None
    #: reason code -> unmapped items
    reasons: Counter[str]
    #: reason code -> the sort key and place of its first item in the run
    first: dict[str, tuple[Any, int]]
    issues: int
    #: the first and last sort key of each run, by kind
    bounds: dict[str, tuple[Any, Any]]


class Lines(Protocol):
    """Lines that stand for unmapped items (``fhircdisc.report.FailedLines``): the items'
    sort keys, reason codes and texts, line by line, without the items."""

    def __len__(self) -> int: ...

    def keys(self) -> list[Any]: ...

    def reason_codes(self) -> list[str]: ...

    def texts(self) -> list[bytes]: ...


def write_runs(folder: Path, name: str, unmapped: list[Any], issues: list[Any],
               unmapped_key: Callable[[Any], Any], issue_key: Callable[[Any], Any],
               unmapped_text: Callable[[Any], bytes] = list_item_text,
               failed: Lines | None = None) -> SharedRuns:
    """Sort a share of items (each list in arrival order) in report order and pickle them
    as runs named ``name`` in ``folder``: each item as its sort key (worked out once) and
    its text in the report file (both pickle and merge at C speed). The ``failed`` lines'
    items come after ``unmapped`` (an item and a line never share their place)."""
    share = SharedRuns(None, None, Counter(), {}, len(issues), {})
    if issues:
        keys = list(map(issue_key, issues))
        share.issue_path = _run_file(folder, f"issues-{name}", keys, share, "issues",
                                     lambda at: list_item_text(issues[at]))
    if unmapped or failed:
        size = len(unmapped)
        keys = list(map(unmapped_key, unmapped))
        codes = [item.reason_code for item in unmapped]
        lines: list[bytes] = []
        if failed:
            keys += failed.keys()
            codes += failed.reason_codes()
            lines = failed.texts()
        order = sorted(range(len(keys)), key=keys.__getitem__)
        share.reasons.update(codes)
        for place, at in enumerate(order):
            if codes[at] not in share.first:
                share.first[codes[at]] = (keys[at], place)

        def text(at: int) -> bytes:
            # orjson writes an item (a dataclass) as the dict of its fields
            return unmapped_text(unmapped[at]) if at < size else lines[at - size]
        share.unmapped_path = _run_file(folder, f"unmapped-{name}", keys, share,
                                        "unmapped", text, order)
    return share


def _run_file(folder: Path, name: str, keys: list[Any], share: SharedRuns, kind: str,
              text: Callable[[int], bytes], order: list[int] | None = None) -> Path:
    """The items (``text(at)`` of each) pickled in the order of their ``keys``."""
    if order is None:
        order = sorted(range(len(keys)), key=keys.__getitem__)
    share.bounds[kind] = (keys[order[0]], keys[order[-1]])
    path = folder / f"{name}.pkl"
    write_run(path, [(keys[at], text(at)) for at in order])
    return path


@dataclass
class _Chain:
    """Consecutive runs each of which starts at or after the end of the one before (a
    file's chunks, read in order): read through, it is in order. Merging the chains is
    merging the runs, ties included (a chain's runs all come before the next chain's)."""

    paths: list[Path]
    first: Any
    last: Any


def _chains(paths: list[Path], bounds: list[tuple[Any, Any]]) -> list[_Chain]:
    """The runs (in arrival order) cut into chains, in arrival order."""
    chains: list[_Chain] = []
    for path, (first, last) in zip(paths, bounds, strict=True):
        if chains and chains[-1].last <= first:
            chains[-1].paths.append(path)
            chains[-1].last = last
        else:
            chains.append(_Chain([path], first, last))
    return chains


def _groups(chains: list[_Chain]) -> list[list[_Chain]]:
    """The chains as groups in report order: every item of a group sorts at or before
    every item of the next, and one tied across two groups arrived in the first (so
    reading the groups one after the other is the merge). Only the chains of a group
    need merging with each other; in each group they stay in arrival order."""
    groups: list[list[tuple[int, _Chain]]] = []
    last: Any = None
    latest = -1
    for arrival, link in sorted(enumerate(chains), key=lambda pair: (pair[1].first, pair[0])):
        if groups and (link.first < last or (link.first == last and arrival < latest)):
            groups[-1].append((arrival, link))
            if last < link.last:
                last = link.last
            latest = max(latest, arrival)
        else:
            groups.append([(arrival, link)])
            last, latest = link.last, arrival
    return [[link for _, link in sorted(group, key=itemgetter(0))] for group in groups]


def _merge(group: list[_Chain]) -> Iterator[Any]:
    """The (sort key, text) rows of a group of chains in report order."""
    streams = [chain.from_iterable(map(read_run, link.paths)) for link in group]
    if len(streams) == 1:
        return streams[0]
    return heapq.merge(*streams, key=itemgetter(0))


def write_run(path: Path, items: list[Any]) -> None:
    """Pickle ``items`` to ``path`` in batches of :data:`BATCH`."""
    with path.open("wb") as handle:
        for start in range(0, len(items), BATCH):
            pickle.dump(items[start:start + BATCH], handle, protocol=pickle.HIGHEST_PROTOCOL)


def read_run(path: Path) -> Iterator[Any]:
    """The items of a run, a batch at a time (the file is open only while a batch is read,
    so that any number of runs can be merged)."""
    offset = 0
    while True:
        with path.open("rb") as handle:
            handle.seek(offset)
            try:
                batch = pickle.load(handle)
            except EOFError:
                return
            offset = handle.tell()
        yield from batch
