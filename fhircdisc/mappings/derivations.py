"""Study-level derivations, run once every domain's rows exist.

RFXSTDTC/RFXENDTC (first/last exposure), RFSTDTC/RFENDTC, AGE/AGEU, ARMNRS,
--DY/--STDY/--ENDY (no day 0), --SEQ per USUBJID in a stable order, AESDTH,
TS rows from the study parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import chain
from typing import Any, NamedTuple, cast

import numpy as np
import pandas as pd

from fhircdisc.caches import remember
from fhircdisc.column_values import TextFacts, text_or_none
from fhircdisc.mappings.dates import age_in_years, date_part
from fhircdisc.mappings.spec import DomainSpec

HIDDEN = ("_order", "_source", "_file", "_location")


def _min_max(rows: list[dict[str, Any]], start: str, end: str
             ) -> tuple[dict[str, str], dict[str, str]]:
    first: dict[str, str] = {}
    last: dict[str, str] = {}
    for row in rows:
        subject = row["USUBJID"]
        for var, store, better in ((start, first, lambda a, b: a < b),
                                   (end, last, lambda a, b: a > b)):
            value = row.get(var) or row.get(start)
            if value and (subject not in store or better(value, store[subject])):
                store[subject] = value
    return first, last


def _set(row: dict[str, Any], var: str, value: Any) -> None:
    """Set a derived value unless the source carried the variable itself."""
    if var not in row.get("_fixed", ()):
        row[var] = value


def apply_carried(rows: list[dict[str, Any]]) -> None:
    """Put the values a resource carried in ``sdtm-variable`` extensions into its row."""
    for row in rows:
        carried = row.pop("_net", None)
        if carried:
            row.update(carried)
            row["_fixed"] = set(carried)


def derive_dm(dm_rows: list[dict[str, Any]], ex_rows: list[dict[str, Any]]) -> None:
    """Reference dates, age and arm status on DM rows (in place)."""
    first, last = _min_max(ex_rows, "EXSTDTC", "EXENDTC")
    for row in dm_rows:
        subject = row.get("_subject")
        usubjid = row["USUBJID"]
        _set(row, "RFXSTDTC", first.get(usubjid))
        _set(row, "RFXENDTC", last.get(usubjid))
        period_start = getattr(subject, "period_start", None)
        period_end = getattr(subject, "period_end", None)
        _set(row, "RFSTDTC", row.get("RFXSTDTC") or period_start)
        _set(row, "RFENDTC", period_end or row.get("RFXENDTC"))
        age = age_in_years(row.get("BRTHDTC"), row.get("RFSTDTC") or row.get("RFICDTC"))
        _set(row, "AGE", float(age) if age is not None else None)
        _set(row, "AGEU", "YEARS" if age is not None else None)
        if not row.get("ARMCD"):
            _set(row, "ARMNRS", "NOT ASSIGNED")
        row.pop("_subject", None)


def study_days(rows: list[dict[str, Any]], reference: dict[str, str | None],
                pairs: tuple[tuple[str, str], ...]) -> None:
    """Each (--DTC, --DY) pair of ``pairs`` whose --DY is in a row: the study day of --DTC
    from the subject's RFSTDTC (``reference``), unless the row carried --DY itself."""
    if not pairs:
        return
    day = _StudyDay(reference)
    for row in rows:
        subject = row.get("USUBJID")
        fixed = row.get("_fixed", ())
        for dtc_var, dy_var in pairs:
            if dy_var in row and dy_var not in fixed:
                row[dy_var] = day(subject, row.get(dtc_var))


class _DateOrdinals(dict[Any, int | None]):
    """--DTC value (or its first 10 characters) -> ordinal of its :func:`date_part` (None:
    partial or missing), each distinct value worked out once."""

    def __missing__(self, dtc: Any) -> int | None:
        day = date_part(dtc)
        return remember(self, dtc, None if day is None else day.toordinal(), _ORDINALS_LIMIT)


_ORDINALS_LIMIT = 20_000
#: the ordinals of the dates met so far (a date is a date whatever the study)
_ORDINALS = _DateOrdinals()


