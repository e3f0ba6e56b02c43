"""Identifiers and keys: --SEQ, USUBJID against DM, duplicate records, code/decode pairs,
one STUDYID."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import numpy as np

from fhircdisc.column_values import first_rows
from fhircdisc.schemas.conformance.checks.registry import check, rows, text
from fhircdisc.schemas.conformance.context import Dataset, Hit, Params, Skip, Study


@check("seq_unique", required=("seq", "by"), fields=("first_row",))
def seq_unique(ds: Dataset, p: Params, study: Study) -> Iterator[Hit]:
    """--SEQ is unique within each ``by`` value (USUBJID)."""
    seq, by = p.name("seq"), p.name("by")
    ds.require(by, seq)
    first = first_rows([ds.values(by), ds.values(seq)], len(ds))
    dup = ds.values(seq).present() & (first != np.arange(len(ds)))
    for row in rows(dup):
        yield Hit(row=row, variable=seq, value=ds.df[seq].iat[row],
                  fields={"first_row": int(first[row]) + 1})


@check("usubjid_in_dm")
def usubjid_in_dm(ds: Dataset, p: Params, study: Study) -> Iterator[Hit]:
    """Every USUBJID of the dataset has a DM record."""
    subjects = ds.values("USUBJID")
    known = study.dm().values("USUBJID").value_set
    bad = subjects.present() & ~subjects.isin(known)
    for row in rows(bad):
        yield Hit(row=row, variable="USUBJID", value=ds.cell("USUBJID", row))


@check("duplicate_records", required=("keys",), optional=("optional",),
       fields=("keys", "first_row"))
def duplicate_records(ds: Dataset, p: Params, study: Study) -> Iterator[Hit]:
    """No two records share the natural key: ``keys`` plus those ``optional`` variables
    that are present (e.g. --TPT, --POS, --REPNUM: they tell repeated measurements apart)."""
    keys = p.names("keys")
    ds.require(*keys)
    keys += [k for k in p.names("optional") if ds.has(k) and k not in keys]
    first = first_rows([ds.values(key) for key in keys], len(ds))
    label = "+".join(keys)
    for row in rows(first != np.arange(len(ds))):
        yield Hit(row=row, variable=keys[0] if len(keys) == 1 else None,
                  value=" / ".join(text(ds.cell(k, row)) or "" for k in keys),
                  fields={"keys": label, "first_row": int(first[row]) + 1})


@check("code_decode_one_to_one", required=("code", "decode"),
       fields=("other_variable", "other_value"))
def code_decode_one_to_one(ds: Dataset, p: Params, study: Study) -> Iterator[Hit]:
    """Each ``code`` value always has the same ``decode`` value, and vice versa
    (ARMCD/ARM): one finding at the first record of each pair in conflict."""
    code, decode = p.name("code"), p.name("decode")
    ds.require(code, decode)
    pairs = ds.df[[code, decode]].dropna().drop_duplicates()
    codes = Counter(pairs[code])
    decodes = Counter(pairs[decode])
    for row, (c, d) in zip(pairs.index, pairs.itertuples(index=False), strict=True):
        if codes[c] > 1:
            yield Hit(row=row, variable=code, value=c,
                      fields={"other_variable": decode, "other_value": d})
        elif decodes[d] > 1:
            yield Hit(row=row, variable=decode, value=d,
                      fields={"other_variable": code, "other_value": c})


@check("single_studyid", level="study", fields=("expected",))
def single_studyid(study: Study, p: Params) -> Iterator[Hit]:
    """All datasets hold one STUDYID: DM's (when DM has one), else the most frequent."""
    counts: Counter[str] = Counter()
    for ds in study.datasets.values():
        if ds.has("STUDYID"):
            values = ds.values("STUDYID")
            present = values.present()
            tally = np.bincount(values.codes[present], minlength=len(values.uniques)).tolist()
            first = np.full(len(values.uniques), len(ds), dtype=np.intp)
            np.minimum.at(first, values.codes[present], np.flatnonzero(present))
            # in the order the values first appear, as counting the cells would meet them
            counts.update({values.uniques[place]: tally[place]
                           for place in np.argsort(first, kind="stable").tolist()
                           if tally[place]})
    if not counts:
        raise Skip("no STUDYID value")
    dm = study.datasets.get("DM")
    dm_ids = dm.values("STUDYID").value_set if dm is not None and dm.has("STUDYID") \
        else frozenset()
    expected = next(iter(dm_ids)) if len(dm_ids) == 1 else counts.most_common(1)[0][0]
    for ds in study.datasets.values():
        if not ds.has("STUDYID"):
            continue
        values = ds.values("STUDYID")
        bad = values.present() & ~values.isin({expected})
        for row in rows(bad):
            yield Hit(row=row, variable="STUDYID", value=ds.cell("STUDYID", row), dataset=ds.name,
                      fields={"expected": expected})
