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
from dataclasses import fields
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
        self.issues += len(issues)
        if issues:
            keys = list(map(self.keys["issues"], issues))
            self._write("issues", issues, keys, sorted(range(len(issues)),
                                                       key=keys.__getitem__))
        if unmapped:
            run = len(self.paths["unmapped"])
            keys = list(map(self.keys["unmapped"], unmapped))
            order = sorted(range(len(unmapped)), key=keys.__getitem__)
            self._reasons.update(item.reason_code for item in unmapped)
            seen: set[str] = set()
            for place, at in enumerate(order):
                code = unmapped[at].reason_code
                if code not in seen:
                    seen.add(code)
                    where = (keys[at], run, place)
                    if code not in self._first or where < self._first[code]:
                        self._first[code] = where
            self._write("unmapped", unmapped, keys, order)

    @property
    def reasons(self) -> Counter[str]:
        """Unmapped items by reason code, the codes in the order of their first item in the
        merged runs (as a count over the items in report order lists them)."""
        return Counter({code: self._reasons[code]
                        for code in sorted(self._first, key=self._first.__getitem__)})

    def _write(self, kind: str, items: list[Any], keys: list[Any], order: list[int]
               ) -> None:
        """A run of ``items`` taken in ``order``: each as its sort key (``keys``, worked out
        once) and its field values, which pickle and merge at C speed."""
        names = self.names.get(kind)
        if names is None:
            names = self.names[kind] = tuple(item.name for item in fields(items[0]))
        values = attrgetter(*names)
        path = self.folder / f"{kind}-{len(self.paths[kind]):06d}.pkl"
        write_run(path, [(keys[at], values(items[at])) for at in order])
        self.paths[kind].append(path)

    def unmapped(self) -> Iterator[dict[str, Any]]:
        """Every unmapped item, in report order, as the dict of its fields."""
        return self._merged("unmapped")

    def value_issues(self) -> Iterator[dict[str, Any]]:
        """Every value issue, in report order, as the dict of its fields."""
        return self._merged("issues")

    def _merged(self, kind: str) -> Iterator[dict[str, Any]]:
        self._check_open()
        names = self.names.get(kind, ())
        rows = heapq.merge(*map(read_run, self.paths[kind]), key=itemgetter(0))
        return (dict(zip(names, values, strict=True)) for _, values in rows)

    def close(self) -> None:
        """The items have been written out; the runs may go (the counts stay)."""
        self.closed = True

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("the items of this report were written to its file; "
                               "read them from there")


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