class _StudyDay:
    """The study day of a --DTC for a USUBJID (a float; None when the date or the
    subject's RFSTDTC is partial or missing), each subject's start and each distinct date
    worked out once."""

    def __init__(self, reference: dict[str, str | None]) -> None:
        self.reference = reference
        self.starts: dict[Any, int | None] = {}
        self.ordinals = _ORDINALS

    def start(self, subject: Any) -> int | None:
        """The ordinal of the subject's RFSTDTC (None: partial or missing)."""
        subject = subject or ""
        if subject in self.starts:
            return self.starts[subject]
        start = self.starts[subject] = self.ordinals[self.reference.get(subject)]
        return start

    def __call__(self, subject: Any, dtc: Any) -> float | None:
        start = self.start(subject)
        if start is None:
            return None
        event = self.ordinals[dtc[:10] if dtc.__class__ is str else dtc]
        if event is None:
            return None
        delta = event - start
        return float(delta + 1 if delta >= 0 else delta)


def start_ordinals(reference: dict[str, str | None]) -> dict[str, int | None]:
    """Each subject's RFSTDTC of ``reference`` as :func:`days_of` reads it: the ordinal of
    its day (None: partial or missing)."""
    return {subject: _ORDINALS[start] for subject, start in reference.items()}


def days_of(subjects: Iterable[Any], dtcs: Iterable[Any], reference: dict[str, str | None],
            places: np.ndarray | None = None,
            starts: dict[str, int | None] | None = None) -> np.ndarray:
    """:func:`study_days` on columns: the study day of each --DTC of ``dtcs`` for the
    USUBJID beside it in ``subjects``, as an object array (None where there is none).
    With ``places``, ``subjects`` is a table of subjects and row ``i``'s is
    ``subjects[places[i]]``. ``starts``: :func:`start_ordinals` of ``reference``, made
    once by a caller that asks for many columns."""
    if not isinstance(dtcs, np.ndarray):
        dtcs = np.fromiter(dtcs, dtype=object)
    day = _StudyDay(reference)
    if starts is None:
        begins = _ordinals(list(subjects), day.start)
    else:                   # each subject's start read from the table, not worked out
        begins = _ordinals([subject or "" for subject in subjects], starts.get)
    if places is not None:
        begins = begins[places]
    out = np.full(len(begins), None, dtype=object)
    dated = np.flatnonzero(~np.isnan(begins))
    if not len(dated):                 # no subject has a start: no date is read
        return out
    events = _ordinals([dtc[:10] if dtc.__class__ is str else dtc
                        for dtc in dtcs[dated].tolist()], day.ordinals.__getitem__)
    delta = events - begins[dated]
    with np.errstate(invalid="ignore"):
        found = np.where(delta >= 0, delta + 1, delta)
    days = found.astype(object)
    days[np.isnan(found)] = None
    out[dated] = days
    return out


def _ordinals(values: list[Any], ordinal: Callable[[Any], int | None]) -> np.ndarray:
    """``ordinal`` of each value as floats (NaN for None), asked once per distinct value
    (and for each missing one: None and NaN may differ)."""
    codes, distinct = pd.factorize(np.asarray(values, dtype=object))
    table = np.array([np.nan if o is None else float(o)
                      for o in (*map(ordinal, distinct.tolist()), None)])
    found = table[codes]
    for place in np.flatnonzero(codes < 0).tolist():
        own = ordinal(values[place])
        found[place] = np.nan if own is None else float(own)
    return found


def all_fixed(rows: list[dict[str, Any]], seq_var: str) -> bool:
    """Whether every row carried its own --SEQ (then the source's numbering is kept)."""
    return bool(rows) and all(seq_var in row.get("_fixed", ()) for row in rows)


def sequence(rows: list[dict[str, Any]], seq_var: str, keys: tuple[str, ...],
             fixed: bool | None = None) -> None:
    """Sort ``rows`` by USUBJID and ``keys`` (then read order) and number --SEQ per subject.

    ``fixed`` (default: :func:`all_fixed` of ``rows``) keeps carried numbers instead; a
    caller that sees the rows in parts passes the answer for the whole domain.
    """
    if fixed is None:
        fixed = all_fixed(rows, seq_var)
    order, numbers = sequence_order(
        [row.get("USUBJID") for row in rows], [[row.get(key) for row in rows] for key in keys],
        [row.get(seq_var) for row in rows] if fixed else None,
        lambda i: _read_key(rows[i]))
    rows[:] = [rows[i] for i in order]
    if numbers is not None:
        for row, number in zip(rows, numbers, strict=True):
            row[seq_var] = number


