"""SAS XPORT v5 writing and v5/v8 reading (fhircdisc.converters.xpt)."""

from __future__ import annotations

import math
import random
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest
from hypothesis import HealthCheck, given, settings

from fhircdisc.converters.datasets import build_frame, normalize_char
from fhircdisc.converters.xpt import (
    XPT_MAX_MAGNITUDE,
    XPT_MIN_MAGNITUDE,
    XptViolation,
    check_xpt_v5,
    read_xpt,
    write_xpt,
    xpt_representable,
)
from fhircdisc.errors import ConversionError, InputError
from fhircdisc.schemas.columns import ColumnMeta, DatasetMeta
from tests.converters.pyreadstat_xpt import pyreadstat_xpt
from tests.converters.strategies import datasets, numbers

EXAMPLE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cdisc-sdtm-example"
DOMAINS = ("DM", "EX", "LB", "VS", "AE", "TS")
CREATED = "2025-01-31T12:00:00"
V5_LIBRARY_HEADER = b"HEADER RECORD*******LIBRARY HEADER RECORD!!!!!!!"


def example(domain: str, fmt: str) -> Path:
    path = EXAMPLE / fmt / f"{domain.lower()}.{fmt}"
    if not path.is_file():
        pytest.skip(f"reference data absent: {path}")
    return path


def frame(meta: DatasetMeta, rows: list[list[object]]) -> pd.DataFrame:
    return build_frame(meta, [list(col) for col in zip(*rows, strict=True)] if rows
                       else [[] for _ in meta.columns])


# --------------------------------------------------------------------------- real data


@pytest.mark.parametrize("domain", DOMAINS)
def test_real_xpt_round_trip(domain: str, tmp_path: Path) -> None:
    df, meta = read_xpt(example(domain, "xpt"))
    assert meta.name == domain
    out = tmp_path / f"{domain.lower()}.xpt"
    write_xpt(df, out, meta)
    df2, meta2 = read_xpt(out)
    pd.testing.assert_frame_equal(df, df2, check_exact=True)
    assert meta2 == meta  # names, labels, types and lengths

    # what a third party sees: pyreadstat directly
    _, fmeta = pyreadstat.read_xport(str(out), metadataonly=True)
    assert fmeta.table_name == domain
    assert fmeta.file_label == meta.label
    assert fmeta.column_labels == [c.label for c in meta.columns]
    assert fmeta.variable_storage_width == {c.name: c.length for c in meta.columns}
    # pyreadstat's metadata does not expose the XPORT version: the library header does
    # (v5 "LIBRARY HEADER RECORD", v8 "LIBV8 HEADER RECORD")
    assert out.read_bytes()[:48] == V5_LIBRARY_HEADER
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left behind


@pytest.mark.parametrize("domain", DOMAINS)
def test_real_xpt_bytes_are_pyreadstats(domain: str, tmp_path: Path) -> None:
    """The records are encoded a column at a time: the file is still, byte for byte, the
    one pyreadstat writes value by value."""
    df, meta = read_xpt(example(domain, "xpt"))
    out = tmp_path / "ours.xpt"
    write_xpt(df, out, meta, created=CREATED)
    assert out.read_bytes() == pyreadstat_xpt(df, meta, tmp_path / "reference.xpt", CREATED)


def test_header_stamp_defaults_to_now(tmp_path: Path) -> None:
    meta = DatasetMeta("NU", "Numbers", (ColumnMeta("X", "x", "Num"),))
    out = tmp_path / "nu.xpt"
    write_xpt(frame(meta, [[1.0]]), out, meta)
    stamp = out.read_bytes()[144:160].decode()  # the library header's creation stamp
    assert abs(datetime.strptime(stamp, "%d%b%y:%H:%M:%S") - datetime.now()).total_seconds() < 3600


def test_real_xpt_shapes_and_types() -> None:
    df, meta = read_xpt(example("LB", "xpt"))
    assert df.shape == (3488, 23)
    assert meta.label == "Laboratory Test Results"
    assert meta.column("LBSTRESN") == ColumnMeta("LBSTRESN",
                                                 "Numeric Result/Finding in Standard Units",
                                                 "Num", 8)
    assert meta.column("LBORRES") == ColumnMeta("LBORRES", "Result or Finding in Original Units",
                                                "Char", 6)
    assert df["LBSTRESN"].dtype == np.float64
    assert df["LBORRES"].dtype == object
    # missing Char is None (never ""), missing Num NaN
    assert df["LBORRES"].isna().sum() == sum(v is None for v in df["LBORRES"])
    assert "" not in set(df["LBORRES"].dropna())
    assert df["LBSTRESN"].isna().sum() == 54


