"""The streamed NDJSON path (``to_fhir_ndjson``) writes exactly what ``to_fhir`` +
``write_ndjson`` write: the same bytes in every file and the same report.

On the CDISC pilot (all six domains, R4 and R5, one process and several writing the
lines), on the pilot repeated with new subjects, on generated LB studies with the
awkward values real data has, and on input the fast path hands to the reference path.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhircdisc.converters import sdtm_to_fhir_ndjson as ndjson_module
from fhircdisc.converters.fhir_writer import write_ndjson
from fhircdisc.converters.sdtm_to_fhir import load_sdtm, to_fhir
from fhircdisc.converters.sdtm_to_fhir_ndjson import to_fhir_ndjson
from tests.conftest import shared
from tests.converters.strategies import PRINTABLE

NUM = {"LBSEQ", "LBSTRESN", "LBSTNRLO", "LBSTNRHI", "VISITNUM", "LBDY", "VSSEQ", "VSSTRESN"}


def reference(frames: dict[str, Any] | Path, out: Path, version: str = "R4"
              ) -> tuple[dict[str, bytes], dict[str, Any]]:
    output = to_fhir(frames, fhir_version=version, validate=False)
    write_ndjson(output.resources, out)
    return files(out), output.report.to_dict()


def fast(frames: dict[str, Any] | Path, out: Path, version: str = "R4", workers: int = 1,
         validate: bool = False) -> tuple[dict[str, bytes], dict[str, Any], bool]:
    result = to_fhir_ndjson(frames, out, fhir_version=version, workers=workers,
                            validate=validate)
    assert [p.name for p in result.files] == sorted(files(out))
    return files(out), result.report.to_dict(), result.fast


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def first_difference(expected: dict[str, bytes], got: dict[str, bytes]) -> str:
    if sorted(expected) != sorted(got):
        return f"files {sorted(expected)} != {sorted(got)}"
    for name in expected:
        a, b = expected[name].split(b"\n"), got[name].split(b"\n")
        for number, (x, y) in enumerate(zip(a, b, strict=False)):
            if x != y:
                return f"{name} line {number + 1}:\n{x.decode()}\n{y.decode()}"
        if len(a) != len(b):
            return f"{name}: {len(a)} lines != {len(b)}"
    return ""


def assert_same(expected: tuple[dict[str, bytes], dict[str, Any]],
                got: tuple[dict[str, bytes], dict[str, Any], bool]) -> None:
    assert expected[0] == got[0], first_difference(expected[0], got[0])
    assert expected[1] == got[1]


# ----------------------------------------------------------------------- the pilot


@pytest.fixture(scope="module")
def pilot() -> dict[str, pd.DataFrame]:
    return {k: v[0] for k, v in load_sdtm(shared("cdisc-sdtm-example", "xpt")).items()}


_REFERENCE: dict[str, tuple[dict[str, bytes], dict[str, Any]]] = {}


@pytest.fixture(params=["R4", "R5"])
def pilot_reference(request, pilot, tmp_path_factory):
    version = request.param
    if version not in _REFERENCE:
        _REFERENCE[version] = reference(pilot, tmp_path_factory.mktemp("reference"), version)
    return version, _REFERENCE[version]


@pytest.fixture
def split_early(monkeypatch):
    """Lines written by several processes from a few lines on (the pilot LB is small)."""
    monkeypatch.setattr(ndjson_module, "SPLIT_FROM", 64)


@pytest.mark.parametrize("workers", [1, 3])
def test_pilot_ndjson_is_byte_identical(pilot, pilot_reference, tmp_path, workers,
                                        split_early):
    version, expected = pilot_reference
    got = fast(pilot, tmp_path / "fast", version, workers)
    assert got[2], "the pilot LB takes the fast path"
    assert_same(expected, got)
    assert expected[1]["reconciles"] and expected[1]["rejected"] == []


def test_pilot_folder_input(pilot, tmp_path):
    if "R4" not in _REFERENCE:
        _REFERENCE["R4"] = reference(pilot, tmp_path / "reference")
    got = fast(shared("cdisc-sdtm-example", "xpt"), tmp_path / "fast", workers=2)
    assert got[2]
    assert_same(_REFERENCE["R4"], got)


def test_validation_checks_what_is_written(pilot, tmp_path):
    frames = {"DM": pilot["DM"], "LB": pilot["LB"].head(400)}
    expected = reference(frames, tmp_path / "reference")
    got = fast(frames, tmp_path / "fast", validate=True)
    assert got[2]
    assert_same(expected, got)


def test_pilot_repeated_with_new_subjects(pilot, tmp_path, split_early):
    # each copy's subjects get new ids, as in benchmarks/sdtm_to_fhir.py
    dm, lb = [], []
    for copy in range(2):
        a, b = pilot["DM"].copy(), pilot["LB"].iloc[::3].copy()
        for frame_ in (a, b):
            frame_["USUBJID"] = frame_["USUBJID"] + f"-{copy:03d}"
        a["SUBJID"] = a["SUBJID"] + f"-{copy:03d}"
        dm.append(a)
        lb.append(b)
    frames = {"DM": pd.concat(dm, ignore_index=True), "LB": pd.concat(lb, ignore_index=True)}
    expected = reference(frames, tmp_path / "reference")
    got = fast(frames, tmp_path / "fast", workers=2)
    assert got[2]
    assert_same(expected, got)


# ----------------------------------------------------------------------- generated LB

TESTS = {"ALB": "Albumin", "GLUC": "Glucose", "HGB": "Hemoglobin", "XYZ1": "Sponsor Assay"}
LOINCS = ("1751-7", "2345-7", "0000-0")
UNITS = ("g/dL", "mg/dL", "g/L", "U/L", "blorbs/jar", "%")
RESULTS = ("3.9", "3.90", "<5", "<= 0.5", ">10", "1e-300", "+2", ".5", "-0.0", "007",
           "NEGATIVE", "Trace", 'a "quoted", b', "")
NRIND = ("NORMAL", "HIGH", "LOW", "ABNORMAL", "ODD")
DTCS = ("2020", "2020-06", "2020-06-14", "2020-06-14T08", "2020-06-14T08:30",
        "2020-06-14T08:30:15", "2019-12-31T23:59:59", "2020-02-30", "soon", "")
RANGES = ("3.5", "35", "3.50", "<1", "abc", "")
FLOATS = (1.0, 2.0, 0.5, -0.0, 0.0, 35.0, 3.5, 1e-300, 123456789.125, math.nan)
#: --SEQ values whose ids never meet one another nor a row number (missing --SEQ)
SEQS = (100.0, 200.0, 300.0, 400.0, 500.0, 1000.0, 0.5, 1.5, 2.25, 35.5, 1e-300,
        123456789.125, 7.75, 8.125, math.nan)


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


def text_or(choices: tuple[Any, ...]) -> st.SearchStrategy[Any]:
    return optional(st.one_of(st.sampled_from(choices), PRINTABLE.map(lambda s: s[:12])))


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """SDTM in memory: Num variables float64 (NaN missing), Char object (None missing)."""
    data = pd.DataFrame.from_records(rows)
    for column in data.columns:
        if column in NUM:
            data[column] = data[column].astype("float64")
        else:
            data[column] = data[column].astype(object).where(data[column].notna(), None)
    return data


@st.composite
def lb_studies(draw: st.DrawFn, unique_seq: bool = True) -> dict[str, pd.DataFrame]:
    """DM and LB (and sometimes VS sharing LB's visits) with values to trip on."""
    studyid = draw(st.sampled_from(("S1", "CDISCPILOT01", "ST 1")))
    usubjids = draw(st.lists(st.sampled_from(("S1-001", "S1-002", "S1-001-2", "S 1/003",
                                              "X" * 70)), min_size=1, max_size=3,
                             unique=True))
    dm = frame([{"STUDYID": draw(st.sampled_from((studyid, studyid, None))), "DOMAIN": "DM",
                 "USUBJID": u, "SUBJID": u[-3:], "SITEID": "01",
                 "RFSTDTC": draw(st.sampled_from(("2020-06-01", "2020-06", None))),
                 "SEX": "F"} for u in usubjids])
    columns = draw(st.sets(st.sampled_from((
        "STUDYID", "DOMAIN", "LBSEQ", "LBTEST", "LBCAT", "LBORRES", "LBORRESU", "LBORNRLO",
        "LBORNRHI", "LBSTRESC", "LBSTRESN", "LBSTRESU", "LBSTNRLO", "LBSTNRHI", "LBNRIND",
        "LBSTAT", "LBREASND", "LBLOINC", "LBSPEC", "LBMETHOD", "VISITNUM", "VISIT", "EPOCH",
        "LBDTC", "LBDY")), min_size=12))
    rows = []
    count = draw(st.integers(1, 14))
    if unique_seq:
        seqs = draw(st.lists(st.sampled_from(SEQS), min_size=count, max_size=count,
                             unique_by=repr))
        subject = st.sampled_from(usubjids)
        testcds = st.sampled_from(sorted(TESTS))
    else:
        seqs = draw(st.lists(st.sampled_from(FLOATS), min_size=count, max_size=count))
        subject = st.one_of(st.sampled_from(usubjids), st.sampled_from((None, "NOT-IN-DM")))
        testcds = optional(st.sampled_from(sorted(TESTS)))
    for seq in seqs:
        testcd = draw(testcds)
        row = {
            "STUDYID": studyid, "DOMAIN": "LB", "USUBJID": draw(subject),
            "LBSEQ": seq, "LBTESTCD": testcd,
            "LBTEST": draw(optional(st.sampled_from((TESTS.get(testcd or "", "Other"),
                                                     "GLUCOSE")))),
            "LBCAT": draw(optional(st.sampled_from(("CHEMISTRY", "HEMATOLOGY")))),
            "LBORRES": draw(text_or(RESULTS)),
            "LBORRESU": draw(optional(st.sampled_from(UNITS))),
            "LBORNRLO": draw(text_or(RANGES)), "LBORNRHI": draw(text_or(RANGES)),
            "LBSTRESC": draw(text_or(RESULTS)),
            "LBSTRESN": draw(st.sampled_from(FLOATS)),
            "LBSTRESU": draw(optional(st.sampled_from(UNITS))),
            "LBSTNRLO": draw(st.sampled_from(FLOATS)), "LBSTNRHI": draw(st.sampled_from(FLOATS)),
            "LBNRIND": draw(optional(st.sampled_from(NRIND))),
            "LBSTAT": draw(st.sampled_from((None, None, "NOT DONE"))),
            "LBREASND": draw(optional(st.sampled_from(("not collected", "lost")))),
            "LBLOINC": draw(optional(st.sampled_from(LOINCS))),
            "LBSPEC": draw(optional(st.sampled_from(("SERUM", "BLOOD", "URINE", "PUS")))),
            "LBMETHOD": draw(optional(st.sampled_from(("ELISA", "dipstick ")))),
            "VISITNUM": draw(st.sampled_from((1.0, 1.5, 2.0, -0.0, 0.0, math.nan))),
            "VISIT": draw(text_or(("SCREENING", "WEEK 2", "WEEK 2 "))),
            "EPOCH": draw(optional(st.sampled_from(("SCREENING", "TREATMENT")))),
            "LBDTC": draw(optional(st.sampled_from(DTCS))),
            "LBDY": draw(st.sampled_from((1.0, -7.0, 14.0, math.nan))),
        }
        rows.append({k: v for k, v in row.items()
                     if k in columns or k in ("USUBJID", "LBTESTCD")})
    frames = {"DM": dm, "LB": frame(rows)}
    if draw(st.booleans()):                    # VS reuses the Encounters LB made
        frames["VS"] = frame([{
            "STUDYID": studyid, "DOMAIN": "VS", "USUBJID": draw(st.sampled_from(usubjids)),
            "VSSEQ": float(number + 1),
            "VSTESTCD": draw(st.sampled_from(("PULSE", "TEMP", "SYSBP", "DIABP"))),
            "VSORRES": draw(st.sampled_from(("72", "120", "36.6"))), "VSORRESU": "beats/min",
            "VISITNUM": draw(st.sampled_from((1.0, 2.0, 3.0))),
            "VSDTC": draw(st.sampled_from(("2020-06-14", "2020-06-15T10:00")))}
            for number in range(draw(st.integers(1, 4)))])
    return frames


PROPERTY = settings(max_examples=20, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("version", ["R4", "R5"])
@PROPERTY
@given(frames=lb_studies())
def test_generated_lb_is_byte_identical(version, frames):
    with tempfile.TemporaryDirectory() as tmp:
        expected = reference(frames, Path(tmp) / "reference", version)
        got = fast(frames, Path(tmp) / "fast", version)
        assert got[2], "unique ids and plain columns take the fast path"
        assert_same(expected, got)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=lb_studies(unique_seq=False))
def test_generated_lb_with_shared_ids_and_rejected_rows(frames):
    # repeated --SEQ (two rows, one id), rows not in DM, rows without LBTESTCD: the same
    # output, from the fast path or, where it refuses, from the reference path
    with tempfile.TemporaryDirectory() as tmp:
        assert_same(reference(frames, Path(tmp) / "reference"),
                    fast(frames, Path(tmp) / "fast", workers=2))


# ----------------------------------------------------------------------- handed back


def test_columns_of_other_types_take_the_reference_path(pilot, tmp_path):
    frames = {"DM": pilot["DM"], "LB": pilot["LB"].head(200).copy()}
    frames["LB"]["VISITNUM"] = frames["LB"]["VISITNUM"].astype("int64")
    expected = reference(frames, tmp_path / "reference")
    got = fast(frames, tmp_path / "fast")
    assert not got[2]
    assert_same(expected, got)


def test_every_row_rejected(pilot, tmp_path):
    lb = pilot["LB"].head(50).copy()
    lb["USUBJID"] = "NOBODY"
    frames = {"DM": pilot["DM"], "LB": lb}
    assert_same(reference(frames, tmp_path / "reference"), fast(frames, tmp_path / "fast"))


def test_invalid_output_leaves_nothing(pilot, tmp_path, monkeypatch):
    from fhircdisc.converters import fhir_validation
    from fhircdisc.errors import ConversionError

    def refuse(resources, version, workers=None):
        raise ConversionError("Observation/x is not valid FHIR R4 at Observation.code")

    monkeypatch.setattr(fhir_validation, "validate_resources", refuse)
    frames = {"DM": pilot["DM"], "LB": pilot["LB"].head(100)}
    with pytest.raises(ConversionError):
        to_fhir_ndjson(frames, tmp_path / "out", validate=True)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("failing", ["parent", "child"])
def test_full_disk_while_writing_is_an_output_error(pilot, tmp_path, monkeypatch, split_early,
                                                    failing):
    """A write that fails in the process writing the first part, or in one of those it
    forked for the others, ends the run with an output error naming the folder."""
    import errno
    import os

    from fhircdisc.errors import OutputError

    parent = os.getpid()
    write = ndjson_module.write_lines

    def full(*args, **kwargs):
        if (os.getpid() == parent) == (failing == "parent"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return write(*args, **kwargs)

    monkeypatch.setattr(ndjson_module, "write_lines", full)
    out = tmp_path / "out"
    with pytest.raises(OutputError, match=f"cannot write in {out}: No space left on device"):
        to_fhir_ndjson(pilot, out, workers=2, validate=False)
    assert not out.exists()