class Tabled:
    """A column as a table of values and, per row, its value's place in the table (a lane
    block's template or subject values): the column is ``values[places]``. Every value of
    the table is some row's."""

    def __init__(self, values: list[Any], places: np.ndarray) -> None:
        self.values = values
        self.places = places

    def rows(self) -> list[Any]:
        """The column, row by row."""
        table = np.fromiter(self.values, dtype=object, count=len(self.values))
        rows: list[Any] = table[self.places].tolist()
        return rows


Column = list[Any] | Tabled
"""The values of a variable over rows: one a row, or :class:`Tabled`."""


def sequence_order(subjects: Column, keys: list[Column], carried: list[Any] | None,
                   read_key: Callable[[int], Any]) -> tuple[list[int], list[float] | None]:
    """:func:`sequence` on columns: the order of the rows, and their --SEQ in that order.

    ``subjects``: each row's USUBJID; ``keys``: the values of each sort key variable;
    ``carried``: each row's own --SEQ, to sort by and keep (then no numbers come back);
    ``read_key(i)``: where row ``i`` was read, to order rows equal in everything else. A
    tabled column is ranked by its table alone.
    """
    ranking = sequence_ranking(subjects, keys, carried, read_key)
    numbers = ranking.numbers
    return (np.asarray(ranking.order).tolist(),
            None if numbers is None else np.asarray(numbers, dtype=np.float64).tolist())


@dataclass(frozen=True)
class Ranking:
    """What :func:`sequence_ranking` found: the order of the rows, their --SEQ in that
    order (None: carried), and, when the rows were sorted by ranks, each sort key's rank
    of every row (in read order; equal ranks for equal key texts, None's the highest).
    Sorted by ranks, the order and numbers are arrays (row places, floats)."""

    order: list[int] | np.ndarray
    numbers: list[float] | np.ndarray | None
    key_ranks: list[np.ndarray] | None = None
    #: per sort key, when it was ranked by its bytes (texts, every one of them): what
    #: was found of its texts on the way (:class:`TextRows`)
    key_facts: list[TextRows | None] | None = None


class TextRows(NamedTuple):
    """What ranking texts by their bytes finds of them: their
    :class:`~fhircdisc.column_values.TextFacts`, and, when they are all of one length,
    their characters as rows of ``uint8`` codes (a text a row, in the texts' order)."""

    facts: TextFacts
    chars: np.ndarray | None


def sequence_ranking(subjects: Column, keys: list[Column], carried: list[Any] | None,
                     read_key: Callable[[int], Any]) -> Ranking:
    """:func:`sequence_order`, with the sort keys' ranks when it ranked them."""
    if carried is not None or not _all_text(subjects):
        listed = subjects.rows() if isinstance(subjects, Tabled) else subjects
        if carried is not None:
            return Ranking(sorted(range(len(listed)),
                                  key=lambda i: (listed[i] or "", carried[i] or 0.0)), None)
        texts = [_key_texts(key.rows() if isinstance(key, Tabled) else key) for key in keys]
        listed = [subject or "" for subject in listed]
        order = _sorted_by_tuples(listed, texts, read_key)
        return Ranking(order, _numbers([listed[i] for i in order]))
    ranked = [_column_ranks(subjects, subject=True),
              *(_column_ranks(key, subject=False) for key in keys)]
    codes = [ranks for ranks, _ in ranked]
    places = _read_order_ties(read_key, _stable_order(codes), codes)
    return Ranking(places, _run_numbers(codes[0][places]), codes[1:],
                   [facts for _, facts in ranked[1:]])