# --------------------------------------------------------------------------- limits


BAD_META = DatasetMeta("LB", "Laboratory Test Results", (
    ColumnMeta("STUDYID", "Study Identifier"),
    ColumnMeta("LBORRES", "Result or Finding in Original Units plus more"),  # 45 chars
    ColumnMeta("LBCOMMENT", "Comment"),  # 9-char name
    ColumnMeta("LBSTRESN", "Numeric Result", "Num"),
))


def bad_frame() -> pd.DataFrame:
    return frame(BAD_META, [
        ["S1", "5", "ok", 1.0],
        ["S1", "x" * 201, None, 2.0],
        ["S1", "6", "Müller", math.inf],
        ["S1", None, "fine", math.nan],
    ])


def test_check_collects_every_violation() -> None:
    found = check_xpt_v5(bad_frame(), BAD_META)
    where = {(v.domain, v.variable, v.row) for v in found}
    assert where == {
        ("LB", "LBORRES", None),  # label 45 > 40
        ("LB", "LBCOMMENT", None),  # name 9 > 8
        ("LB", "LBORRES", 2),  # 201 bytes
        ("LB", "LBCOMMENT", 3),  # non-ASCII
        ("LB", "LBSTRESN", 3),  # inf
    }
    assert all(isinstance(v, XptViolation) for v in found)
    texts = [str(v) for v in found]
    assert "LB.LBORRES row 2: value is 201 bytes, XPT v5 allows 200" in texts
    assert any(t.startswith("LB.LBCOMMENT row 3: value has non-ASCII character 'ü'")
               for t in texts)
    assert any(t.startswith("LB.LBORRES: variable label is 45 characters") for t in texts)
    assert any(t.startswith("LB.LBCOMMENT: variable name 'LBCOMMENT' is 9 characters")
               for t in texts)


def test_write_refuses_and_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "lb.xpt"
    with pytest.raises(ConversionError) as info:
        write_xpt(bad_frame(), out, BAD_META)
    message = str(info.value)
    assert str(out) in message
    assert "LB.LBORRES row 2: value is 201 bytes, XPT v5 allows 200" in message
    assert "LB.LBCOMMENT row 3" in message and "non-ASCII" in message
    assert "LB.LBSTRESN row 3" in message and "not a finite number" in message
    assert "label is 45 characters" in message
    assert "'LBCOMMENT' is 9 characters" in message
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary file


def test_dataset_level_violations() -> None:
    meta = DatasetMeta("SUPPLBEXTRA", "L" * 41, (ColumnMeta("1BAD", "x"), ColumnMeta("A-B", "é")))
    found = check_xpt_v5(frame(meta, [["a", "b"]]), meta)
    texts = [str(v) for v in found]
    assert any("dataset name 'SUPPLBEXTRA' is 11 characters" in t for t in texts)
    assert any("dataset label is 41 characters" in t for t in texts)
    assert any(t.startswith("SUPPLBEXTRA.1BAD: variable name '1BAD' is not valid") for t in texts)
    assert any(t.startswith("SUPPLBEXTRA.A-B: variable name 'A-B' is not valid") for t in texts)
    assert any(t.startswith("SUPPLBEXTRA.A-B: variable label has non-ASCII") for t in texts)


def test_more_than_twenty_violations_are_summarised(tmp_path: Path) -> None:
    meta = DatasetMeta("CO", "Comments", (ColumnMeta("COVAL", "Comment"),))
    df = frame(meta, [["y" * 250] for _ in range(25)])
    with pytest.raises(ConversionError) as info:
        write_xpt(df, tmp_path / "co.xpt", meta)
    message = str(info.value)
    assert "CO.COVAL row 20: value is 250 bytes" in message
    assert "CO.COVAL row 21" not in message
    assert message.rstrip().endswith("... and 5 more")
    assert list(tmp_path.iterdir()) == []


def test_pyreadstat_alone_truncates_long_labels(tmp_path: Path) -> None:
    """Why the check exists: pyreadstat silently cuts labels to 40 characters."""
    out = tmp_path / "x.xpt"
    pyreadstat.write_xport(pd.DataFrame({"A": ["x"]}), str(out), file_format_version=5,
                           file_label="D" * 45, column_labels=["a" * 45])
    _, fmeta = pyreadstat.read_xport(str(out), metadataonly=True)
    assert fmeta.file_label == "D" * 40
    assert fmeta.column_labels == ["a" * 40]


