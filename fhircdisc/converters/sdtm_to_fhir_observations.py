"""LB rows -> Observation NDJSON lines, computed once per distinct value (fast path).

The reference conversion (``sdtm_to_fhir.py``) writes each row with the inverse of
every spec rule, converts all resources back to SDTM in memory, and adds an
``sdtm-variable`` extension for each variable that does not come back identical. Here
the same computation is factorized:

- a domain's variables fall into *parts* (``LAYOUTS``): the variables a part writes
  build FHIR elements no other part touches, and the forward rules of the variables it
  restores read only those elements. A part is run (inverse rules, then forward rules,
  both the reference functions) once per distinct tuple of its variables, and its
  elements are serialized once;
- what spans rows or parts follows the reference step by step on codes: rejected
  rows, resource ids, Encounters (made by a visit's first row), --SEQ (the sort of
  ``derivations._sequence``), --DY (``study_day`` against RFSTDTC read back from DM),
  "does it come back identical" (``_same``, once per distinct pair of values), and
  the order of the carried variables;
- each line is the concatenation of pre-serialized pieces, which orjson would write
  the same way for the whole resource.

Whatever the layout does not foresee (a spec whose rules no longer match it, a column
of an unexpected type, colliding ids, elements claimed by two parts) raises
``Unsupported`` before any output, and the caller converts with the reference path.
"""

from __future__ import annotations

import itertools
import math
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from fhircdisc.converters.sdtm_to_fhir import (
    _ID_SAFE,
    _REQUIRED,
    _RESOURCE,
    OBS_CATEGORY,
    RejectedRow,
    _same,
    _seq_text,
    encounter_resource,
    fhir_id,
    finish_resource,
)
from fhircdisc.converters.sdtm_to_fhir_columns import (
    CODE,
    Coded,
    combine,
    constant,
    factorize,
    pair_codes,
    pair_index,
)
from fhircdisc.json_text import dumps_kept
from fhircdisc.mappings.algorithms import ALGORITHMS, MapContext
from fhircdisc.mappings.dates import study_day
from fhircdisc.mappings.extensions import variable_extension
from fhircdisc.mappings.inverse import INVERSES, WriteContext, missing
from fhircdisc.mappings.spec import DomainSpec, Rule, Unmapped
from fhircdisc.mappings.terminology import Terminology
from fhircdisc.schemas import sdtmig

SKIPPED = ("STUDYID", "DOMAIN", "USUBJID")        # not compared by the check pass
_DUMMY = "x"
_DUMMY_REF = "Patient/x"
Pieces = list[tuple[np.ndarray | None, np.ndarray]]


class Unsupported(Exception):
    """Input the fast path does not handle exactly; the reference path converts it."""


@dataclass(frozen=True)
class Part:
    """Variables converted together: ``writes`` build FHIR elements that only they touch;
    the forward rules of ``restores`` read only those elements."""

    writes: tuple[str, ...]
    restores: tuple[str, ...]


@dataclass(frozen=True)
class Layout:
    """How a findings domain's spec splits into independent parts."""

    domain: str
    category: str
    parts: tuple[Part, ...]
    day_of: tuple[str, str]           # (--DTC, --DY) as derivations.derive pairs them


LAYOUTS: dict[str, Layout] = {
    "LB": Layout("LB", "laboratory", (
        Part(("LBTESTCD", "LBTEST", "LBLOINC"),
             ("LBTESTCD", "LBTEST", "LBCAT", "LBLOINC", "LBSPEC")),
        Part(("LBORRES", "LBORRESU", "LBSTAT", "LBREASND"),
             ("LBORRES", "LBORRESU", "LBSTRESC", "LBSTRESN", "LBSTRESU", "LBSTAT",
              "LBREASND")),
        Part(("LBORNRLO", "LBORNRHI"), ("LBORNRLO", "LBORNRHI", "LBSTNRLO", "LBSTNRHI")),
        Part(("LBNRIND",), ("LBNRIND",)),
        Part(("LBMETHOD",), ("LBMETHOD",)),
        Part(("LBDTC",), ("LBDTC",)),
    ), ("LBDTC", "LBDY")),
}


@dataclass
class Subjects:
    """What the check pass knows of each subject once DM has been read back.

    ``studyid`` / ``rfstdtc``: USUBJID -> STUDYID and RFSTDTC of the DM row read back
    (a subject absent here is not enrolled, so its resources do not map back).
    """

    studyid: dict[str, Any]
    rfstdtc: dict[str, Any]


def _dumps(value: Any) -> bytes:
    return dumps_kept(value)


def _num(value: Any) -> Any:
    """A Num variable as the read-back frame holds it (``Study._tidy``): float or None."""
    if value is None:
        return None
    if isinstance(value, float):
        return None if math.isnan(value) else value
    number = pd.to_numeric(pd.Series([value], dtype=object), errors="coerce").astype(
        "float64").iloc[0]
    return None if math.isnan(number) else float(number)