def _all_text(subjects: Column) -> bool:
    """Whether every subject is a text once a missing one (a false value) is ""."""
    values = subjects.values if isinstance(subjects, Tabled) else subjects
    if set(map(type, values)) <= {str}:                         # the usual column
        return True
    return set(map(type, (value or "" for value in values))) <= {str}


def _column_ranks(column: Column, subject: bool) -> tuple[np.ndarray, TextRows | None]:
    """Each row's rank by its value of ``column`` (:func:`_text_ranks` of the key texts;
    ``subject``: None ranks as ""), and what was found of its values (:class:`TextRows`)
    when they are a row's each, and texts that were ranked by their bytes."""
    values = column.values if isinstance(column, Tabled) else column
    texts = [value or "" for value in values] if subject else _key_texts(values)
    ranks, facts = _ranks_and_facts(texts)
    if isinstance(column, Tabled):      # (what was found is of the table, not the rows)
        return ranks[column.places], None
    # what was found is of the texts: of the values only when they are the texts
    return ranks, facts if texts is values else None


def _key_texts(values: list[Any]) -> list[str | None]:
    """A sort key variable as it orders rows: a value by its text, ``None`` (after all)."""
    if text_or_none(values):                          # each value is its own text already
        return values
    return [None if value is None else str(value or "") for value in values]


def _read_key(row: dict[str, Any]) -> tuple[Any, Any]:
    """The last sort key of a row: where it was read."""
    return row.get("_order", 0), row.get("_location", "")


def _sorted_by_tuples(subjects: list[Any], texts: list[list[str | None]],
                      read_key: Callable[[int], Any]) -> list[int]:
    """The stable order of rows by subject, key texts (missing last) and read order."""
    keyed = [[(text is None, text or "") for text in column] for column in texts]
    keys = list(zip(subjects, *keyed, map(read_key, range(len(subjects))), strict=True))
    return sorted(range(len(keys)), key=keys.__getitem__)


def _text_ranks(texts: list[str | None]) -> np.ndarray:
    """Rank of each text among the distinct texts; ``None`` ranks after every text."""
    return _ranks_and_facts(texts)[0]


def _ranks_and_facts(texts: list[str | None]) -> tuple[np.ndarray, TextRows | None]:
    """:func:`_text_ranks`, and what was found of the texts (:class:`TextRows`) when they
    were ranked by their bytes (every one of them a text then)."""
    if len(texts) >= _BYTES_FROM and len(set(texts[:_PROBE])) > _PROBE // 2:
        found = _byte_ranks(texts)         # texts that rarely repeat (dates): sorted as is
        if found is not None:
            ranks, longest, chars = found
            return ranks, TextRows(TextFacts(longest, True, False), chars)
    codes, uniques = pd.factorize(np.fromiter(texts, dtype=object, count=len(texts)))
    distinct: list[str] = uniques.tolist()
    places: Any
    if "\x00" in "".join(distinct):
        # numpy's fixed-width text drops trailing NULs: Python sorts such texts
        places = sorted(range(len(distinct)), key=distinct.__getitem__)
    else:                              # numpy sorts by code point, as Python does
        places = np.argsort(np.asarray(distinct, dtype=str), kind="stable")
    rank = np.empty(len(distinct) + 1, dtype=np.int64)
    rank[places] = np.arange(len(distinct), dtype=np.int64)
    rank[-1] = len(distinct)                        # code -1: None, after every text
    return rank[codes], None


#: a column of at least this many texts, half of whose first :data:`_PROBE` differ, is
#: ranked by sorting its texts as bytes rather than through its distinct texts
_BYTES_FROM = 1024
_PROBE = 256


