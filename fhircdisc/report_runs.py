"""Report items kept on disk while a streamed conversion runs.

An export with a long tail of local codes has an unmapped item per such resource, and
a value issue per unit kept as written: held in memory they grow with the input. Here
each share of items (a chunk's) is sorted in report order and pickled to a *run* file
in batches, each item as its sort key and its field values; the report file is then
written from a merge of the runs, reading one batch per run at a time. Merging sorted
runs keeps the order a stable sort of all the items in arrival order would give, which
is what :meth:`ConversionReport.sort_items` does.
"""

from __future__ import annotations

import heapq
import pickle
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from itertools import chain
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any

#: items pickled together and read back together: the merge holds a batch per run (at
#: 2,000 a batch, 100 runs held 200,000 items, 25 MB at the end of a 2M-line export)
BATCH = 200


class ItemRuns:
    """Sorted runs of unmapped items and of value issues in ``folder``, with their counts.

    ``unmapped_key`` and ``issue_key`` are the report's sort keys."""

    def __init__(self, folder: Path, unmapped_key: Callable[[Any], Any],
                 issue_key: Callable[[Any], Any]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.keys = {"unmapped": unmapped_key, "issues": issue_key}
        self.paths: dict[str, list[Path]] = {"unmapped": [], "issues": []}
        #: per run, its first and last sort key
        self.bounds: dict[str, list[tuple[Any, Any]]] = {"unmapped": [], "issues": []}
        self._reasons: Counter[str] = Counter()
        #: reason code -> where its first item is in the merged order
        self._first: dict[str, tuple[Any, int, int]] = {}
        self.issues = 0
        self.closed = False
        #: the items' field names, by kind (from the first item)
        self.names: dict[str, tuple[str, ...]] = {}

    def add(self, unmapped: list[Any], issues: list[Any]) -> None:
        """One share of items, each list in arrival order."""
        self._check_open()
        if not unmapped and not issues:     # a share whose items a worker wrote already
            return
        number = len(self.paths["unmapped"]) + len(self.paths["issues"])
        self.adopt(self.write_share(f"{number:06d}", unmapped, issues))

    def write_share(self, name: str, unmapped: list[Any], issues: list[Any]) -> SharedRuns:
        """A share of items (each list in arrival order) sorted into runs named ``name``
        in this folder, for :meth:`adopt`. Nothing of this object changes: a worker
        process that maps a share writes its runs, and the process that holds the report
        adopts them, in order."""
        return write_runs(self.folder, name, unmapped, issues, self.keys["unmapped"],
                          self.keys["issues"])

    def adopt(self, share: SharedRuns) -> None:
        """One share of items that :meth:`write_share` put into runs, after those of every
        share before it."""
        self._check_open()
        self.issues += share.issues
        self.names.update(share.names)
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
        return self._merged("unmapped")

    def value_issues(self) -> Iterator[dict[str, Any]]:
        """Every value issue, in report order, as the dict of its fields."""
        return self._merged("issues")

    def _merged(self, kind: str) -> Iterator[dict[str, Any]]:
        self._check_open()
        names = self.names.get(kind, ())
        chains = [chain.from_iterable(map(read_run, paths))
                  for paths in _chains(self.paths[kind], self.bounds[kind])]
        rows = chains[0] if len(chains) == 1 else heapq.merge(*chains, key=itemgetter(0))
        return (dict(zip(names, values, strict=True)) for _, values in rows)

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
    #: the items' field names, by kind
    names: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: the first and last sort key of each run, by kind
    bounds: dict[str, tuple[Any, Any]] = field(default_factory=dict)


def write_runs(folder: Path, name: str, unmapped: list[Any], issues: list[Any],
               unmapped_key: Callable[[Any], Any], issue_key: Callable[[Any], Any]
               ) -> SharedRuns:
    """Sort a share of items (each list in arrival order) in report order and pickle them
    as runs named ``name`` in ``folder``: each item as its sort key (worked out once) and
    its field values, which pickle and merge at C speed."""
    share = SharedRuns(None, None, Counter(), {}, len(issues))
    if issues:
        keys = list(map(issue_key, issues))
        share.issue_path = _run_file(folder, f"issues-{name}", issues, keys, share,
                                     "issues")
    if unmapped:
        keys = list(map(unmapped_key, unmapped))
        order = sorted(range(len(unmapped)), key=keys.__getitem__)
        share.reasons.update(item.reason_code for item in unmapped)
        for place, at in enumerate(order):
            code = unmapped[at].reason_code
            if code not in share.first:
                share.first[code] = (keys[at], place)
        share.unmapped_path = _run_file(folder, f"unmapped-{name}", unmapped, keys, share,
                                        "unmapped", order)
    return share


def _run_file(folder: Path, name: str, items: list[Any], keys: list[Any],
              share: SharedRuns, kind: str, order: list[int] | None = None) -> Path:
    if order is None:
        order = sorted(range(len(items)), key=keys.__getitem__)
    share.bounds[kind] = (keys[order[0]], keys[order[-1]])
    fields_of = share.names[kind] = tuple(item.name for item in fields(items[0]))
    values = attrgetter(*fields_of)
    path = folder / f"{name}.pkl"
    write_run(path, [(keys[at], values(items[at])) for at in order])
    return path


def _chains(paths: list[Path], bounds: list[tuple[Any, Any]]) -> list[list[Path]]:
    """The runs cut into chains of consecutive runs each of which starts at or after the
    end of the one before (a file's chunks, read in order): a chain read through is in
    order, and merging the chains is merging the runs, ties included (a chain's runs all
    come before the next chain's). Chains, not runs, then go through the heap."""
    chains: list[list[Path]] = []
    last: Any = None
    for path, (first, end) in zip(paths, bounds, strict=True):
        if chains and last <= first:
            chains[-1].append(path)
        else:
            chains.append([path])
        last = end
    return chains or [[]]


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