def _tidy_value(domain: str, var: str, value: Any) -> Any:
    spec = sdtmig.variable(domain, var)
    if spec is not None and spec.type == "Num":
        return _num(value)
    if spec is not None and isinstance(value, float) and math.isnan(value):
        return None
    return value


def _sort_key(value: Any) -> tuple[bool, str]:
    return value is None, str(value or "")


def _rule_value(rule: Rule, view: dict[str, Any], ctx: MapContext) -> Any:
    """One rule of ``map_view``: its algorithm, then its fallback when that found nothing."""
    value = ALGORITHMS[rule.algorithm](view, rule, ctx)
    if value is None and rule.fallback is not None:
        value = ALGORITHMS[rule.fallback.algorithm](view, rule.fallback, ctx)
    return value


def _writes(rule: Rule, version: str) -> bool:
    """Whether the inverse of ``rule`` may write anything (see ``mappings/inverse.py``)."""
    if INVERSES[rule.algorithm] is INVERSES["derived"]:
        return False
    if rule.algorithm == "not_done":
        return True
    if rule.algorithm == "result_char":
        return rule.write == "value"
    if rule.algorithm in ("ct_decode", "text") and rule.write is None and rule.write_r5 is None:
        return False
    return rule.write_path(version) is not None


def _mask(values: list[Any], test: Callable[[Any], bool]) -> np.ndarray:
    return np.array([test(v) for v in values], dtype=bool)


def _present(value: Any) -> bool:
    return not missing(value)


@dataclass
class _PartResult:
    """A part run on its distinct tuples (list index: the part's code)."""

    part: Part
    codes: np.ndarray                      # per converted row
    first: np.ndarray                      # a converted row holding each tuple
    changed: list[dict[str, Any]] = field(default_factory=list)   # skeleton elements replaced
    added: list[list[tuple[str, Any]]] = field(default_factory=list)  # new, creation order
    creators: list[dict[str, int]] = field(default_factory=list)  # element -> creating rule
    raw: list[dict[str, Any]] = field(default_factory=list)   # read back, as rules return
    tidy: list[dict[str, Any]] = field(default_factory=list)  # ... as the frame holds them
    fails: list[bool] = field(default_factory=list)           # reading back raises Unmapped


