"""Rows of the fast lane kept as columns instead of as one dict per row.

A plain Observation's row is its template (the grouped rules' values, shared by every
resource with the same code, unit, range ...) with the subject's values and the
resource's own values (not-done flag, dates, result) over it. A :class:`LaneBlock`
keeps exactly that: per row a template number, a subject number, the own values, the
resource's key and line. A column is made from them only when a dataset piece is
built (:meth:`LaneBlock.column`), so no row dict is built, pickled or read back.

A block is the same rows as the dicts ``CompiledSpec.row_of`` would make; the streaming
tests compare the output of both ways byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import repeat
from operator import is_
from typing import Any, NamedTuple, cast

import numpy as np
import pandas as pd

from fhircdisc.column_values import ColumnValues
from fhircdisc.converters.observation_lines import tuple_getter
from fhircdisc.mappings.algorithms import number_texts
from fhircdisc.mappings.compiled import CompiledSpec, PlainTemplate

#: the value of a variable a row does not have (NaN, as ``DataFrame.from_records`` of row
#: dicts puts it, and told apart by identity from a NaN a row holds)
ABSENT = float("nan")


class _DerivedText:
    """See :data:`DERIVED_TEXT` (pickled as a reference to it, so it stays the one)."""

    __slots__ = ()

    def __reduce__(self) -> str:
        return "DERIVED_TEXT"

    def __repr__(self) -> str:
        return "DERIVED_TEXT"


#: the result as text of a row whose text is its result number's (``number_text``): a
#: block holds this in its place, and makes the texts when a column of them is asked
#: for, once per distinct number (most results: a float without a comparator)
DERIVED_TEXT: Any = _DerivedText()


def object_array(values: Any, size: int) -> np.ndarray:
    """A one-dimensional object array of ``values`` (tuples stay single values)."""
    return np.fromiter(values, dtype=object, count=size)


class LaneBlock:
    """The lane rows of one domain from one file, in read order, as columns."""

    def __init__(self, spec: CompiledSpec, file: str, rank: int) -> None:
        plan = spec.fill_plan
        if plan is None:
            raise ValueError("the spec has rules the lane cannot fill in")
        #: every variable of a row, in spec order (the keys of a template's row)
        self.names: tuple[str, ...] = tuple(spec.order)
        self.file = file
        self.rank = rank
        #: when the rows come from several files (:func:`gathered`): each file with its
        #: rank, and per row its place in that list
        self.files: list[tuple[str, int]] = [(file, rank)]
        self.origins: np.ndarray | None = None
        self.context = plan.context
        self.context_vars = frozenset(var for var, _ in plan.context)
        self.own_places = plan.own
        self.visit_vars = spec.visit_vars
        #: the variables of the result as text, and the one of the result as a number
        #: (what a :data:`DERIVED_TEXT` is made from)
        self.text_vars: tuple[str, ...] = plan.text
        self.number_var: str | None = plan.number[0] if plan.number else None
        #: whether some own text is still :data:`DERIVED_TEXT` (made by :meth:`column`);
        #: once made, the texts as codes when every one was (:meth:`coded_texts`)
        self.derived = False
        self.text_values: ColumnValues | None = None
        self.templates: list[dict[str, Any]] = []
        #: the rows added since the last :meth:`_settle`: (template, subject, own values,
        #: key, line, visit values, component number)
        self._added: list[tuple[PlainTemplate, Any, tuple[Any, ...], str, int,
                                tuple[Any, ...] | None, int | None]] = []
        #: the rows settled until :meth:`freeze`, as one list per item of an added row, the
        #: own values as one list each
        self._settled: _Settled = _Settled()
        #: per row, its component's number in its panel (-1: the resource itself), when
        #: some row is a component
        self.components: np.ndarray | None = None
        #: the subjects' context values as columns (variable -> value per subject) after
        #: :meth:`freeze`
        self.subjects: dict[str, np.ndarray] = {}
        #: per row, its visit's number (-1: the template's values), when some row has a
        #: visit of its own; and the visits' values as columns (variable -> per visit)
        self.visit: np.ndarray | None = None
        self.visits: dict[str, np.ndarray] = {}
        #: filled by :meth:`freeze`
        self.template = np.empty(0, dtype=np.int32)
        self.subject = np.empty(0, dtype=np.int32)
        self.lines = np.empty(0, dtype=np.int64)
        self.sources = np.empty(0, dtype=object)
        #: variables whose value is the row's own (over template and subject)
        self.own: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._added) + len(self._settled.lines) or len(self.template)

    def __getstate__(self) -> dict[str, Any]:
        # a column of texts (report keys, dates, results) goes to the spill as one text:
        # pickling each of its texts costs more than joining and splitting them
        state = dict(self.__dict__)
        state["sources"] = _packed(self.sources)
        state["own"] = own = _once_an_array(self.own, _packed)
        if self.number_var in self.own:
            own[self.number_var] = _packed_numbers(self.own[self.number_var])
        state["text_values"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state["sources"] = _unpacked(state["sources"])
        state["own"] = _once_an_array(state["own"], _unpacked)
        self.__dict__.update(state)

    def add(self, template: PlainTemplate, subject: Any, own: tuple[Any, ...],
            source: str, line: int, visit: tuple[Any, ...] | None = None,
            component: int | None = None) -> None:
        """One row: ``own`` as ``CompiledSpec.own_values`` gives it, ``visit`` as
        ``CompiledSpec.visit_values`` does (None: the template's); ``component``: the
        row's component in its panel (None: the resource is the row)."""
        added = self._added
        added.append((template, subject, own, source, line, visit, component))
        if len(added) == SETTLE_ROWS:
            self._settle()

    def extend(self, templates: list[PlainTemplate], subjects: list[Any],
               own: list[list[Any]], sources: list[str], lines: list[int],
               visits: list[tuple[Any, ...] | None],
               components: list[int | None] | None = None) -> None:
        """Rows after those added, as columns: per row what :meth:`add` takes (``own``: a
        column per place of ``CompiledSpec.own_values``; ``components`` None: none of
        the rows is a component)."""
        self._settle()
        self._settled._join(templates, subjects, own, sources, lines, visits,
                            [None] * len(lines) if components is None else components)

    def _settle(self) -> None:
        """Move the rows added into the settled columns. Done every :data:`SETTLE_ROWS`
        rows, while their tuples are still in the processor's cache: turning a whole
        job's rows into columns at once reads them back from memory."""
        if self._added:
            self._settled.extend(self._added)
            self._added = []

    def freeze(self) -> LaneBlock:
        """Turn the rows added into columns (once, after the last ``add``); templates and
        subjects are numbered in the order rows first use them."""
        self._settle()
        settled, self._settled = self._settled, _Settled()
        size = len(settled.lines)
        if size:
            templates, subjects, sources, lines, visits, components = (
                settled.templates, settled.subjects, settled.sources, settled.lines,
                settled.visits, settled.components)
            if components.count(None) != size:
                self.components = np.array([-1 if component is None else component
                                            for component in components], dtype=np.int32)
            self.template, firsts = _first_use(templates)
            self.templates = [templates[i].row for i in firsts.tolist()]
            self.subject, firsts = _first_use(subjects)
            people = _context_values([subjects[i] for i in firsts.tolist()], self.context)
            self.lines = np.array(lines, dtype=np.int64)
            self.sources = object_array(sources, size)
            by_place: dict[int, np.ndarray] = {}
            for var, place in self.own_places:    # variables of one value share its array
                if place not in by_place:
                    by_place[place] = object_array(settled.own[place], size)
                    if var in self.text_vars and self.number_var is not None:
                        self.derived = DERIVED_TEXT in settled.own[place]
                self.own[var] = by_place[place]
            if visits.count(None) != size:
                # rows with an encounter have visit values of their own (the lane's
                # cached tuples: one object a visit)
                numbers, firsts = _first_use(visits)
                distinct = [visits[i] for i in firsts.tolist()]
                if None in distinct:                   # rows without: -1
                    none = distinct.index(None)
                    numbers = np.where(numbers == none, -1,
                                       numbers - (numbers > none)).astype(np.int32)
                    del distinct[none]
                self.visit = numbers
                for place, var in enumerate(self.visit_vars):
                    self.visits[var] = object_array((v[place] for v in distinct),
                                                    len(distinct))
        else:
            people = []
        columns = list(zip(*people, strict=True)) or [()] * len(self.context)
        self.subjects = {var: object_array(column, len(people))
                         for (var, _), column in zip(self.context, columns, strict=True)}
        return self

    def set_column(self, var: str, values: np.ndarray) -> None:
        """Give every row its own value of ``var`` (a derived one: a study day)."""
        self.own[var] = values

    def column(self, name: str) -> np.ndarray:
        """The values of one variable (or of ``_source``, ``_file``, ``_location``,
        ``_order``), row by row, as an object array; :data:`ABSENT` for a variable the
        rows do not have."""
        size = len(self.template)
        if self.derived and name in self.text_vars:
            self._make_texts()
        own = self.own.get(name)
        if own is not None:
            return own
        found = self.table(name)
        if found is not None:
            table, places = found
            return table[places]
        if name == "_source":
            return self.sources
        if name == "_file":
            if self.origins is not None:
                return object_array([file for file, _ in self.files], len(self.files)
                                    )[self.origins]
            return object_array([self.file] * size, size)
        if name == "_location":
            if self.components is not None:
                return object_array(map(_location, self.lines.tolist(),
                                        self.components.tolist()), size)
            return object_array((f"line {n}" for n in self.lines.tolist()), size)
        if name == "_order":
            return object_array(zip(self._ranks().tolist(), self.lines.tolist(),
                                    [0] * size, strict=True), size)
        return object_array([ABSENT] * size, size)

    def _make_texts(self) -> None:
        """Put the result texts in place of :data:`DERIVED_TEXT` (in every variable sharing
        the array)."""
        assert self.number_var is not None
        texts = self.own[self.text_vars[0]]
        made, self.text_values = derived_texts(texts, self.own[self.number_var])
        for var in self.text_vars:
            if self.own[var] is texts:
                self.own[var] = made
        self.derived = False

    def coded_texts(self, name: str, order: np.ndarray) -> ColumnValues | None:
        """The result as text (``name``, one of :attr:`text_vars`) of the rows taken in
        ``order`` as codes into its distinct values, when the block made every text of
        it from its number (:data:`DERIVED_TEXT`); None otherwise."""
        if self.derived and name in self.text_vars:
            self._make_texts()
        if self.text_values is None or name not in self.text_vars \
                or self.own.get(name) is not self.own[self.text_vars[0]]:
            return None
        return ColumnValues(self.text_values.codes[order], self.text_values.uniques,
                            self.text_values.numbers)

    def read_place(self, row: int) -> tuple[tuple[int, int, int], str]:
        """Where one row was read: its ``_order`` and ``_location`` (as :meth:`column`
        gives them)."""
        line = int(self.lines[row])
        part = -1 if self.components is None else int(self.components[row])
        rank = self.rank if self.origins is None else self.files[int(self.origins[row])][1]
        return (rank, line, 0), _location(line, part)

    def _ranks(self) -> np.ndarray:
        """Each row's file rank."""
        if self.origins is None:
            return np.full(len(self.template), self.rank, dtype=np.int64)
        return np.asarray([rank for _, rank in self.files], dtype=np.int64)[self.origins]

    def table(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        """``name`` as a table of values and, per row, its place in the table (the
        templates' or the subjects' values, ``column`` being ``table[places]``); None when
        the rows hold their own values of it, or do not have it."""
        if name in self.own:
            return None
        if name in self.context_vars:
            return self.subjects[name], self.subject
        if name in self.names:
            values = [row.get(name) for row in self.templates]
            table = object_array(values, len(values))
            if self.visit is not None and name in self.visits:
                # the visits' values, then the templates' for the rows without a visit
                visits = self.visits[name]
                return (np.concatenate([visits, table]),
                        np.where(self.visit >= 0, self.visit, len(visits) + self.template))
            return table, self.template
        return None

    def has(self, name: str) -> bool:
        """Whether the rows have ``name`` (a variable or a ``_`` column); :meth:`column`
        gives :data:`ABSENT` for any other."""
        return name in self.own or name in self.context_vars or name in self.names \
            or name in ("_source", "_file", "_location", "_order")

    def distinct(self, name: str) -> list[Any] | None:
        """Every value ``name`` takes in some row when it comes from the templates or the
        subjects (each at least once); None when the rows hold their own values of it."""
        found = self.table(name)
        return None if found is None else found[0].tolist()

    def take(self, rows: np.ndarray) -> LaneBlock:
        """The rows at ``rows`` (positions, in the order given) as a block of their own,
        keeping only the templates and subjects they use."""
        part = LaneBlock.__new__(LaneBlock)
        part.__dict__.update(self.__dict__)
        used, part.template = _renumbered(self.template[rows])
        part.templates = [self.templates[i] for i in used.tolist()]
        used, part.subject = _renumbered(self.subject[rows])
        part.subjects = {var: values[used] for var, values in self.subjects.items()}
        part.lines = self.lines[rows]
        part.origins = None if self.origins is None else self.origins[rows]
        part.components = None if self.components is None else self.components[rows]
        part.sources = self.sources[rows]
        part.own = _once_an_array(self.own, lambda values: values[rows])
        part.text_values = None
        if self.visit is not None:
            numbers = self.visit[rows]
            has = numbers >= 0
            used, places = _renumbered(numbers[has])
            part.visit = np.full(len(numbers), -1, dtype=np.int32)
            part.visit[has] = places
            part.visits = {var: values[used] for var, values in self.visits.items()}
        return part


def gathered(blocks: list[LaneBlock]) -> LaneBlock:
    """The rows added to ``blocks`` (of one domain, from one file each, none frozen yet),
    one block after the other, as one block still to freeze: a job of many small files
    is frozen once and goes through the spills and pass 3 as one part, each row keeping
    its file and rank (:attr:`LaneBlock.files`, :attr:`LaneBlock.origins`)."""
    if len(blocks) == 1:
        return blocks[0]
    if any(block.origins is not None or not len(block) or len(block.template)
           for block in blocks):
        raise ValueError("blocks to gather are of one file each, with rows, not frozen")
    out = LaneBlock.__new__(LaneBlock)
    out.__dict__.update(blocks[0].__dict__)
    out.own, out.visits = {}, {}                # filled by freeze: not the first block's
    files: dict[tuple[str, int], int] = {}        # (file, rank) -> its place
    origins: list[np.ndarray] = []
    settled = _Settled()
    for block in blocks:
        place = files.setdefault((block.file, block.rank), len(files))
        origins.append(np.full(len(block), place, dtype=np.int32))
        block._settle()
        settled.join(block._settled)
    out._added, out._settled = [], settled
    out.files = list(files)
    out.origins = np.concatenate(origins)
    return out


def derived_texts(texts: np.ndarray, numbers: np.ndarray
                  ) -> tuple[np.ndarray, ColumnValues | None]:
    """``texts`` with each :data:`DERIVED_TEXT` made the text of the row's number (a
    float), each distinct number's once; and, when every text was one, the texts as codes
    into their distinct values (each number has a text of its own, 0 and -0 one)."""
    values = texts.tolist()
    every = values.count(DERIVED_TEXT) == len(values)
    places = None if every else np.flatnonzero(np.fromiter(
        map(is_, values, repeat(DERIVED_TEXT)), dtype=bool, count=len(values)))
    floats = (numbers if places is None else numbers[places]).astype(np.float64)
    codes, uniques = pd.factorize(floats)
    distinct = number_texts(uniques.tolist())
    table = object_array(distinct, len(distinct))
    if places is None:
        # each text writes its number back (-0.0 written "0": read back as 0.0)
        return table[codes], ColumnValues(np.asarray(codes, dtype=np.intp), distinct,
                                          uniques + 0.0)
    made = texts.copy()
    made[places] = table[codes]
    return made, None


class OneValue(NamedTuple):
    """An object array of nothing but one value (:data:`DERIVED_TEXT`, None) and its
    length."""

    value: Any
    size: int


class Floats(NamedTuple):
    """An object array of nothing but floats, as a float64 array."""

    values: np.ndarray


class JoinedTexts(NamedTuple):
    """An object array of texts as one text (:data:`TEXT_SEPARATOR` between them)."""

    text: str
    size: int


#: what separates the texts of a :class:`JoinedTexts` (a column holding it is kept as is)
TEXT_SEPARATOR = "\x00"


def _packed(values: np.ndarray) -> Any:
    """``values`` as :class:`JoinedTexts` when they are all texts without the separator,
    as :class:`OneValue` when they are all :data:`DERIVED_TEXT` or all None, else as they
    are."""
    if values.dtype == object and len(values) > 1:
        first = values[0]
        if first is DERIVED_TEXT or first is None:
            listed = values.tolist()
            return OneValue(first, len(listed)) if listed.count(first) == len(listed) \
                else values
        if not isinstance(first, str):             # (a join would fail)
            return values
        try:
            text = TEXT_SEPARATOR.join(values.tolist())
        except TypeError:                          # something else than text
            return values
        if text.count(TEXT_SEPARATOR) == len(values) - 1:
            return JoinedTexts(text, len(values))
    return values


def _packed_numbers(values: np.ndarray) -> Any:
    """The result numbers of a block (floats and None: ``own_values`` gives no other) as
    :class:`Floats` when none is None (nor NaN), else as :func:`_packed` packs them."""
    if values.dtype == object and len(values) > 1 and values[0].__class__ is float:
        try:
            floats = values.astype(np.float64)      # (None made NaN: told below)
        except (TypeError, ValueError):
            return _packed(values)
        if not np.isnan(floats).any():
            return Floats(floats)
    return _packed(values)


def _unpacked(values: Any) -> np.ndarray:
    """An array :func:`_packed` gave, as an array again."""
    if isinstance(values, OneValue):
        return np.full(values.size, values.value, dtype=object)
    if isinstance(values, Floats):          # (kept float64: each becomes a Num column)
        return values.values
    if not isinstance(values, JoinedTexts):
        return cast(np.ndarray, values)
    return object_array(values.text.split(TEXT_SEPARATOR), values.size)


def _once_an_array(columns: dict[str, Any], make: Callable[[Any], Any]) -> dict[str, Any]:
    """``make`` of each of ``columns``, once an array (or packed array): variables that
    share one (the result as text in --ORRES and --STRESC) share what it makes."""
    made: dict[int, Any] = {}
    out: dict[str, Any] = {}
    for var, values in columns.items():
        found = made.get(id(values))
        if found is None:
            found = made[id(values)] = make(values)
        out[var] = found
    return out


def joined(blocks: list[LaneBlock]) -> LaneBlock:
    """Frozen blocks of one domain (a bucket's parts from every job) as one frozen block
    of their rows, one block after the other: pass 3 then works on each column once, not
    once per part. Tables are joined as they are (a template or subject in several
    blocks is in the table several times, as the parts' tables joined in
    ``streaming.ordered_column`` would have it)."""
    if len(blocks) == 1:
        return blocks[0]
    if not blocks or any(block._added or len(block._settled.lines) for block in blocks):
        raise ValueError("blocks to join are frozen, and there is at least one")
    out = LaneBlock.__new__(LaneBlock)
    out.__dict__.update(blocks[0].__dict__)
    sizes = [len(block.template) for block in blocks]
    out.templates = [row for block in blocks for row in block.templates]
    out.template = _offset([block.template for block in blocks],
                           [len(block.templates) for block in blocks])
    out.subject = _offset([block.subject for block in blocks],
                          [_table_size(block.subjects, block.subject) for block in blocks])
    out.subjects = {var: np.concatenate([block.subjects[var] for block in blocks])
                    for var in blocks[0].subjects}
    out.lines = np.concatenate([block.lines for block in blocks])
    out.sources = np.concatenate([block.sources for block in blocks])
    out.own = _joined_own(blocks)
    out.derived = any(block.derived for block in blocks)
    out.text_values = None
    files: dict[tuple[str, int], int] = {}
    origins = []
    for block, size in zip(blocks, sizes, strict=True):
        places = np.asarray([files.setdefault(file, len(files)) for file in block.files],
                            dtype=np.int32)
        origins.append(np.full(size, places[0], dtype=np.int32) if block.origins is None
                       else places[block.origins])
    out.files = list(files)
    out.file, out.rank = out.files[0]
    out.origins = np.concatenate(origins)
    out.components = None if all(block.components is None for block in blocks) else \
        np.concatenate([np.full(size, -1, dtype=np.int32) if block.components is None
                        else block.components for block, size in zip(blocks, sizes,
                                                                     strict=True)])
    out.visit, out.visits = None, {}
    if any(block.visit is not None for block in blocks):
        numbers, counts = [], []
        for block, size in zip(blocks, sizes, strict=True):
            numbers.append(np.full(size, -1, dtype=np.int32) if block.visit is None
                           else block.visit)
            counts.append(0 if block.visit is None else
                          _table_size(block.visits, block.visit))
        out.visit = _offset(numbers, counts, keep_negative=True)
        out.visits = {var: np.concatenate([block.visits[var] for block in blocks
                                           if block.visit is not None])
                      for var in out.visit_vars}
    return out


def _joined_own(blocks: list[LaneBlock]) -> dict[str, np.ndarray]:
    """The blocks' own columns joined; variables that share one array in every block (the
    result as text in --ORRES and --STRESC) share the joined one too."""
    own: dict[str, np.ndarray] = {}
    made: dict[tuple[int, ...], np.ndarray] = {}
    for var in blocks[0].own:
        arrays = [block.own[var] for block in blocks]
        key = tuple(map(id, arrays))
        found = made.get(key)
        if found is None:
            found = made[key] = np.concatenate(arrays)
        own[var] = found
    return own


def _table_size(columns: dict[str, np.ndarray], places: np.ndarray) -> int:
    """How many entries a block's table (subjects, visits) has: its columns' length, or,
    without columns, one past the highest place a row takes."""
    for values in columns.values():
        return len(values)
    return int(places.max(initial=-1)) + 1


def _offset(numbers: list[np.ndarray], counts: list[int], keep_negative: bool = False
            ) -> np.ndarray:
    """Per-block places into per-block tables as places into the tables joined in block
    order (``keep_negative``: -1, no place, stays -1)."""
    starts = np.cumsum([0, *counts[:-1]]).tolist()
    moved = [places + start if not keep_negative else np.where(places >= 0, places + start, -1)
             for places, start in zip(numbers, starts, strict=True)]
    return np.concatenate(moved).astype(np.int32)


#: rows a block adds before it settles them into columns (see ``LaneBlock._settle``)
SETTLE_ROWS = 1024


class _Settled:
    """Rows added to a block, as columns: one list per item of an added row, and one per
    own value."""

    def __init__(self) -> None:
        self.templates: list[PlainTemplate] = []
        self.subjects: list[Any] = []
        self.own: list[list[Any]] = []
        self.sources: list[str] = []
        self.lines: list[int] = []
        self.visits: list[tuple[Any, ...] | None] = []
        self.components: list[int | None] = []

    def extend(self, rows: list[tuple[PlainTemplate, Any, tuple[Any, ...], str, int,
                                      tuple[Any, ...] | None, int | None]]) -> None:
        templates, subjects, owns, sources, lines, visits, components = zip(*rows, strict=True)
        self._join(templates, subjects, list(zip(*owns, strict=True)), sources, lines, visits,
                   components)

    def join(self, other: _Settled) -> None:
        self._join(other.templates, other.subjects, other.own, other.sources, other.lines,
                   other.visits, other.components)

    def _join(self, templates: Any, subjects: Any, own: list[Any], sources: Any, lines: Any,
              visits: Any, components: Any) -> None:
        self.templates += templates
        self.subjects += subjects
        if not self.own:
            self.own = [[] for _ in own]
        for column, values in zip(self.own, own, strict=True):
            column += values
        self.sources += sources
        self.lines += lines
        self.visits += visits
        self.components += components


def _location(line: int, part: int) -> str:
    """Where a row was read in its file: its line, and its component's number in the
    panel on that line (-1: the resource itself is the row)."""
    return f"line {line}" if part < 0 else f"line {line}.component[{part}]"


def _first_use(objects: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Each row's object as a number, objects told apart by identity and numbered in the
    order rows first use them; and, per number, the first row using it."""
    ids = np.fromiter(map(id, objects), dtype=np.int64, count=len(objects))
    # both by hashing (pandas numbers values in the order they first appear), not sorting
    numbers, _ = pd.factorize(ids)
    firsts = np.flatnonzero(~pd.Series(ids, copy=False).duplicated().to_numpy())
    return numbers.astype(np.int32), firsts


def _context_values(subjects: list[Any], context: tuple[tuple[str, str], ...]
                    ) -> list[tuple[Any, ...]]:
    """Each subject's value of each context variable (None where it has no such
    attribute)."""
    getter = _GETTERS.get(context)
    if getter is None:
        getter = _GETTERS[context] = tuple_getter(tuple(attr for _, attr in context))
    try:
        return list(map(getter, subjects))
    except AttributeError:
        return [tuple(getattr(subject, attr, None) for _, attr in context)
                for subject in subjects]


_GETTERS: dict[tuple[tuple[str, str], ...], Callable[[Any], tuple[Any, ...]]] = {}


def _renumbered(numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct ``numbers`` in order, and each of ``numbers`` as its place among them:
    a table's entries that rows use, and the rows' numbers into those alone."""
    used, inverse = np.unique(numbers, return_inverse=True)
    return used, inverse.astype(np.int32)
