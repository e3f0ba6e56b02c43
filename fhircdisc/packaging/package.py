"""Package a folder of SDTM datasets for submission, in the eCTD module 5 layout.

    from fhircdisc.packaging import build_package
    result = build_package("sdtm/", "submission/", creation_datetime="2020-09-30T12:00:00")

The package (``SUBMISSION_DIR``)::

    manifest.json                       checksums of every file below (manifest.py)
    checksums.sha256                    the same, for ``sha256sum -c``
    m5/datasets/<study>/tabulations/sdtm/
        ae.xpt dm.xpt ...               SAS XPORT v5, one dataset a file, lower-case names
        define.xml                      Define-XML 2.1, valid against its XSD
        validation-report.html          conformance + define.xml findings for the files here
        validation-report.json
        dataset-json/ae.json ...        only with ``dataset_json=True``: Dataset-JSON 1.1

``<study>`` is the STUDYID as an eCTD folder name: lower case, every run of characters
other than ``a-z 0-9 -`` replaced by ``-`` (``UCMSC-ARDS`` -> ``ucmsc-ards``).

Dataset-JSON copies go to a ``dataset-json/`` subfolder rather than beside the XPT
files: the ``sdtm`` folder then holds exactly what an XPT-based submission expects
(datasets, define.xml and its reports), and nothing in it can be mistaken for a second
copy of a dataset by tools that pick up every ``*.json``.

What is validated is what is packaged: the XPT files as written (re-read) and the
define.xml generated for them, through :func:`fhircdisc.validation.validate_sdtm_path`
on the staged folder. A define.xml in the source folder is neither copied nor checked
(it might describe other data); a fresh one is built. Paths in the reports are relative
to the package root, so that they stay true after the handover.

Everything is written to a staging folder beside ``SUBMISSION_DIR`` and renamed into
place only when complete; a failure or a refusal leaves nothing behind. With a fixed
``creation_datetime`` (XPT header stamps, define.xml, Dataset-JSON, reports, manifest)
the same input gives a byte-identical package.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import pandas as pd

from fhircdisc.converters.atomic import write_bytes_atomic
from fhircdisc.converters.datasets import read_sdtm_folder, write_dataset
from fhircdisc.errors import ConversionError, FhircdiscError, InputError, OutputError
from fhircdisc.packaging.manifest import Manifest, write_manifest
from fhircdisc.schemas.columns import DatasetMeta
from fhircdisc.schemas.findings import ValidationResult

DEFINE_NAME = "define.xml"
REPORT_HTML = "validation-report.html"
REPORT_JSON = "validation-report.json"
DATASET_JSON_DIR = "dataset-json"
MAX_FOLDER_NAME = 64  # ICH eCTD: at most 64 characters per folder or file name

_DATETIME = re.compile(
    r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?"
    r"(([+-]([01]\d|2[0-3]):[0-5]\d)|Z)?\Z")

Datasets = dict[str, tuple[pd.DataFrame, DatasetMeta]]


class PackageRefused(FhircdiscError):
    """The datasets have validation errors and ``force`` was not given; nothing was written."""

    def __init__(self, validation: ValidationResult, source: Path | str) -> None:
        self.validation = validation
        self.source = str(source)
        self.errors = validation.count("error")
        self.by_rule: dict[str, int] = dict(sorted(Counter(
            f.rule_id for f in validation.findings if f.severity == "error").items()))
        rules = ", ".join(f"{rule} x{n}" for rule, n in self.by_rule.items())
        super().__init__(
            f"{self.source}: not packaged: validation found {self.errors} error(s) "
            f"({rules}); fix them, or use --force to package anyway (the validation report "
            "in the package then lists them)")


@dataclass(frozen=True)
class PackageResult:
    """What :func:`build_package` wrote."""

    root: Path
    """The package (``SUBMISSION_DIR``)."""
    study_id: str
    sdtm_dir: Path
    """``root/m5/datasets/<study>/tabulations/sdtm``."""
    datasets: dict[str, int]
    """Dataset name -> number of rows."""
    validation: ValidationResult
    forced: bool
    """True when the package was written despite validation errors."""
    manifest: Manifest
    creation_datetime: str

    @property
    def files(self) -> list[str]:
        return [entry.path for entry in self.manifest.files]


# ----------------------------------------------------------------------------- helpers


def creation_stamp(value: str | None) -> str:
    """``value`` checked as an ISO 8601 date-time, or now (UTC, to the second)."""
    if value is None:
        return datetime.now(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%S")
    try:
        ok = bool(_DATETIME.match(value)) and bool(datetime.fromisoformat(value))
    except ValueError:
        ok = False
    if not ok:
        raise InputError(f"creation date-time {value!r} is not an ISO 8601 date-time",
                         hint="e.g. 2020-09-30T12:00:00")
    return value


def ectd_folder_name(study_id: str) -> str:
    """The STUDYID as an eCTD folder name (lower case, ``a-z 0-9 -`` only)."""
    name = re.sub(r"[^a-z0-9-]+", "-", study_id.lower())
    name = re.sub(r"-{2,}", "-", name).strip("-")
    if not name:
        raise InputError(f"STUDYID {study_id!r} gives no usable folder name",
                         hint="it needs at least one letter or digit")
    if len(name) > MAX_FOLDER_NAME:
        raise InputError(f"STUDYID {study_id!r} gives a folder name longer than "
                         f"{MAX_FOLDER_NAME} characters (the eCTD limit)")
    return name


def sdtm_subpath(study_id: str) -> PurePosixPath:
    """``m5/datasets/<study>/tabulations/sdtm``, relative to the package root."""
    return PurePosixPath("m5", "datasets", ectd_folder_name(study_id), "tabulations", "sdtm")


def study_id_of(datasets: Datasets, source: Path | str) -> str:
    """The one STUDYID value across all datasets; InputError when there are none or several."""
    values: dict[str, list[str]] = {}
    for name, (frame, _) in datasets.items():
        if "STUDYID" not in frame.columns:
            continue
        for value in frame["STUDYID"].dropna().unique():
            text = str(value).strip()
            if text:
                values.setdefault(text, []).append(name)
    if not values:
        raise InputError("no dataset has a STUDYID value", str(source))
    if len(values) > 1:
        listed = "; ".join(f"{sid!r} in {', '.join(sorted(set(names)))}"
                           for sid, names in sorted(values.items()))
        raise InputError(f"datasets of more than one study: {listed}", str(source),
                         hint="package one study at a time")
    return next(iter(values))


def _check_output(out_dir: Path) -> None:
    if out_dir.exists() or out_dir.is_symlink():
        if not out_dir.is_dir():
            raise InputError("exists and is not a folder", str(out_dir))
        if any(out_dir.iterdir()):
            raise InputError("output folder is not empty; refusing to overwrite it",
                             str(out_dir), hint="choose a new folder or empty this one")


def _check_names(datasets: Datasets, source: Path) -> None:
    files: dict[str, list[str]] = {}
    for key, (_, meta) in datasets.items():
        files.setdefault(meta.name.lower(), []).append(key)
    clashes = {name: keys for name, keys in files.items() if len(keys) > 1}
    if clashes:
        listed = "; ".join(f"{', '.join(keys)} -> {name}.xpt" for name, keys in clashes.items())
        raise InputError(f"several files hold the same dataset: {listed}", str(source))


def _relativize(result: ValidationResult, staging: Path) -> ValidationResult:
    """Paths under the staging folder made relative to the package root (POSIX)."""
    prefix = str(staging)

    def rel(value: str) -> str:
        if value == prefix or value.startswith(prefix + os.sep):
            return Path(value).relative_to(staging).as_posix()
        return value

    result.target = rel(result.target)
    result.metadata = {key: rel(value) if isinstance(value, str) else value
                       for key, value in result.metadata.items()}
    result.findings = [replace(f, source=rel(f.source)) if f.source else f
                       for f in result.findings]
    return result


def _make_staging(out_dir: Path) -> Path:
    parent = out_dir.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".staging",
                                        dir=parent))
    except OSError as exc:
        raise OutputError(f"{parent}: cannot create the package here: {exc.strerror}") from exc
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes it private; a package is not
    return staging


def _move_into_place(staging: Path, out_dir: Path) -> None:
    try:
        if out_dir.is_dir():
            out_dir.rmdir()  # checked empty before; rmdir refuses if that changed since
        os.replace(staging, out_dir)
    except OSError as exc:
        raise OutputError(f"{out_dir}: cannot move the finished package into place: "
                          f"{exc.strerror or exc}") from exc


# ----------------------------------------------------------------------------- the package


def build_package(sdtm_dir: Path | str, out_dir: Path | str, *, dataset_json: bool = False,
                  force: bool = False, creation_datetime: str | None = None) -> PackageResult:
    """Write the submission package of the SDTM datasets in ``sdtm_dir`` to ``out_dir``.

    See the module docstring for the layout. Raises :class:`PackageRefused` (nothing
    written) when validation finds errors and ``force`` is false;
    :class:`~fhircdisc.errors.InputError` for an unreadable or empty source, several
    STUDYIDs or a non-empty ``out_dir``; :class:`~fhircdisc.errors.ConversionError` for
    data XPT v5 cannot hold.
    """
    from fhircdisc.reporting import write_html_report, write_json_report
    from fhircdisc.schemas.define import build_define
    from fhircdisc.validation import validate_sdtm_path

    source, out_dir = Path(sdtm_dir), Path(out_dir)
    stamp = creation_stamp(creation_datetime)
    _check_output(out_dir)
    datasets = read_sdtm_folder(source)
    if not datasets:
        raise InputError("no SDTM datasets found", str(source),
                         hint="a folder of dm.xpt, ae.json, ... (.xpt, .json, .ndjson, .csv)")
    _check_names(datasets, source)
    study_id = study_id_of(datasets, source)
    sub = sdtm_subpath(study_id)

    staging = _make_staging(out_dir)
    try:
        stage_sdtm = staging.joinpath(*sub.parts)
        stage_sdtm.mkdir(parents=True)
        for _, (frame, meta) in datasets.items():
            write_dataset(frame, stage_sdtm, meta, "xpt", creation_datetime=stamp)
        packaged = read_sdtm_folder(stage_sdtm)
        rows = {name: len(frame) for name, (frame, _) in packaged.items()}
        expected = {meta.name.upper(): len(frame) for frame, meta in datasets.values()}
        if rows != expected:
            raise ConversionError(f"internal error: the XPT files re-read as {rows}, "
                                  f"expected {expected}")
        write_bytes_atomic(stage_sdtm / DEFINE_NAME, build_define(
            packaged, study_oid=f"STUDY.{study_id}", study_name=study_id,
            creation_datetime=stamp))

        validation = _relativize(validate_sdtm_path(stage_sdtm), staging)
        if validation.count("error") and not force:
            raise PackageRefused(validation, source)
        write_json_report(validation, stage_sdtm / REPORT_JSON)
        write_html_report(validation, stage_sdtm / REPORT_HTML, datasets=packaged,
                          title=f"{study_id}: SDTM validation report", generated=stamp)
        if dataset_json:
            for _, (frame, meta) in packaged.items():
                write_dataset(frame, stage_sdtm / DATASET_JSON_DIR, meta, "json",
                              creation_datetime=stamp)
        manifest = write_manifest(staging, creation_datetime=stamp, study_id=study_id)
        _move_into_place(staging, out_dir)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise OutputError(f"{out_dir}: cannot write the package: {exc.strerror or exc}") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

    manifest = Manifest(out_dir, manifest.files, manifest.created, manifest.study_id,
                        manifest.sha256)
    return PackageResult(root=out_dir, study_id=study_id, sdtm_dir=out_dir.joinpath(*sub.parts),
                         datasets=rows, validation=validation,
                         forced=bool(validation.count("error")), manifest=manifest,
                         creation_datetime=stamp)