class ObservationPlan:
    """One findings dataset on its way to NDJSON lines.

    The constructor does everything that does not depend on DM read back (it can run
    while the reference converts DM); ``finish`` adds what does; ``pieces`` then gives
    the pieces of every line (``write_lines`` writes any range of them). ``factorized``:
    columns already factorized (``None``: a column ``factorize`` refused).
    """

    def __init__(self, spec: DomainSpec, frame: pd.DataFrame, file: str, terms: Terminology,
                 version: str, patients: dict[str, str],
                 factorized: dict[str, Coded | None] | None = None) -> None:
        if spec.domain not in LAYOUTS:
            raise Unsupported(f"no fast layout for {spec.domain}")
        self.spec = spec
        self.layout = LAYOUTS[spec.domain]
        self.domain = spec.domain
        self.seq_var = f"{spec.domain}SEQ"
        self.file = file
        self.terms = terms
        self.version = version
        self.rows = len(frame)
        self.columns = [str(c) for c in frame.columns]
        if len(set(self.columns)) != len(self.columns) or "USUBJID" not in self.columns:
            raise Unsupported("repeated columns or no USUBJID")
        self._check_layout()
        self.cols: dict[str, Coded] = {}
        factorized = factorized or {}
        for name in self.columns:
            if name in ("STUDYID", "DOMAIN"):
                continue
            coded = factorized[name] if name in factorized else factorize(frame[name])
            if coded is None:
                raise Unsupported(f"column {name} of type {frame[name].dtype}")
            self.cols[name] = coded
        self.rejected: list[RejectedRow] = []
        self._rows(patients)
        self._ids()
        self._encounters(patients)
        self.parts = [self._run_part(part) for part in self.layout.parts]
        self._slots()
        self._compare()
        self.head = self._head()
        self.finished = False

    # -- the layout against the spec --------------------------------------------------------
    def _check_layout(self) -> None:
        spec, layout = self.spec, self.layout
        claimed: Counter[str] = Counter(v for p in layout.parts for v in p.restores)
        if any(n > 1 for n in claimed.values()) or any(
                not set(p.writes) <= set(p.restores) for p in layout.parts):
            raise Unsupported("layout parts overlap")
        self.context_rules: list[Rule] = []
        self.encounter_rules: list[Rule] = []
        for rule in spec.rules:
            writer = next((p for p in layout.parts if rule.var in p.writes), None)
            if writer is None and _writes(rule, self.version):
                raise Unsupported(f"rule {rule.var} writes FHIR but is in no part's writes")
            if writer is not None and rule.algorithm == "flag":
                raise Unsupported("flags read other parts' elements")
            if writer is not None and rule.algorithm == "unit" and ":" in (rule.value or "") \
                    and f"{rule.var[:2]}TESTCD" not in writer.writes:
                raise Unsupported(f"{rule.var} reads its test code")
            if rule.var in claimed:
                continue
            if rule.algorithm == "hardcode" or (rule.algorithm == "context"
                                                and rule.value in ("studyid", "usubjid")):
                self.context_rules.append(rule)
            elif rule.algorithm == "visit_number" or (
                    rule.algorithm == "text" and rule.fallback is None and rule.paths
                    and all(p.startswith("_encounter.type") for p in rule.paths)):
                self.encounter_rules.append(rule)
            elif rule.algorithm == "derived" and rule.var in (self.seq_var, layout.day_of[1]):
                continue
            else:
                raise Unsupported(f"rule {rule.var} ({rule.algorithm}) is in no part")
        covered = set(claimed) | {r.var for r in self.context_rules + self.encounter_rules}
        if covered | {self.seq_var, layout.day_of[1]} != set(spec.variables):
            raise Unsupported("layout does not cover the spec")
        if layout.day_of[0] not in claimed or not set(spec.seq_keys) <= set(claimed):
            raise Unsupported("--DTC or --SEQ keys not restored by a part")

    def col(self, name: str) -> Coded:
        return self.cols.get(name) or constant(self.rows)

    # -- rows that become resources ----------------------------------------------------------
    def _rows(self, patients: dict[str, str]) -> None:
        usubjid = self.cols["USUBJID"]
        texts = usubjid.map(lambda v: None if missing(v) else str(v))
        known = _mask(texts, lambda t: t is not None and t in patients)
        required = self.col(_REQUIRED[self.domain])
        present = _mask(required.values, _present)
        valid = known[usubjid.codes] & present[required.codes]
        for position in np.flatnonzero(~valid).tolist():
            text = texts[usubjid.codes[position]]
            if text is None or text not in patients:
                self._reject(position, "USUBJID", text,
                             "USUBJID is missing" if text is None
                             else f"USUBJID {text} is not in DM")
            else:
                var = _REQUIRED[self.domain]
                self._reject(position, var, None,
                             f"{var} is required to make a {_RESOURCE[self.domain]}")
        self.subject_text = texts
        self.index = np.flatnonzero(valid)               # the rows converted, in order
        self.converted = len(self.index)
        self.subject = usubjid.codes[self.index]         # per converted row
        self.subject_ref = [patients.get(t) if t is not None else None for t in texts]
        self._at: dict[str, Coded] = {}

    def _reject(self, position: int, variable: str, value: str | None, message: str) -> None:
        self.rejected.append(RejectedRow(self.domain, self.file, position + 1, variable, value,
                                         message))

    def at(self, name: str) -> Coded:
        """A column on the converted rows only."""
        if name not in self._at:
            column = self.col(name)
            self._at[name] = Coded(column.codes[self.index], column.values)
        return self._at[name]

    # -- ids ----------------------------------------------------------------------------------
    def _ids(self) -> None:
        """``fhir_id(domain, USUBJID, seq)`` of every converted row, as two pieces."""
        prefix = self.domain.lower()
        rows, subj = self.index, self.subject
        seq = self.at(self.seq_var)
        seq_texts = seq.map(lambda v: _seq_text(v, -1) if isinstance(v, float) else None)
        by_position = _mask(seq_texts, lambda t: t is None)[seq.codes]
        safe_subject = _mask(self.subject_text, lambda t: t is not None and not _ID_SAFE.search(t))
        subject_len = np.array([len(t or "") for t in self.subject_text], dtype=np.int64)
        seq_safe = _mask(seq_texts, lambda t: t is not None and not _ID_SAFE.search(t))
        seq_len = np.array([len(t or "") for t in seq_texts], dtype=np.int64)[seq.codes]
        if by_position.any():
            seq_len = np.where(by_position, _digits(rows + 1), seq_len)
        readable = (safe_subject[subj] & (by_position | seq_safe[seq.codes])
                    & (len(prefix) + 2 + subject_len[subj] + seq_len <= 64))
        # piece 1: "lb-<USUBJID>-" per subject (empty for a hashed id);
        # piece 2: the seq text (per distinct seq, or per row), or the whole hashed id
        self.id_head = np.array([f"{prefix}-{t}-".encode() if ok else b""
                                 for t, ok in zip(self.subject_text, safe_subject.tolist(),
                                                  strict=True)] + [b""], dtype=object)
        head_codes = np.where(readable, subj, len(self.subject_text)).astype(CODE)
        tails: list[bytes] = [(t or "").encode() for t in seq_texts]
        tail_codes = seq.codes.astype(CODE, copy=True)
        special = np.flatnonzero(by_position | ~readable)
        for at in special.tolist():
            text = self.subject_text[subj[at]]
            seq_text = _seq_text(seq.values[seq.codes[at]], int(rows[at]))
            tails.append(seq_text.encode() if readable[at]
                         else fhir_id(prefix, text, None, seq_text).encode())
            tail_codes[at] = len(tails) - 1
        self.id_tail = np.array(tails, dtype=object)
        self.id_codes = (head_codes, tail_codes)
        plain = bool(readable.all() and not by_position.any())
        self._check_ids(plain, seq.codes, seq_texts)

    def _check_ids(self, plain: bool, seq_codes: np.ndarray, seq_texts: list[str | None]
                   ) -> None:
        """Two rows with one id would make the reference keep only one of them: refuse."""
        texts = {t for t in self.subject_text if t is not None}
        # "lb-A-B-1" is USUBJID "A-B" with seq 1, or "A" with seq "B-1": only when a
        # USUBJID is another one followed by "-" can two readable ids meet
        nested = any(t[:at] in texts for t in texts for at in range(len(t)) if t[at] == "-")
        if plain and not nested:
            text_codes = pd.factorize(np.array([t or "" for t in seq_texts], dtype=object))[0]
            pairs, _ = pair_index(self.subject, len(self.subject_text),
                                  text_codes[seq_codes], len(seq_texts) + 1)
            if len(pairs) and int(pairs.max()) + 1 != len(pairs):
                raise Unsupported("two rows share a resource id")
            return
        if pd.Series(list(self.row_ids()), dtype=object).duplicated().any():
            raise Unsupported("two rows share a resource id")

    def row_ids(self) -> Iterator[str]:
        """The resource id of every converted row (one by one: for checks)."""
        head, tail = self.id_codes
        for a, b in zip(head.tolist(), tail.tolist(), strict=True):
            yield (self.id_head[a] + self.id_tail[b]).decode()

    # -- encounters ---------------------------------------------------------------------------
    def _encounters(self, patients: dict[str, str]) -> None:
        """One Encounter per subject and visit number, made by the visit's first row."""
        visitnum, visit = self.at("VISITNUM"), self.at("VISIT")
        used = np.zeros(len(visitnum.values), dtype=bool)
        used[visitnum.codes] = True
        canon: dict[float, int] = {}
        numbers: list[float] = []
        number_of = np.full(len(visitnum.values), -1, dtype=np.int64)
        for code, value in enumerate(visitnum.values):
            if missing(value) or not used[code]:
                continue
            number = float(value)                      # as the reference (may raise)
            number_of[code] = canon.setdefault(number, len(numbers))
            if number_of[code] == len(numbers):
                numbers.append(number)
        row_number = number_of[visitnum.codes]
        with_visit = np.flatnonzero(row_number >= 0)
        codes, first = pair_codes(self.subject[with_visit], row_number[with_visit],
                                  len(numbers) + 1)
        first_rows_ = with_visit[first]
        subjects = self.subject[first_rows_].tolist()
        number_codes = row_number[first_rows_].tolist()
        visit_codes = visit.codes[first_rows_].tolist()
        # an Encounter is its visit's template (number, VISIT) with its id and subject
        template_of, template_rows = pair_index(
            row_number[first_rows_], len(numbers), visit.codes[first_rows_],
            len(visit.values))
        template_parts: list[tuple[bytes, ...]] = []
        self.encounter_views: list[dict[str, Any] | None] = []
        for at in template_rows.tolist():
            resource = encounter_resource(_DUMMY, numbers[number_codes[at]],
                                          visit.values[visit_codes[at]], _DUMMY_REF,
                                          self.version)
            template_parts.append(_around(resource, "id", "subject"))
            self.encounter_views.append(resource)
        self.encounter_views.append(None)                  # rows without a visit
        self.encounter_template = np.r_[template_of, len(template_parts)].astype(CODE)
        number_texts = [_seq_text(x, 0) for x in numbers]
        number_safe = [not _ID_SAFE.search(t) for t in number_texts]
        subject_json: dict[int, bytes] = {}
        lines: list[bytes] = []
        keys: list[str] = []
        self.encounter_keys: dict[tuple[str, float], str] = {}
        for s, n, t in zip(subjects, number_codes, template_of.tolist(), strict=True):
            text = str(self.subject_text[s])
            number_text = number_texts[n]
            if number_safe[n] and len(text) + len(number_text) + 5 <= 64 and \
                    not _ID_SAFE.search(text):
                rid = f"enc-{text}-{number_text}"
            else:
                rid = fhir_id("enc", text, number_text)
            if s not in subject_json:
                subject_json[s] = _dumps({"reference": patients[text]})
            before, between, after = template_parts[t]
            lines.append(b"".join((before, b'"', rid.encode(), b'"', between, subject_json[s],
                                   after)))
            keys.append(f"Encounter/{rid}")
            self.encounter_keys[(text, numbers[n])] = keys[-1]
        if lines:                            # the pieces make what the builder makes
            s, n, v = subjects[0], number_codes[0], visit_codes[0]
            text = str(self.subject_text[s])
            if lines[0] != _dumps(encounter_resource(text, numbers[n], visit.values[v],
                                                     patients[text], self.version)):
                raise Unsupported("Encounter pieces differ from the builder's Encounter")
        if len(set(keys)) != len(keys):
            raise Unsupported("two encounters share an id")
        self.encounter_lines = lines
        # per converted row: its Encounter, or len(lines) for none
        self.encounter_codes = np.full(self.converted, len(lines), dtype=CODE)
        self.encounter_codes[with_visit] = codes
        self.row_template = self.encounter_template[self.encounter_codes]
        self.encounter_refs = np.array(
            [b',"encounter":' + _dumps({"reference": k}) for k in keys] + [b""], dtype=object)

    # -- parts ----------------------------------------------------------------------------------
    def _skeleton(self) -> dict[str, Any]:
        return {"resourceType": "Observation", "id": _DUMMY, "status": "final",
                "category": [{"coding": [{"system": OBS_CATEGORY,
                                          "code": self.layout.category}]}],
                "code": {}, "subject": {"reference": _DUMMY_REF}}

    def _run_part(self, part: Part) -> _PartResult:
        columns = [self.at(v) for v in part.writes]
        codes, first = combine(columns, self.converted)
        result = _PartResult(part, codes, first)
        ctx = WriteContext(self.terms, self.version)
        rules = [(i, r) for i, r in enumerate(self.spec.rules) if r.var in part.writes]
        restore_rules = [r for r in self.spec.rules if r.var in part.restores]
        skeleton = self._skeleton()
        for row in first.tolist():
            values = {v: c.values[c.codes[row]] for v, c in zip(part.writes, columns,
                                                                  strict=True)}
            resource = self._skeleton()
            creators: dict[str, int] = {}
            for index, rule in rules:                 # write_row, on this part's rules
                value = values.get(rule.var)
                if missing(value):
                    continue
                INVERSES[rule.algorithm](resource, rule, value, values, ctx)
                for key in resource:
                    if key not in skeleton and key not in creators:
                        creators[key] = index
            changed = {k: resource[k] for k in skeleton if resource.get(k) != skeleton[k]}
            if not set(changed) <= {"status", "code"} or any(k not in resource
                                                              for k in skeleton):
                raise Unsupported(f"a part changes {sorted(changed)}")
            added = [(k, v) for k, v in resource.items() if k not in skeleton]
            if [k for k, _ in added] != sorted(creators, key=lambda k: creators[k]):
                raise Unsupported("elements not in the order their rules create them")
            result.changed.append(changed)
            result.added.append(added)
            result.creators.append(creators)
            # map_view on what the reference reads back: the finished resource
            view = dict(resource)
            finish_resource(view, self.version)
            mapctx = MapContext(self.terms, "Observation")
            raw: dict[str, Any] = {}
            fails = False
            try:
                for rule in restore_rules:
                    raw[rule.var] = _rule_value(rule, view, mapctx)
            except Unmapped:
                fails = True
            result.fails.append(fails)
            result.raw.append(raw)
            result.tidy.append({v: _tidy_value(self.domain, v, x) for v, x in raw.items()})
        return result

    def _slots(self) -> None:
        """Where each element goes: skeleton elements in place, new ones in creation order."""
        owner: dict[str, int] = {}
        spans: dict[str, tuple[int, int]] = {}
        for number, result in enumerate(self.parts):
            keys = {k for changed in result.changed for k in changed}
            keys |= {k for added in result.added for k, _ in added}
            for key in keys:
                if owner.setdefault(key, number) != number:
                    raise Unsupported(f"two parts write {key}")
            for creators in result.creators:
                for key, index in creators.items():
                    low, high = spans.get(key, (index, index))
                    spans[key] = (min(low, index), max(high, index))
        order = sorted(spans, key=lambda k: spans[k])
        for a, b in itertools.pairwise(order):
            if spans[a][1] > spans[b][0] or (spans[a][1] == spans[b][0] and owner[a] != owner[b]):
                raise Unsupported(f"{a} and {b} are not always in the same order")
            if spans[a][1] == spans[b][0]:
                for added in self.parts[owner[a]].added:
                    names = [k for k, _ in added]
                    if a in names and b in names and names.index(a) > names.index(b):
                        raise Unsupported(f"{a} and {b} are not always in the same order")
        if "extension" in owner:
            raise Unsupported("a part writes extensions")
        self.owner = owner
        self.slot_order = order

    # -- the check pass, before DM is read back -------------------------------------------
    def _compare(self) -> None:
        """--SEQ read back and, per variable, which rows would not come back identical."""
        n = self.converted
        fails = np.zeros(n, dtype=bool)
        for result in self.parts:
            fails |= np.array(result.fails, dtype=bool)[result.codes]
        self.fails = fails
        self.part_of = {v: result for result in self.parts for v in result.part.restores}
        # --SEQ: derivations._sequence on the rows that map back (a subject's rows map
        # back or not together, so subjects found not enrolled later do not change it)
        self.seq = np.zeros(n, dtype=np.float64)
        rank_subject = _ranks([t or "" for t in self.subject_text])
        keys = []
        for var in reversed(self.spec.seq_keys):
            result = self.part_of[var]
            keys.append(_ranks([_sort_key(r.get(var)) for r in result.raw])[result.codes])
        where = np.flatnonzero(~fails)
        if len(where):
            order = _sort_order([rank_subject[self.subject[where]],
                                 *[k[where] for k in reversed(keys)]])
            ordered = where[order]
            group = rank_subject[self.subject[ordered]]
            starts = np.r_[0, np.flatnonzero(group[1:] != group[:-1]) + 1]
            sizes = np.diff(np.r_[starts, len(ordered)])
            self.seq[ordered] = np.arange(len(ordered)) - np.repeat(starts, sizes) + 1.0
        # per original variable (but --DY): which rows it would not come back identical in
        encounter_vars = {r.var for r in self.encounter_rules}
        self.differs: dict[str, np.ndarray] = {}
        for name in self.columns:
            if name in SKIPPED or name == self.layout.day_of[1]:
                continue
            column = self.at(name)
            if name in self.part_of:
                differs = self._differs_part(self.part_of[name], name, column)
            elif name in encounter_vars:
                restored = self._encounter_values(name)
                differs = _pair_differs(self.row_template, restored, column)
            elif name == self.seq_var:
                as_float = np.array([_as_float(v) for v in column.values], dtype=np.float64)
                differs = ~(as_float[column.codes] == self.seq)
            else:                                    # not read back: carried when present
                differs = _mask(column.values, _present)[column.codes]
            self.differs[name] = differs
        # variables read back that the dataset does not have (carried as empty)
        self.extras: dict[str, np.ndarray | None] = {}
        for var in sdtmig.order_columns(self.domain, list(self.spec.variables)):
            if var in self.columns:
                continue
            if var in self.part_of:
                result = self.part_of[var]
                present = _mask([t.get(var) for t in result.tidy], _present)[result.codes]
            elif var in encounter_vars:
                present = _mask(self._encounter_values(var), _present)[self.row_template]
            elif var == self.seq_var:
                present = np.ones(n, dtype=bool)
            else:
                present = None                       # --DY and context: once DM is back
            self.extras[var] = present

    def _encounter_values(self, var: str) -> list[Any]:
        """``var`` read back from each Encounter template (last: no Encounter)."""
        rule = next(r for r in self.encounter_rules if r.var == var)
        out = []
        for encounter in self.encounter_views:
            view = {"_encounter": encounter} if encounter is not None else {}
            try:
                value = _rule_value(rule, view, MapContext(self.terms, "Observation"))
            except Unmapped as exc:
                raise Unsupported(f"{var} does not read back") from exc
            out.append(_tidy_value(self.domain, var, value))
        return out

    def _differs_part(self, result: _PartResult, name: str, column: Coded) -> np.ndarray:
        if name in result.part.writes:
            # the original value is in the part's tuple: one answer per tuple
            answers = [not _same(column.values[column.codes[row]], tidy.get(name))
                       for row, tidy in zip(result.first.tolist(), result.tidy, strict=True)]
            return np.array(answers, dtype=bool)[result.codes]
        return _pair_differs(result.codes, [t.get(name) for t in result.tidy], column)

    # -- the check pass, once DM is read back ---------------------------------------------
    def finish(self, subjects: Subjects) -> None:
        """What needs DM read back: enrolment, --DY, the subjects' STUDYID."""
        n = self.converted
        enrolled = _mask(self.subject_text, lambda t: t is not None and t in subjects.studyid)
        unmapped = self.fails | ~enrolled[self.subject]
        mapped = ~unmapped
        dtc_var, dy_var = self.layout.day_of
        dtc_part = self.part_of[dtc_var]
        rf_texts = [subjects.rfstdtc.get(t) if t is not None else None
                    for t in self.subject_text]
        rf_codes, rf_values = pd.factorize(pd.Series(rf_texts, dtype=object),
                                           use_na_sentinel=False)
        dy_codes, dy_rows = pair_index(dtc_part.codes, len(dtc_part.raw),
                                       rf_codes[self.subject], len(rf_values))
        dy_values = []
        for row in dy_rows.tolist():
            day = study_day(dtc_part.raw[dtc_part.codes[row]].get(dtc_var),
                            rf_texts[self.subject[row]])
            dy_values.append(_num(float(day)) if day is not None else None)
        differs = dict(self.differs)
        if dy_var in self.columns:
            differs[dy_var] = _pair_differs(dy_codes, dy_values, self.at(dy_var))
        self.carried: list[tuple[str, np.ndarray, list[bytes], np.ndarray]] = []
        for name in self.columns:
            if name not in differs:
                continue
            column = self.at(name)
            mask = np.where(unmapped, _mask(column.values, _present)[column.codes],
                            differs[name])
            if mask.any():
                frags = [_dumps(variable_extension(name, v)) for v in column.values]
                self.carried.append((name, mask, frags, column.codes))
        context_vars = [r.var for r in self.context_rules]
        for var, present in self.extras.items():
            if var == dy_var:
                present = _mask(dy_values, _present)[dy_codes]
            elif present is None:
                rule = self.context_rules[context_vars.index(var)]
                values = [self._context(rule, t, subjects) for t in self.subject_text]
                present = _mask(values, _present)[self.subject]
            present = present & mapped
            if present.any():
                self.carried.append((var, present, [_dumps(variable_extension(var, None))],
                                     np.zeros(n, dtype=CODE)))
        # one row's --SEQ differs: every row carries it (at the end when not already)
        seq_mask = next((c[1] for c in self.carried if c[0] == self.seq_var), None)
        if seq_mask is not None and self.seq_var in self.columns and not seq_mask.all():
            column = self.at(self.seq_var)
            self.carried.append((self.seq_var, ~seq_mask,
                                 [_dumps(variable_extension(self.seq_var, v))
                                  for v in column.values], column.codes))
        self._extension_pieces()
        self.finished = True

    def _context(self, rule: Rule, text: str | None, subjects: Subjects) -> Any:
        if text is None or text not in subjects.studyid:
            return None
        subject = SimpleNamespace(studyid=subjects.studyid[text], usubjid=text)
        ctx = MapContext(self.terms, "Observation")
        return _tidy_value(self.domain, rule.var, _rule_value(rule, {"_subject": subject}, ctx))

    def _extension_pieces(self) -> None:
        """Per carried variable: which rows carry it, first of a row's list or not."""
        n = self.converted
        self.carried_pieces: Pieces = []
        self.carried_counts: Counter[str] = Counter()
        self.carried_order: list[str] = []
        if not self.carried:
            self.closing = (np.zeros(n, dtype=CODE), np.array([b""], dtype=object))
            return
        first = np.full(n, len(self.carried), dtype=np.int64)
        for number in reversed(range(len(self.carried))):
            first[self.carried[number][1]] = number
        seen: list[tuple[int, int, str]] = []
        for number, (name, mask, frags, codes) in enumerate(self.carried):
            index = codes * CODE(3)                 # [absent, first, later] per value
            index += mask
            index += mask & (first != number)
            table: list[bytes] = []
            for frag in frags:
                table += [b"", b',"extension":[' + frag, b"," + frag]
            self.carried_pieces.append((index, np.array(table, dtype=object)))
            count = int(mask.sum())
            self.carried_counts[name] += count
            seen.append((int(np.argmax(mask)), number, name))
        # the order the reference first counts them in: by row, then place in the row
        self.carried_order = list(dict.fromkeys(name for _, _, name in sorted(seen)))
        self.closing = ((first < len(self.carried)).astype(CODE),
                        np.array([b"", b"]"], dtype=object))

    # -- output -------------------------------------------------------------------------------
    def _head(self) -> Pieces:
        """The pieces of every line up to its result elements (they need no DM read back):
        the id, status, category, code, subject and encounter."""
        skeleton = self._skeleton()
        finished = self._skeleton()
        finish_resource(finished, self.version)
        subject_refs = np.array([_dumps({"reference": r}) if r else b""
                                 for r in self.subject_ref], dtype=object)
        out: Pieces = []

        def const(data: bytes) -> None:
            out.append((None, np.array([data], dtype=object)))

        def in_place(key: str) -> None:
            if key not in self.owner:
                const(_dumps(finished[key]))
                return
            result = self.parts[self.owner[key]]
            table = []
            for changed in result.changed:
                holder = {**skeleton, key: changed.get(key, skeleton[key])}
                finish_resource(holder, self.version)
                table.append(_dumps(holder[key]))
            out.append((result.codes, np.array(table, dtype=object)))

        runs = [0]                                   # where each run to fold starts
        const(b'{"resourceType":"Observation","id":"')
        out.append((self.id_codes[0], self.id_head))
        runs.append(len(out))
        out.append((self.id_codes[1], self.id_tail))
        const(b'","status":')
        in_place("status")
        const(b',"category":' + _dumps(skeleton["category"]) + b',"code":')
        in_place("code")
        const(b',"subject":')
        runs.append(len(out))
        out.append((self.subject, subject_refs))
        out.append((self.encounter_codes, self.encounter_refs))
        return _fold_runs(out, runs, self.converted)

    def pieces(self) -> Pieces:
        """The pieces of every line, in order: (codes per converted row, table), or
        (``None``, one-item table) for a constant."""
        if not self.finished:
            raise RuntimeError("finish() first")
        out: Pieces = []
        for key in self.slot_order:
            result = self.parts[self.owner[key]]
            table = []
            for added in result.added:
                value = dict(added).get(key, _ABSENT)
                table.append(b"" if value is _ABSENT else
                             b',"' + key.encode() + b'":' + _dumps(value))
            out.append((result.codes, np.array(table, dtype=object)))
        out.extend(self.carried_pieces)
        out.append(self.closing)
        out.append((None, np.array([b"}\n"], dtype=object)))
        return _merge_constants(self.head + _fold_runs(out, [0], self.converted))


