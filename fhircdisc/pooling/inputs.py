"""The studies to pool: SDTM folders (XPT, Dataset-JSON, CSV) or FHIR input converted on the fly.

A folder is SDTM when it holds an ``.xpt`` or ``.csv`` dataset or a Dataset-JSON file;
anything else (a Bundle, NDJSON files, a folder of them) is FHIR, converted with
:func:`fhircdisc.to_sdtm`. FHIR input with ResearchSubjects names its own study; FHIR
input without them needs a study id, which enrols every Patient.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from fhircdisc.converters.datasets import dataset_files, is_missing, read_dataset
from fhircdisc.errors import InputError
from fhircdisc.pooling.ct_versions import UNKNOWN, CtVersion, folder_ct_version
from fhircdisc.schemas import sdtmig
from fhircdisc.schemas.columns import ColumnMeta, DatasetMeta

if TYPE_CHECKING:
    from fhircdisc.study import Study

_HEAD_BYTES = 65536


@dataclass
class PoolInput:
    """One study to pool: its datasets, their metadata, its STUDYID and CT version."""

    domains: dict[str, pd.DataFrame]
    study_id: str
    source: str = "memory"
    kind: str = "memory"                  # sdtm | fhir | memory
    metas: dict[str, DatasetMeta] = field(default_factory=dict)
    ct_version: CtVersion = field(default_factory=lambda: CtVersion(UNKNOWN, None))

    @classmethod
    def from_frames(cls, domains: dict[str, pd.DataFrame], *, source: str = "memory",
                    ct_version: str = UNKNOWN, metas: dict[str, DatasetMeta] | None = None,
                    ) -> PoolInput:
        """A study held in memory; its STUDYID is read from the data."""
        study_id = study_id_of(domains, source)
        version = CtVersion(ct_version, source if ct_version != UNKNOWN else None)
        return cls(dict(domains), study_id, source, "memory", dict(metas or {}), version)

    @classmethod
    def from_study(cls, study: Study, *, source: str = "FHIR") -> PoolInput:
        """A study converted from FHIR (``fhircdisc.to_sdtm``): on the package's CT."""
        domains = dict(study.domains)
        if domains.get("DM") is None or domains["DM"].empty:
            raise InputError("the FHIR input enrols no subject (no DM rows)", source)
        metas = {name: study.meta(name) for name in domains}
        version = CtVersion(sdtmig.CT_VERSION, "fhircdisc terminology tables (FHIR converted "
                            "by fhircdisc.to_sdtm)")
        return cls(domains, study_id_of(domains, source), source, "fhir", metas, version)

    def meta(self, domain: str) -> DatasetMeta:
        """The dataset's metadata as read, or derived (SDTMIG labels, types by dtype)."""
        if domain in self.metas:
            return self.metas[domain]
        return frame_meta(domain, self.domains[domain])


def frame_meta(domain: str, frame: pd.DataFrame) -> DatasetMeta:
    """Metadata for a frame without any: SDTMIG labels and types, else typed by dtype."""
    base = sdtmig.dataset_meta(domain, [str(c) for c in frame.columns])
    columns = []
    for col in base.columns:
        kind = col.type
        if sdtmig.variable(domain, col.name) is None:
            kind = "Num" if pd.api.types.is_numeric_dtype(frame[col.name]) else "Char"
        columns.append(ColumnMeta(col.name, col.label, kind))
    return DatasetMeta(base.name, base.label, tuple(columns))


def study_id_of(domains: dict[str, pd.DataFrame], source: str) -> str:
    """The one STUDYID of a study's datasets; InputError when none or several."""
    found: dict[str, str] = {}
    for name, frame in domains.items():
        if "STUDYID" not in frame:
            continue
        for value in frame["STUDYID"]:
            if not is_missing(value):
                found.setdefault(str(value), name)
    if not found:
        raise InputError("no STUDYID in any dataset, so the study cannot be named", source)
    if len(found) > 1:
        listed = ", ".join(f"{sid} (in {name})" for sid, name in sorted(found.items()))
        raise InputError(f"datasets hold several STUDYIDs: {listed}", source,
                         hint="pool each study as its own input")
    return next(iter(found))


