"""The provenance rows of a bucket of lane rows, written as CSV from tables.

A provenance row is ``DOMAIN,USUBJID,SEQ,SOURCE,FILE,LOCATION``. In a bucket of lane
rows only the source (``Observation/<id>``) is a text of its own: the subject, the
sequence number, the file and the line number each come from a small table (the
subjects of the bucket, the numbers 1, 2, 3 ..., the input files, the digits of line
numbers). Each table entry carries the separators around it, so that a row is six
pieces, joined with every other row's at once: the bytes are those pandas' ``to_csv``
writes for the same rows (``tests/converters/test_provenance_rows.py``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cache

import numpy as np

from fhircdisc.column_values import ColumnValues
from fhircdisc.study import needs_quotes, whole_number_table

#: how many line numbers share a head (the digits but the last four)
_PER_HEAD = 10_000


def tabled_provenance(domain: str, subjects: ColumnValues, seqs: np.ndarray,
                      sources: list[str], files: Sequence[str], origins: np.ndarray | None,
                      lines: np.ndarray) -> bytes | None:
    """The CSV rows (no header) of a bucket's rows read from whole lines (no panel
    component): per row its subject (codes into distinct texts), sequence number
    (float64), source text, file (``files[origins[row]]``, or ``files[0]`` for every row
    when ``origins`` is None) and line number. None when a field would need quotes, or
    is not of the usual kind (a subject that is not text, a sequence number that is not
    whole): then the caller writes the rows another way."""
    rows = len(sources)
    texts = [domain, *files]
    if not all(isinstance(value, str) for value in subjects.uniques):
        return None
    texts += subjects.uniques
    seq_table = whole_number_table(seqs)
    if seq_table is None or needs_quotes(texts) or needs_quotes(sources):
        return None
    # DOMAIN,USUBJID,  SEQ,  SOURCE  ,FILE,line HEAD  TAIL\n
    firsts = np.array([f"{domain},{subject}," for subject in subjects.uniques]
                      + [f"{domain},,"], dtype=object)
    seq_texts, seq_codes = seq_table
    seq_fields = np.array([f"{text}," for text in seq_texts], dtype=object)
    numbers = np.asarray(lines, dtype=np.int64)
    if len(numbers) and numbers.min() < 0:
        raise ValueError("line numbers are not negative")
    below, last = np.divmod(numbers, _PER_HEAD)
    origin = np.zeros(rows, dtype=np.int64) if origins is None or len(files) == 1 \
        else np.asarray(origins, dtype=np.int64)
    # a row's file and the digits of its line number but the last four, as one piece
    spans = int(below.max(initial=0)) + 1
    keys = origin * spans + below
    if len(files) * spans <= rows + _PER_HEAD:      # a piece for each (file, head) there is
        heads = np.arange(len(files) * spans)
    else:                                           # (far apart: one for each in use)
        heads, keys = np.unique(keys, return_inverse=True)
    middles = np.array([f",{files[head // spans]},line {head % spans or ''}"
                        for head in heads.tolist()], dtype=object)
    tails = line_tails()[last + _PER_HEAD * (below > 0)]
    pieces: list[object] = [None] * (5 * rows)
    pieces[0::5] = firsts[np.where(subjects.codes < 0, len(firsts) - 1, subjects.codes)
                          ].tolist()
    pieces[1::5] = seq_fields[seq_codes].tolist()
    pieces[2::5] = sources
    pieces[3::5] = middles[keys.reshape(-1)].tolist()
    pieces[4::5] = tails.tolist()
    return "".join(pieces).encode("utf-8")  # type: ignore[arg-type]


@cache
def line_tails() -> np.ndarray:
    """The last digits of a line number and the line's end: first as the whole number
    (a line below :data:`_PER_HEAD`), then in four digits (after a head). Made once a
    process (a process that forks workers makes it first: they share it)."""
    width = len(str(_PER_HEAD - 1))
    return np.array([f"{n}{os.linesep}" for n in range(_PER_HEAD)]
                    + [f"{n:0{width}d}{os.linesep}" for n in range(_PER_HEAD)], dtype=object)
