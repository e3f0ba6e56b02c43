"""Write define.xml for a folder of SDTM datasets, checked against the XSD before it lands."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fhircdisc.converters.atomic import write_bytes_atomic
from fhircdisc.converters.datasets import read_sdtm_folder
from fhircdisc.errors import InputError


def write_define(sdtm_dir: str | Path, out_path: str | Path | None = None, *,
                 study_name: str | None = None, creation_datetime: str | None = None
                 ) -> tuple[Path, int]:
    """Build define.xml with odmlib, validate it against the XSD, write it atomically.

    Returns the path and the number of XSD errors (0 for everything we build; a non-zero
    count is a bug and the file is still written so that it can be inspected).
    """
    from fhircdisc.schemas.define import build_define, validate_define_xsd

    folder = Path(sdtm_dir)
    datasets = read_sdtm_folder(folder)
    if not datasets:
        raise InputError("no SDTM datasets found", str(folder))
    studyids = sorted({str(v) for frame, _ in datasets.values() if "STUDYID" in frame
                       for v in frame["STUDYID"].dropna().unique()})
    studyid = studyids[0] if studyids else folder.name
    stamp = creation_datetime or datetime.now(UTC).replace(microsecond=0).strftime(
        "%Y-%m-%dT%H:%M:%S")
    xml = build_define(datasets, study_oid=f"STUDY.{studyid}",
                       study_name=study_name or studyid, creation_datetime=stamp)
    errors = validate_define_xsd(xml)
    target = Path(out_path) if out_path else folder / "define.xml"
    write_bytes_atomic(target, xml)
    return target, len(errors)
