"""``fhircdisc validate``: one entry point for SDTM folders, FHIR input and define.xml."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import orjson

from fhircdisc.converters.datasets import dataset_files, read_dataset
from fhircdisc.converters.fhir_reader import SourceResource, read_sources
from fhircdisc.converters.fhir_version import VersionVote
from fhircdisc.errors import InputError
from fhircdisc.mappings import terminology as terminology_module
from fhircdisc.schemas.findings import ValidationResult

KINDS = ("sdtm", "fhir", "define")


def _json_kind(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror}", str(path)) from exc
    text = head.decode("utf-8", errors="replace")
    if '"resourceType"' in text:
        return "fhir"
    if '"datasetJSONVersion"' in text or '"itemGroupOID"' in text:
        return "sdtm"
    raise InputError("neither FHIR nor Dataset-JSON (no resourceType or datasetJSONVersion "
                     "near the start)", str(path))


def detect(path: str | Path) -> str:
    """What ``path`` holds: ``sdtm`` datasets, ``fhir`` resources or a ``define`` file."""
    path = Path(path)
    if not path.exists():
        raise InputError("no such file or folder", str(path))
    if path.is_file():
        suffix = path.name.lower()
        if suffix.endswith(".xml"):
            return "define"
        if suffix.endswith((".xpt", ".csv")):
            return "sdtm"
        if suffix.endswith((".json", ".ndjson", ".json.gz", ".ndjson.gz")):
            return _json_kind(path) if not suffix.endswith(".gz") else "fhir"
        raise InputError("unsupported file type", str(path),
                         hint="give an SDTM folder or dataset, FHIR JSON/NDJSON or define.xml")
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    if any(p.suffix.lower() in (".xpt", ".csv") for p in files):
        return "sdtm"
    for candidate in files:
        if candidate.suffix.lower() in (".json", ".ndjson"):
            try:
                return _json_kind(candidate)
            except InputError:
                continue
    if any(p.name.lower() == "define.xml" for p in files):
        return "define"
    raise InputError("folder holds no SDTM datasets, FHIR files or define.xml", str(path))


def validate_sdtm_path(path: Path) -> ValidationResult:
    """Conformance of the datasets at ``path`` (+ define.xml beside them, when present)."""
    from fhircdisc.schemas.conformance import validate_sdtm
    from fhircdisc.schemas.define import validate_define

    if path.is_file():
        frame, meta = read_dataset(path)
        datasets = {meta.name.upper(): (frame, meta)}
        folder = path.parent
    else:
        datasets = {name: read_dataset(p) for name, p in dataset_files(path).items()}
        folder = path
    if not datasets:
        raise InputError("no SDTM datasets found", str(path))
    result = validate_sdtm({k: v[0] for k, v in datasets.items()},
                           metas={k: v[1] for k, v in datasets.items()}, target=str(path))
    define = folder / "define.xml"
    if define.exists():
        result.extend(validate_define(define, datasets))
        result.metadata["define"] = str(define)
    return result


def validate_fhir_path(path: Path, fhir_version: str = "auto",
                       terminology: Iterable[str | Path] = (), structure: bool = True
                       ) -> ValidationResult:
    from fhircdisc.schemas.fhir_checks import index_input, validate_fhir

    vote = VersionVote()

    def voted(resource: SourceResource) -> None:
        vote.add(resource.data, resource.origin.file, resource.origin.location)

    # read twice, a resource at a time: first what references resolve to and the
    # version, then the checks (a Bulk Data export is not held in memory)
    index = index_input(read_sources([path]), voted)
    version = vote.decide(fhir_version)
    return validate_fhir(read_sources([path]), version, terminology_module.load(terminology),
                         target=str(path), structure=structure, index=index)


def validate_define_path(path: Path) -> ValidationResult:
    from fhircdisc.schemas.define import parse_xml_safely, validate_define

    folder = path.parent if path.is_file() else path
    define = path if path.is_file() else path / "define.xml"
    parse_xml_safely(define)           # hostile or malformed XML is refused before anything
    files = dataset_files(folder)
    datasets = {name: read_dataset(p) for name, p in files.items()} or None
    return validate_define(define, datasets)


def validate_path(path: str | Path, *, kind: str | None = None, fhir_version: str = "auto",
                  terminology: Iterable[str | Path] = (), structure: bool = True
                  ) -> ValidationResult:
    """Validate whatever ``path`` holds (``kind`` overrides the detection).

    ``structure=False`` skips the fhir.resources model check of FHIR input (about a
    thousand resources a second per core); references and codes are still checked.
    """
    path = Path(path)
    kind = kind or detect(path)
    if kind == "sdtm":
        return validate_sdtm_path(path)
    if kind == "fhir":
        return validate_fhir_path(path, fhir_version, terminology, structure)
    return validate_define_path(path)


def result_json(result: ValidationResult) -> bytes:
    return orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2)