def _fold_runs(pieces: Pieces, runs: list[int], rows: int) -> Pieces:
    folded: Pieces = []
    for begin, end in zip(runs, [*runs[1:], len(pieces)], strict=True):
        folded += fold(_merge_constants(pieces[begin:end]), rows)
    return folded


_ABSENT = object()


def _around(resource: dict[str, Any], *keys: str) -> tuple[bytes, ...]:
    """The serialized ``resource`` cut around the values of ``keys`` (in its key order)."""
    pieces: list[bytes] = []
    current = b"{"
    for number, (key, value) in enumerate(resource.items()):
        current += (b"," if number else b"") + _dumps(key) + b":"
        if key in keys:
            pieces.append(current)
            current = b""
        else:
            current += _dumps(value)
    pieces.append(current + b"}")
    if len(pieces) != len(keys) + 1:
        raise Unsupported(f"{resource.get('resourceType')} has no {keys}")
    return tuple(pieces)


def _digits(numbers: np.ndarray) -> np.ndarray:
    """Decimal digits of positive integers."""
    out = np.ones(len(numbers), dtype=np.int64)
    power = 10
    while power <= (int(numbers.max()) if len(numbers) else 0):
        out += numbers >= power
        power *= 10
    return out


def _sort_order(keys: list[np.ndarray]) -> np.ndarray:
    """The stable order of rows sorted by several integer keys (the first key first)."""
    sizes = [int(k.max()) + 1 if len(k) else 1 for k in keys]
    if math.prod(sizes) >= 2 ** 62:
        return np.lexsort([np.arange(len(keys[0])), *reversed(keys)])
    key = np.zeros(len(keys[0]), dtype=np.int64)
    for values, size in zip(keys, sizes, strict=True):
        key = key * size + values
    return np.argsort(key, kind="stable")


