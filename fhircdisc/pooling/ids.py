"""Subject identifiers made unique across pooled studies.

A USUBJID is unique within its study only. When the same USUBJID occurs in two or more
pooled studies, every study's copy is prefixed with its own STUDYID
(``STUDYID-USUBJID``): the rule treats all colliding studies alike, so the result does not
depend on the order of the inputs, and two subjects are never merged. USUBJIDs that
collide with nothing are kept as they are. Every subject gets a row in the id map
(``STUDYID, USUBJID_ORIGINAL, USUBJID_POOLED``), changed or not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from fhircdisc.converters.datasets import is_missing


@dataclass(frozen=True)
class IdMapRow:
    STUDYID: str
    USUBJID_ORIGINAL: str
    USUBJID_POOLED: str

    @property
    def changed(self) -> bool:
        return self.USUBJID_ORIGINAL != self.USUBJID_POOLED


@dataclass(frozen=True)
class Collision:
    """One USUBJID found in several studies."""

    usubjid: str
    studies: tuple[str, ...]


@dataclass(frozen=True)
class DuplicateSubject:
    """A USUBJID with more than one DM row inside one study (left as is: a conflict)."""

    study: str
    usubjid: str
    rows: tuple[int, ...]


@dataclass
class IdResult:
    mapping: dict[str, dict[str, str]]          # study -> original USUBJID -> pooled USUBJID
    rows: list[IdMapRow]
    collisions: list[Collision]
    duplicates: list[DuplicateSubject]
    without_dm: dict[str, list[str]]            # study -> USUBJIDs found outside DM only


def subject_ids(frames: dict[str, pd.DataFrame]) -> tuple[list[str], list[str]]:
    """(USUBJIDs of DM in row order, USUBJIDs of other datasets that DM lacks)."""
    in_dm: list[str] = []
    if "DM" in frames and "USUBJID" in frames["DM"]:
        in_dm = list(dict.fromkeys(str(v) for v in frames["DM"]["USUBJID"]
                                   if not is_missing(v)))
    known = set(in_dm)
    others: list[str] = []
    for name, frame in frames.items():
        if name == "DM" or "USUBJID" not in frame:
            continue
        for value in frame["USUBJID"]:
            if is_missing(value) or str(value) in known:
                continue
            known.add(str(value))
            others.append(str(value))
    return in_dm, others


def harmonize_ids(studies: Sequence[tuple[str, dict[str, pd.DataFrame]]]) -> IdResult:
    """The pooled USUBJID of every subject of every study (``(STUDYID, frames)`` pairs)."""
    per_study: dict[str, list[str]] = {}
    without_dm: dict[str, list[str]] = {}
    duplicates: list[DuplicateSubject] = []
    for study, frames in studies:
        in_dm, others = subject_ids(frames)
        per_study[study] = in_dm + others
        if others:
            without_dm[study] = others
        if "DM" in frames and "USUBJID" in frames["DM"]:
            column = frames["DM"]["USUBJID"]
            counts = column.value_counts()
            for usubjid in counts[counts > 1].index:
                positions = tuple(int(i) + 1 for i in range(len(column))
                                  if column.iloc[i] == usubjid)
                duplicates.append(DuplicateSubject(study, str(usubjid), positions))

    owners: dict[str, list[str]] = {}
    for study, ids in per_study.items():
        for usubjid in ids:
            owners.setdefault(usubjid, []).append(study)
    collisions = [Collision(u, tuple(s)) for u, s in owners.items() if len(s) > 1]
    colliding = {c.usubjid for c in collisions}

    taken = set(owners)
    mapping: dict[str, dict[str, str]] = {}
    rows: list[IdMapRow] = []
    for study, ids in per_study.items():
        mapping[study] = {}
        for usubjid in ids:
            pooled = usubjid
            if usubjid in colliding:
                pooled = f"{study}-{usubjid}"
                number = 2
                while pooled in taken:           # the prefixed id exists already: never merge
                    pooled = f"{study}-{usubjid}-{number}"
                    number += 1
                taken.add(pooled)
            mapping[study][usubjid] = pooled
            rows.append(IdMapRow(study, usubjid, pooled))
    return IdResult(mapping, rows, collisions, duplicates, without_dm)


def apply_ids(frames: dict[str, pd.DataFrame], mapping: dict[str, str]) -> None:
    """Replace USUBJID in every dataset of one study (in place)."""
    if all(old == new for old, new in mapping.items()):
        return
    for name, frame in frames.items():
        if "USUBJID" in frame:
            frames[name] = frame.assign(USUBJID=pd.Series(
                [None if is_missing(v) else mapping.get(str(v), str(v))
                 for v in frame["USUBJID"]], index=frame.index, dtype=object))