# --------------------------------------------------------------------------- numbers


def test_xpt_keeps_doubles_exactly_in_range(tmp_path: Path) -> None:
    """IBM hex floats have a 56-bit fraction (>= 53 significant bits): no precision loss."""
    rng = np.random.default_rng(7)
    values = rng.standard_normal(5000) * 10.0 ** rng.integers(-75, 74, 5000)
    values = np.concatenate([values, [0.1, 1 / 3, 2.0**-260, np.nextafter(2.0**249, 0),
                                      -(2.0**248), 8.549999999999999, 1e-78, 9e74]])
    assert all(xpt_representable(float(v)) for v in values)
    meta = DatasetMeta("NU", "Numbers", (ColumnMeta("X", "x", "Num"),))
    out = tmp_path / "nu.xpt"
    write_xpt(frame(meta, [[float(v)] for v in values]), out, meta)
    back = read_xpt(out)[0]["X"].to_numpy()
    assert np.array_equal(back, values)  # bit for bit, no tolerance needed


def test_pyreadstat_range_limits(tmp_path: Path) -> None:
    """Outside [16**-65, 2**249) pyreadstat writes 0 or infinity, so these are violations."""
    out = tmp_path / "r.xpt"
    below = np.nextafter(XPT_MIN_MAGNITUDE, 0)
    pyreadstat.write_xport(pd.DataFrame({"X": [XPT_MAX_MAGNITUDE, below, 1e300]}), str(out),
                           file_format_version=5)
    back = pyreadstat.read_xport(str(out))[0]["X"].tolist()
    assert back == [math.inf, 0.0, math.inf]

    meta = DatasetMeta("NU", "Numbers", (ColumnMeta("X", "x", "Num"),))
    df = frame(meta, [[XPT_MAX_MAGNITUDE], [below], [-1e300], [0.0], [math.nan], [-math.inf]])
    rows = [v.row for v in check_xpt_v5(df, meta)]
    assert rows == [1, 2, 3, 6]


# --------------------------------------------------------------------------- layout


def test_char_length_from_metadata(tmp_path: Path) -> None:
    meta = DatasetMeta("XX", "X", (ColumnMeta("A", "a", "Char", 20),
                                   ColumnMeta("B", "b", "Char", 2),
                                   ColumnMeta("C", "c", "Char"), ColumnMeta("N", "n", "Num")))
    out = tmp_path / "xx.xpt"
    write_xpt(frame(meta, [["abc", "long text", None, 1.0], [None, "", None, 2.0]]), out, meta)
    _, fmeta = pyreadstat.read_xport(str(out), metadataonly=True)
    # metadata length honoured, widened to the longest value, 1 for an all-missing column
    assert fmeta.variable_storage_width == {"A": 20, "B": 9, "C": 1, "N": 8}
    df, meta2 = read_xpt(out)
    assert df["A"].tolist() == ["abc", None] and df["B"].tolist() == ["long text", None]
    assert [c.length for c in meta2.columns] == [20, 9, 1, 8]


def test_trailing_blank_rows(tmp_path: Path) -> None:
    """readstat drops final all-blank rows: restored when rows are >= 80 bytes, else refused."""
    long_meta = DatasetMeta("XX", "X", (ColumnMeta("A", "a", "Char", 100),))
    df = frame(long_meta, [["a"], [None], [None]])
    write_xpt(df, tmp_path / "long.xpt", long_meta)
    assert read_xpt(tmp_path / "long.xpt")[0]["A"].tolist() == ["a", None, None]

    short_meta = DatasetMeta("XX", "X", (ColumnMeta("A", "a", "Char", 10),))
    with pytest.raises(ConversionError, match="row 2: every value of this final row is blank"):
        write_xpt(frame(short_meta, [["a"], [None]]), tmp_path / "short.xpt", short_meta)
    # blank rows before a non-blank one are fine
    write_xpt(frame(short_meta, [[None], ["a"]]), tmp_path / "mid.xpt", short_meta)
    assert read_xpt(tmp_path / "mid.xpt")[0]["A"].tolist() == [None, "a"]