def _ranks(keys: list[Any]) -> np.ndarray:
    """Rank of each key in Python's own sort order (equal keys, equal ranks)."""
    rank = {k: i for i, k in enumerate(sorted(set(keys)))}
    return np.array([rank[k] for k in keys], dtype=np.int64)


def _as_float(value: Any) -> float:
    """``_same(value, x)`` for a float ``x`` read back is ``_as_float(value) == x``."""
    if missing(value):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _pair_differs(left: np.ndarray, restored: list[Any], column: Coded) -> np.ndarray:
    """``not _same(original, restored)`` per row, evaluated once per distinct pair."""
    codes, rows = pair_index(left, len(restored), column.codes, len(column.values))
    answers = [not _same(column.values[column.codes[row]], restored[left[row]])
               for row in rows.tolist()]
    return np.array(answers, dtype=bool)[codes] if len(codes) else np.zeros(0, dtype=bool)


def _merge_constants(pieces: Pieces) -> Pieces:
    """Fold each constant into the piece before it (fewer pieces per line); drop pieces
    that are empty in every line."""
    out: Pieces = []
    for codes, table in pieces:
        if not any(table):
            continue
        if codes is None and out:
            prev_codes, prev_table = out[-1]
            out[-1] = (prev_codes, np.array([t + table[0] for t in prev_table], dtype=object))
        else:
            out.append((codes, table))
    return out


