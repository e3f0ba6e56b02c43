"""CSV datasets (fhircdisc.converters.csv_io) and the format dispatch (converters.datasets)."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings

from fhircdisc.converters.csv_io import format_number, read_csv, write_csv
from fhircdisc.converters.datasets import (
    FORMATS,
    build_frame,
    normalize_char,
    read_dataset,
    read_sdtm_folder,
    write_dataset,
)
from fhircdisc.converters.xpt import read_xpt
from fhircdisc.errors import ConversionError, InputError
from fhircdisc.schemas.columns import ColumnMeta, DatasetMeta
from tests.converters.strategies import datasets, numbers

EXAMPLE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cdisc-sdtm-example"
DOMAINS = ("DM", "EX", "LB", "VS", "AE", "TS")
CREATED = "2025-01-31T12:00:00"

META = DatasetMeta("VS", "Vital Signs", (
    ColumnMeta("USUBJID", "Unique Subject Identifier", "Char", 8),
    ColumnMeta("VSSEQ", "Sequence Number", "Num"),
    ColumnMeta("VSORRES", "Result or Finding in Original Units", "Char", 8),
    ColumnMeta("VSSTRESN", "Numeric Result/Finding in Standard Units", "Num"),
))


def example(domain: str, fmt: str) -> Path:
    path = EXAMPLE / fmt / f"{domain.lower()}.{fmt}"
    if not path.is_file():
        pytest.skip(f"reference data absent: {path}")
    return path


def frame(meta: DatasetMeta, rows: list[list[object]]) -> pd.DataFrame:
    return build_frame(meta, [list(col) for col in zip(*rows, strict=True)] if rows
                       else [[] for _ in meta.columns])


@pytest.mark.parametrize("domain", DOMAINS)
def test_real_round_trip(domain: str, tmp_path: Path) -> None:
    df, meta = read_xpt(example(domain, "xpt"))
    out = tmp_path / f"{domain.lower()}.csv"
    write_csv(df, out, meta)
    pd.testing.assert_frame_equal(read_csv(out, meta), df, check_exact=True)
    # without metadata: every column is text, numbers as written
    text = read_csv(out)
    assert list(text.columns) == [c.name for c in meta.columns]
    assert all(text[c].dtype == object for c in text.columns)
    assert list(tmp_path.iterdir()) == [out]


def test_written_text(tmp_path: Path) -> None:
    df = frame(META, [["S-1", 1.0, "120", 120.0], ["S-1", 2.0, None, 36.6],
                      ["S,2", 3.0, 'say "hi"', math.nan]])
    out = tmp_path / "vs.csv"
    write_csv(df, out, META)
    assert out.read_bytes() == (b"USUBJID,VSSEQ,VSORRES,VSSTRESN\n"
                                b"S-1,1,120,120\n"
                                b"S-1,2,,36.6\n"
                                b'"S,2",3,"say ""hi""",\n')


def test_format_number() -> None:
    assert [format_number(v) for v in (84.0, -7.0, 0.0, 0.1, 1e16, 1e-300, math.nan, math.inf,
                                       2.0**53 + 2, 8.549999999999999)] == \
        ["84", "-7", "0", "0.1", "1e+16", "1e-300", "", "inf", "9007199254740994",
         "8.549999999999999"]


def test_single_column_missing_is_not_a_blank_line(tmp_path: Path) -> None:
    meta = DatasetMeta("XX", "X", (ColumnMeta("A", "a"),))
    out = tmp_path / "xx.csv"
    write_csv(frame(meta, [["x"], [None], ["y"]]), out, meta)
    assert read_csv(out, meta)["A"].tolist() == ["x", None, "y"]


def test_bad_numbers(tmp_path: Path) -> None:
    path = tmp_path / "vs.csv"
    path.write_text("USUBJID,VSSEQ,VSORRES,VSSTRESN\nS1,1,x,1.5\nS1,2,y,abc\nS1,three,z,\n")
    with pytest.raises(InputError) as info:
        read_csv(path, META)
    message = str(info.value)
    assert message.startswith(f"{path}: 2 problems:")
    assert "row 2 (line 3), variable VSSTRESN: expected a number, got 'abc'" in message
    assert "row 3 (line 4), variable VSSEQ: expected a number, got 'three'" in message

    path.write_text("USUBJID,VSSEQ,VSORRES,VSSTRESN\nS1,1,x\n")
    with pytest.raises(InputError, match=r"\[row 1 \(line 2\)\]: has 3 fields, the header has 4"):
        read_csv(path, META)