def is_sdtm_folder(path: Path) -> bool:
    """True when ``path`` is a folder of SDTM datasets rather than FHIR input."""
    if not path.is_dir():
        return False
    for file in dataset_files(path).values():
        suffix = file.suffix.lower()
        if suffix in (".xpt", ".csv"):
            return True
        try:
            with file.open("rb") as handle:
                head = handle.read(_HEAD_BYTES)
        except OSError:
            continue
        if b'"datasetJSONVersion"' in head:
            return True
    return False


def load_sdtm_folder(folder: Path) -> PoolInput:
    """Every dataset of an SDTM folder, with its CT version."""
    files = dataset_files(folder)
    if not files:
        raise InputError("no SDTM dataset files (.xpt, .json, .ndjson, .csv) in the folder",
                         str(folder))
    domains: dict[str, pd.DataFrame] = {}
    metas: dict[str, DatasetMeta] = {}
    for name, path in files.items():
        frame, meta = read_dataset(path)
        if path.suffix.lower() == ".csv":
            frame, meta = _typed_csv(name, frame, meta)
        domains[name] = frame
        metas[name] = DatasetMeta(name, meta.label, meta.columns)
    study_id = study_id_of(domains, str(folder))
    version = folder_ct_version(folder, files.values())
    return PoolInput(domains, study_id, str(folder), "sdtm", metas, version)


def _typed_csv(domain: str, frame: pd.DataFrame,
               meta: DatasetMeta) -> tuple[pd.DataFrame, DatasetMeta]:
    """A CSV dataset (all text) with SDTMIG's Num variables made numbers where they all are."""
    columns = []
    for col in meta.columns:
        spec = sdtmig.variable(domain, col.name)
        kind = col.type
        if spec is not None and spec.type == "Num" and col.type == "Char":
            values = frame[col.name]
            parsed = pd.to_numeric(values, errors="coerce")
            if bool((parsed.notna() | values.isna()).all()):
                frame = frame.assign(**{col.name: parsed.astype("float64")})
                kind = "Num"
        label = col.label or (spec.label if spec is not None else "")
        columns.append(ColumnMeta(col.name, label, kind))
    label = meta.label or sdtmig.dataset_labels().get(domain, "")
    return frame, DatasetMeta(meta.name, label, tuple(columns))


def has_research_subjects(sources: Sequence[Path]) -> bool:
    """Whether FHIR input holds a ResearchSubject (stops reading at the first one)."""
    from fhircdisc.converters.fhir_reader import SourceResource, read_sources

    for item in read_sources(sources):
        if isinstance(item, SourceResource) and item.type == "ResearchSubject":
            return True
    return False


def load_fhir(sources: Sequence[Path], *, study_id: str | None = None,
              terminology: Iterable[str | Path] = ()) -> PoolInput:
    """FHIR input converted with :func:`fhircdisc.to_sdtm`."""
    from fhircdisc.converters.fhir_to_sdtm import to_sdtm  # = fhircdisc.to_sdtm

    study = to_sdtm(list(sources), study_id=study_id, terminology=list(terminology))
    return PoolInput.from_study(study, source=", ".join(str(s) for s in sources))


def load_inputs(paths: Sequence[str | Path], study_ids: Sequence[str] = (), *,
                terminology: Iterable[str | Path] = ()) -> list[PoolInput]:
    """Load each path as one study.

    ``study_ids`` go, in order, to the FHIR inputs that have no ResearchSubject; every
    such input needs one, and none may be left over.
    """
    remaining = list(study_ids)
    terminology = list(terminology)
    loaded: list[PoolInput] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise InputError("no such file or folder", str(path))
        if is_sdtm_folder(path):
            loaded.append(load_sdtm_folder(path))
            continue
        if path.is_file() and path.suffix.lower() in (".xpt", ".csv"):
            raise InputError("a single dataset file is not a study", str(path),
                             hint="give the folder that holds the study's datasets")
        study_id = None
        if not has_research_subjects([path]):
            if not remaining:
                raise InputError("FHIR input without ResearchSubject: the study is unknown",
                                 str(path), hint="give --study-id for it (one per such input, "
                                 "in input order)")
            study_id = remaining.pop(0)
        loaded.append(load_fhir([path], study_id=study_id, terminology=terminology))
    if remaining:
        raise InputError(f"{len(remaining)} --study-id value(s) left over ("
                         f"{', '.join(remaining)}): only FHIR inputs without ResearchSubject "
                         "take one")
    return loaded