# ----------------------------------------------------------------------- writing lines


def fold(pieces: Pieces, rows: int, budget: int | None = None) -> Pieces:
    """Pieces joined into one, per distinct combination, when there are few combinations.

    A line made of fewer, longer fragments is cheaper to assemble; the lines are
    unchanged. ``budget``: most combinations worth it (default: one per 16 lines).
    """
    budget = budget or max(4096, rows // 16)
    varying = [(codes, table) for codes, table in pieces if codes is not None]
    if len(pieces) < 2 or not varying:
        return pieces
    codes, first = combine([Coded(c, list(t)) for c, t in varying], rows)
    if len(first) > budget:
        return pieces
    table = [b"".join(t[0] if c is None else t[c[row]] for c, t in pieces)
             for row in first.tolist()]
    return [(codes, np.array(table, dtype=object))]


def line_lengths(pieces: Pieces, rows: int) -> np.ndarray:
    """Byte length of every line."""
    total = np.zeros(rows, dtype=np.int64)
    for codes, table in pieces:
        lengths = np.array([len(t) for t in table], dtype=np.int64)
        total += lengths[0] if codes is None else lengths[codes]
    return total


#: bytes assembled per write: small enough to stay in the CPU cache for the kernel's copy
WRITE_BYTES = 1 << 20


def write_lines(fd: int, offset: int, pieces: Pieces, start: int, stop: int,
                lengths: np.ndarray | None = None) -> int:
    """Write lines ``start:stop`` at byte ``offset`` of ``fd``; returns the bytes written.

    ``lengths`` (of every line, as ``line_lengths`` gives them) sizes the writes to
    about ``WRITE_BYTES``; without them, 512 lines go in each.
    """
    written = 0
    width = len(pieces)
    chunk = 512
    if lengths is not None and stop > start:
        average = max(1, int(lengths[start:stop].sum()) // (stop - start))
        chunk = max(16, WRITE_BYTES // average)
    for begin in range(start, stop, chunk):
        end = min(begin + chunk, stop)
        count = end - begin
        flat: list[bytes] = [b""] * (count * width)
        for number, (codes, table) in enumerate(pieces):
            if codes is None:
                flat[number::width] = [table[0]] * count
            else:
                flat[number::width] = table.take(codes[begin:end]).tolist()
        data = memoryview(b"".join(flat))
        while data:
            done = os.pwrite(fd, data, offset + written)
            data = data[done:]
            written += done
    return written