def test_header_must_match_metadata(tmp_path: Path) -> None:
    path = tmp_path / "vs.csv"
    path.write_text("VSSTRESN,USUBJID,VSORRES,VSSEQ\n1.5,S1,x,1\n")  # other order: fine
    df = read_csv(path, META)
    assert list(df.columns) == ["USUBJID", "VSSEQ", "VSORRES", "VSSTRESN"]
    assert df.iloc[0].tolist() == ["S1", 1.0, "x", 1.5]
    path.write_text("USUBJID,VSSEQ,VSTEST\nS1,1,x\n")
    with pytest.raises(InputError, match=re.escape(
            "missing variable(s) VSORRES, VSSTRESN; unexpected column(s) VSTEST")):
        read_csv(path, META)


def test_unreadable_csv(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        read_csv(tmp_path / "absent.csv")
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"A,B\n\xff\xfe,1\n")
    with pytest.raises(InputError, match="not UTF-8"):
        read_csv(bad)
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="no header row"):
        read_csv(empty)


# --------------------------------------------------------------------------- dispatch


def test_write_dataset_all_formats(tmp_path: Path) -> None:
    df = frame(META, [["S-1", 1.0, "120", 120.0], ["S-2", 2.0, None, math.nan]])
    paths = [write_dataset(df, tmp_path, META, fmt, creation_datetime=CREATED) for fmt in FORMATS]
    assert [p.name for p in paths] == ["vs.xpt", "vs.json", "vs.ndjson", "vs.csv"]
    for path in paths:
        back, meta = read_dataset(path, meta=META)
        pd.testing.assert_frame_equal(back, df, check_exact=True)
        assert [(c.name, c.label, c.type) for c in meta.columns] == \
            [(c.name, c.label, c.type) for c in META.columns]
    with pytest.raises(ConversionError, match="unknown dataset format 'sas7bdat'"):
        write_dataset(df, tmp_path, META, "sas7bdat", creation_datetime=CREATED)


def test_read_dataset_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "dm.sas7bdat"
    path.write_bytes(b"x")
    with pytest.raises(InputError, match="unsupported dataset file type"):
        read_dataset(path)


def test_read_sdtm_folder_prefers_xpt(tmp_path: Path) -> None:
    for domain, fmt in [("DM", "xpt"), ("DM", "json"), ("TS", "ndjson"), ("TS", "json"),
                        ("AE", "ndjson")]:
        shutil.copy(example(domain, fmt), tmp_path / f"{domain.lower()}.{fmt}")
    (tmp_path / "dm.csv").write_text("STUDYID\nX\n")  # ignored: dm.xpt wins
    (tmp_path / "notes.txt").write_text("not a dataset")
    (tmp_path / "vs.csv").write_text("USUBJID,VSSEQ\nS1,1\n")
    found = read_sdtm_folder(tmp_path)
    assert sorted(found) == ["AE", "DM", "TS", "VS"]
    assert found["DM"][1].columns[0].length == 12 and found["DM"][1].column("AGE").length == 8  # type: ignore[union-attr]
    assert found["TS"][1].column("TSSEQ").length is None  # type: ignore[union-attr]  # json
    assert found["DM"][0].shape == (18, 26)
    assert found["VS"][1].columns == (ColumnMeta("USUBJID", ""), ColumnMeta("VSSEQ", ""))
    with pytest.raises(InputError, match="not a folder"):
        read_sdtm_folder(tmp_path / "nope")


# --------------------------------------------------------------------------- property

NUMBERS = numbers(allow_infinity=True)  # CSV also keeps inf/-inf


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=datasets(NUMBERS))
def test_property_round_trip(tmp_path_factory: pytest.TempPathFactory,
                             data: tuple[pd.DataFrame, DatasetMeta]) -> None:
    df, meta = data
    out = tmp_path_factory.mktemp("prop") / "rt.csv"
    write_csv(df, out, meta)
    expected = build_frame(meta, [[normalize_char(v) for v in df[c.name]] if c.type == "Char"
                                  else df[c.name].tolist() for c in meta.columns])
    pd.testing.assert_frame_equal(read_csv(out, meta), expected, check_exact=True)