def test_read_v8(tmp_path: Path) -> None:
    out = tmp_path / "v8.xpt"
    pyreadstat.write_xport(pd.DataFrame({"LONGVARIABLE": ["x" * 300, ""], "N": [1.5, None]}),
                           str(out), file_format_version=8, table_name="LONGNAMEDDATA",
                           file_label="A v8 file", column_labels=["L" * 60, None])
    df, meta = read_xpt(out)
    assert meta == DatasetMeta("LONGNAMEDDATA", "A v8 file", (
        ColumnMeta("LONGVARIABLE", "L" * 60, "Char", 300), ColumnMeta("N", "", "Num", 8)))
    assert df["LONGVARIABLE"].tolist() == ["x" * 300, None]
    assert df["N"].tolist()[0] == 1.5 and math.isnan(df["N"].tolist()[1])


def test_unreadable_files_are_input_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.xpt"
    meta = DatasetMeta("XX", "X", (ColumnMeta("A", "a"), ColumnMeta("N", "n", "Num")))
    write_xpt(frame(meta, [["v" * 50, float(i)] for i in range(40)]), good, meta)
    data = good.read_bytes()
    cases = {
        "empty.xpt": b"",
        "junk.xpt": b"this is not a transport file\n" * 20,
        "short.xpt": data[:200],
        "cut.xpt": data[: len(data) - 37],
        "cut80.xpt": data[: len(data) - 160],  # on an 80-byte boundary, inside a row
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(InputError) as info:
            read_xpt(path)
        assert str(path) in str(info.value), name
        assert "Traceback" not in str(info.value)
    with pytest.raises(InputError, match="file not found"):
        read_xpt(tmp_path / "absent.xpt")


def test_non_utf8_text_read_as_windows_1252(tmp_path: Path) -> None:
    out = tmp_path / "w.xpt"
    pyreadstat.write_xport(pd.DataFrame({"A": ["caf?"]}), str(out), file_format_version=5)
    out.write_bytes(out.read_bytes().replace(b"caf?", b"caf\xe9"))
    assert read_xpt(out)[0]["A"].tolist() == ["café"]


# --------------------------------------------------------------------------- property

NUMBERS = numbers(allow_infinity=False)


def expected_after_read(df: pd.DataFrame, meta: DatasetMeta) -> pd.DataFrame:
    """What any reader returns: trailing blanks stripped, empty Char -> None."""
    return build_frame(meta, [[normalize_char(v) for v in df[c.name]] if c.type == "Char"
                              else df[c.name].tolist() for c in meta.columns])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datasets(NUMBERS))
def test_property_round_trip(tmp_path_factory: pytest.TempPathFactory,
                             data: tuple[pd.DataFrame, DatasetMeta]) -> None:
    df, meta = data
    out = tmp_path_factory.mktemp("prop") / "rt.xpt"
    violations = check_xpt_v5(df, meta)
    if violations:
        # only two reasons are possible for this data: a number out of range, or an
        # all-Char dataset ending in blank rows
        assert all("outside the range" in v.message or "final row is blank" in v.message
                   for v in violations)
        with pytest.raises(ConversionError):
            write_xpt(df, out, meta)
        assert not out.exists()
        return
    write_xpt(df, out, meta, created=CREATED)
    assert out.read_bytes() == pyreadstat_xpt(df, meta, out.with_suffix(".ref"), CREATED)
    back, meta2 = read_xpt(out)
    # numbers in range survive bit for bit (see test_xpt_keeps_doubles_exactly_in_range)
    pd.testing.assert_frame_equal(back, expected_after_read(df, meta), check_exact=True)
    assert [(c.name, c.label, c.type) for c in meta2.columns] == \
        [(c.name, c.label, c.type) for c in meta.columns]


def test_random_doubles_bitwise(tmp_path: Path) -> None:
    """Sample of random bit patterns (all exponents) in range: exact; out of range: flagged."""
    rnd = random.Random(3)
    values = [np.frombuffer(rnd.getrandbits(64).to_bytes(8, "little"), dtype="<f8")[0]
              for _ in range(4000)]
    finite = [float(v) for v in values if np.isfinite(v)]
    keep = [v for v in finite if xpt_representable(v)]
    assert len(keep) > 200
    meta = DatasetMeta("NU", "Numbers", (ColumnMeta("X", "x", "Num"),))
    write_xpt(frame(meta, [[v] for v in keep]), tmp_path / "nu.xpt", meta)
    assert read_xpt(tmp_path / "nu.xpt")[0]["X"].tolist() == keep