def _byte_ranks(texts: list[str | None]) -> tuple[np.ndarray, int, np.ndarray | None] | None:
    """:func:`_text_ranks` of ASCII texts without NUL, by sorting them as fixed-width
    bytes (byte order is code point order): packed into one number each when they fit
    (:func:`_packed_key`), else in 8-byte big-endian words; the length of the longest
    text; and, when they are all of that length, their characters as rows (``uint8``).
    None for any other column (None among the texts too)."""
    if not texts:
        return np.zeros(0, dtype=np.int64), 0, None
    try:
        # a NUL after each text: the NULs of the joined text are those, and no other,
        # exactly when no text holds one (a value that is not text fails the join)
        joined = "\x00".join(cast(list[str], texts)) + "\x00"
    except TypeError:
        return None
    if not joined.isascii() or joined.count("\x00") != len(texts):
        return None
    size = joined.index("\x00")                  # the first text's length
    chars = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
    if len(chars) == len(texts) * (size + 1) and not chars[size::size + 1].any():
        # texts of one length (an export's dates), each NUL where the rows end: rows of
        # bytes
        width = -(-max(size, 1) // 8) * 8
        rows = np.zeros((len(texts), width), dtype=np.uint8)
        rows[:, :size] = chars.reshape(len(texts), size + 1)[:, :size]
        data = rows.view(f"S{width}").reshape(len(texts))
        longest = size
        one_length: np.ndarray | None = rows[:, :size]
    else:
        one_length = None
        data = np.fromiter(texts, dtype=object, count=len(texts)).astype(bytes)
        longest = data.dtype.itemsize              # in bytes: characters, all ASCII
        width = -(-max(longest, 1) // 8) * 8
        data = data.astype(f"S{width}")
    key = _packed_key(data.view(np.uint8).reshape(len(data), width))
    if key is not None:          # one number a text: one sort (equal numbers, equal texts)
        order = np.argsort(key)
        ordered_key = key[order]
        changes = ordered_key[1:] != ordered_key[:-1]
    else:
        words = data.view(">u8").reshape(len(data), width // 8)
        order = np.lexsort(words.T[::-1])
        ordered = data[order]
        changes = ordered[1:] != ordered[:-1]
    dense = np.zeros(len(data), dtype=np.int64)
    np.cumsum(changes, out=dense[1:])
    ranks = np.empty(len(data), dtype=np.int64)
    ranks[order] = dense
    return ranks, longest, one_length


def _packed_key(rows: np.ndarray) -> np.ndarray | None:
    """Rows of bytes as numbers in the same order, when they fit 64 bits: each byte place
    takes the bits its values span among the rows (a place of one value none; the
    digits of a date four), the first place the highest bits. None when they do not
    fit (the rows are then compared word by word)."""
    if not len(rows):
        return None
    places = np.ascontiguousarray(rows.T)          # a byte place's values side by side
    low, high = places.min(axis=1), places.max(axis=1)
    bits = [span.bit_length() for span in (high.astype(np.int64) - low).tolist()]
    if sum(bits) > 64:
        return None
    key = np.zeros(len(rows), dtype=np.uint64)
    shift = sum(bits)
    for place, size in enumerate(bits):
        if size:
            shift -= size
            key |= (places[place] - low[place]).astype(np.uint64) << np.uint64(shift)
    return key


def _stable_order(codes: list[np.ndarray]) -> np.ndarray:
    """The stable sort order of rows by ``codes`` (non-negative ranks, first the major)."""
    combined = np.zeros(len(codes[0]), dtype=np.int64)
    span = 1
    for column in codes:
        size = int(column.max(initial=0)) + 1
        span *= size
        if span >= 2**62:
            return np.lexsort(codes[::-1])
        combined = combined * size + column
    rows = len(combined)
    if span * max(rows, 1) < 2**62:
        # each row's place as the last key: the numbers all differ, so the quicker
        # unstable sort gives the stable order
        return np.argsort(combined * rows + np.arange(rows))
    return np.argsort(combined, kind="stable")


def _read_order_ties(read_key: Callable[[int], Any], order: np.ndarray,
                     codes: list[np.ndarray]) -> np.ndarray:
    """``order`` (a stable sort by ``codes``) with each run of rows equal in every code
    sorted by read order (``read_key``)."""
    tied = np.ones(max(len(order) - 1, 0), dtype=bool)
    for column in codes:
        ranked = column[order]
        tied &= ranked[1:] == ranked[:-1]
    if not tied.any():
        return order
    result: list[int] = order.tolist()
    edges = np.flatnonzero(np.diff(np.concatenate(([False], tied, [False])).astype(np.int8)))
    for first, last in zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True):
        run = result[first:last + 1]
        run.sort(key=read_key)
        result[first:last + 1] = run
    return np.asarray(result, dtype=np.intp)


def _run_numbers(subjects: np.ndarray) -> np.ndarray:
    """--SEQ of rows sorted by subject (their codes): 1.0, 2.0, ... within each subject."""
    position = np.arange(len(subjects))
    starts = np.ones(len(subjects), dtype=bool)
    starts[1:] = subjects[1:] != subjects[:-1]
    first = np.maximum.accumulate(np.where(starts, position, 0))
    return (position - first + 1).astype(np.float64)


def _numbers(subjects: list[Any]) -> list[float]:
    """--SEQ of rows sorted by subject: 1.0, 2.0, ... within each subject."""
    counters: dict[Any, int] = {}
    out = []
    for subject in subjects:
        counters[subject] = number = counters.get(subject, 0) + 1
        out.append(float(number))
    return out


def _ts_rows(rows: list[dict[str, Any]], spec: DomainSpec, studyids: list[str]
             ) -> list[dict[str, Any]]:
    """Pivot each ResearchStudy's parameter values into TS rows."""
    out = []
    for row in rows:
        studyid = studyids[0] if len(studyids) == 1 else row.get("_studyid")
        if row.get("_records"):
            for record in row["_records"]:
                out.append({"STUDYID": studyid, "DOMAIN": "TS", **record,
                            **{k: row[k] for k in HIDDEN if k in row}})
            continue
        counts: dict[str, int] = {}
        for parmcd, parm in spec.extra.items():
            value = row.get(parmcd)
            if value is None:
                continue
            counts[parmcd] = counts.get(parmcd, 0) + 1
            out.append({"STUDYID": studyid, "DOMAIN": "TS", "TSSEQ": float(counts[parmcd]),
                        "TSPARMCD": parmcd, "TSPARM": parm, "TSVAL": str(value),
                        **{k: row[k] for k in HIDDEN if k in row}})
    return out


def derive(rows: dict[str, list[dict[str, Any]]], specs: dict[str, DomainSpec]
           ) -> dict[str, pd.DataFrame]:
    """All study-level derivations; returns one DataFrame per non-empty domain."""
    for domain_rows in rows.values():
        apply_carried(domain_rows)
    dm_rows = rows.get("DM", [])
    for row in dm_rows:
        row.setdefault("_subject", None)
    derive_dm(dm_rows, rows.get("EX", []))
    reference = {row["USUBJID"]: row.get("RFSTDTC") for row in dm_rows}
    study_days(dm_rows, reference, (("DMDTC", "DMDY"),))
    study_days(rows.get("EX", []), reference, (("EXSTDTC", "EXSTDY"), ("EXENDTC", "EXENDY")))
    study_days(rows.get("LB", []), reference, (("LBDTC", "LBDY"),))
    study_days(rows.get("VS", []), reference, (("VSDTC", "VSDY"),))
    study_days(rows.get("AE", []), reference, (("AESTDTC", "AESTDY"), ("AEENDTC", "AEENDY")))
    for row in rows.get("AE", []):
        _set(row, "AESDTH", "Y" if row.get("AEOUT") == "FATAL" else None)
    for domain in ("EX", "LB", "VS", "AE"):
        sequence(rows.get(domain, []), f"{domain}SEQ", specs[domain].seq_keys)
    dm_rows.sort(key=lambda r: r["USUBJID"])
    studyids = sorted({r["STUDYID"] for r in dm_rows if r.get("STUDYID")})
    rows = {**rows, "TS": _ts_rows(rows.get("TS", []), specs["TS"], studyids)}
    frames = {}
    for domain in ("DM", "EX", "LB", "VS", "AE", "TS"):
        domain_rows = rows.get(domain, [])
        if not domain_rows:
            continue
        columns = list(dict.fromkeys(chain.from_iterable(domain_rows)))  # keys, in order
        frames[domain] = pd.DataFrame.from_records(domain_rows, columns=columns)
    return frames


__all__ = ["HIDDEN", "Ranking", "Tabled", "all_fixed", "date_part", "days_of", "derive",
           "sequence", "sequence_order", "sequence_ranking", "study_days"]
