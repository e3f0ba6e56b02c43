"""CDISC Dataset-JSON 1.1 (.json and .ndjson) writing and reading, and agreement with XPT."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings

from fhircdisc.converters.dataset_json import read_dataset_json, write_dataset_json
from fhircdisc.converters.datasets import build_frame, normalize_char
from fhircdisc.converters.xpt import read_xpt
from fhircdisc.errors import ConversionError, InputError
from fhircdisc.schemas.columns import ColumnMeta, DatasetMeta
from tests.converters.strategies import datasets, numbers

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
EXAMPLE = DATA / "cdisc-sdtm-example"
SCHEMA = DATA / "dataset-json-schema" / "dataset.schema.json"
GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"
DOMAINS = ("DM", "EX", "LB", "VS", "AE", "TS")
CREATED = "2025-01-31T12:00:00"


def example(domain: str, fmt: str) -> Path:
    path = EXAMPLE / fmt / f"{domain.lower()}.{fmt}"
    if not path.is_file():
        pytest.skip(f"reference data absent: {path}")
    return path


def frame(meta: DatasetMeta, rows: list[list[object]]) -> pd.DataFrame:
    return build_frame(meta, [list(col) for col in zip(*rows, strict=True)] if rows
                       else [[] for _ in meta.columns])


def write_raw(path: Path, doc: dict[str, Any] | None = None, *, lines: list[bytes] | None = None,
              text: bytes | None = None) -> Path:
    if text is not None:
        path.write_bytes(text)
    elif lines is not None:
        path.write_bytes(b"\n".join(lines) + b"\n")
    else:
        path.write_bytes(orjson.dumps(doc))
    return path


# --------------------------------------------------------------------------- real data


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return abs(a - b) <= 1e-9 * max(1.0, abs(a))
    return a == b


# Cells where the XPT and the Dataset-JSON forms of CDISC's example are not bit-identical.
# The JSON numbers are the XPT doubles rounded to 15 significant digits (e.g. XPT
# 8.549999999999999, JSON 8.55): 1-2 ulp apart, nowhere else.
INEXACT_CELLS = {("LB", "LBSTRESN"): 400, ("LB", "LBSTNRLO"): 128, ("LB", "LBSTNRHI"): 167}


@pytest.mark.parametrize("domain", DOMAINS)
def test_cdisc_example_formats_agree(domain: str) -> None:
    dx, mx = read_xpt(example(domain, "xpt"))
    dj, mj = read_dataset_json(example(domain, "json"))
    dn, mn = read_dataset_json(example(domain, "ndjson"))
    assert mj == mn
    assert (mx.name, mx.label) == (mj.name, mj.label)
    assert [(c.name, c.label, c.type) for c in mx.columns] == \
        [(c.name, c.label, c.type) for c in mj.columns]
    # Lengths: XPT has one for every variable; CDISC's JSON gives none for numbers and for
    # the columns typed "date" (and LB's LBDTC); where both have one they agree
    raw = orjson.loads(example(domain, "json").read_bytes())
    no_length = {c["name"] for c in raw["columns"] if "length" not in c}
    for cx, cj in zip(mx.columns, mj.columns, strict=True):
        if cj.name in no_length:
            assert cj.length is None
        else:
            assert cx.length == cj.length
    assert all(mx.column(n).length for n in no_length)  # type: ignore[union-attr]

    assert dx.shape == dj.shape == dn.shape
    pd.testing.assert_frame_equal(dj, dn, check_exact=True)  # json and ndjson: identical
    for col in mx.columns:
        xs, js = dx[col.name].tolist(), dj[col.name].tolist()
        diffs = [i for i, (a, b) in enumerate(zip(xs, js, strict=True)) if not _same(a, b)]
        assert diffs == [], f"{domain}.{col.name} rows {diffs[:5]}"
        if col.type == "Num":
            inexact = [i for i, (a, b) in enumerate(zip(xs, js, strict=True))
                       if not (a == b or (math.isnan(a) and math.isnan(b)))]
            assert len(inexact) == INEXACT_CELLS.get((domain, col.name), 0)
            assert all(float(f"{xs[i]:.15g}") == js[i] for i in inexact)


def test_cdisc_example_lb_size() -> None:
    df, meta = read_dataset_json(example("LB", "ndjson"))
    assert df.shape == (3488, 23)
    assert meta.column("LBSTRESN") == ColumnMeta(
        "LBSTRESN", "Numeric Result/Finding in Standard Units", "Num", None)


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
@pytest.mark.parametrize("domain", DOMAINS)
def test_real_round_trip(domain: str, fmt: str, tmp_path: Path) -> None:
    df, meta = read_dataset_json(example(domain, fmt))
    out = tmp_path / f"{domain.lower()}.{fmt}"
    write_dataset_json(df, out, meta, ndjson=fmt == "ndjson", creation_datetime=CREATED)
    df2, meta2 = read_dataset_json(out)
    pd.testing.assert_frame_equal(df, df2, check_exact=True)
    assert meta2 == meta
    assert list(tmp_path.iterdir()) == [out]


def test_xpt_to_json_keeps_values(tmp_path: Path) -> None:
    df, meta = read_xpt(example("LB", "xpt"))
    out = tmp_path / "lb.json"
    write_dataset_json(df, out, meta, creation_datetime=CREATED)
    df2, meta2 = read_dataset_json(out)
    pd.testing.assert_frame_equal(df, df2, check_exact=True)  # shortest repr: no rounding
    # JSON carries no length for numbers
    assert meta2.columns == tuple(ColumnMeta(c.name, c.label, c.type,
                                             c.length if c.type == "Char" else None)
                                  for c in meta.columns)
    doc = orjson.loads(out.read_bytes())
    types = {c["name"]: c["dataType"] for c in doc["columns"]}
    assert types["LBSEQ"] == "integer" and types["LBDY"] == "integer"
    assert types["LBSTRESN"] == "double" and types["VISITNUM"] == "double"
    assert types["LBORRES"] == "string"


def _schema_check(doc: dict[str, Any]) -> None:
    """The structural rules of CDISC's dataset.schema.json (no jsonschema package here)."""
    if not SCHEMA.is_file():
        pytest.skip(f"reference data absent: {SCHEMA}")
    schema = orjson.loads(SCHEMA.read_bytes())
    assert set(schema["required"]) <= set(doc)
    assert set(doc) <= set(schema["properties"])
    column_def = schema["$defs"]["Column"]
    allowed_types = set(schema["$defs"]["DataTypesEnum"]["enum"])
    for col in doc["columns"]:
        assert set(column_def["required"]) <= set(col) <= set(column_def["properties"])
        assert col["dataType"] in allowed_types
    for key in ("datasetJSONCreationDateTime", "datasetJSONVersion"):
        assert re.match(schema["properties"][key]["pattern"], doc[key])
    if "sourceSystem" in doc:
        assert set(doc["sourceSystem"]) == {"name", "version"}
    assert doc["records"] == len(doc.get("rows", []))


# --------------------------------------------------------------------------- golden files

GOLDEN_META = DatasetMeta("DM", "Demographics", (
    ColumnMeta("STUDYID", "Study Identifier", "Char", 8),
    ColumnMeta("DOMAIN", "Domain Abbreviation", "Char", 2),
    ColumnMeta("USUBJID", "Unique Subject Identifier", "Char", 14),
    ColumnMeta("BRTHDTC", "Date/Time of Birth", "Char"),
    ColumnMeta("AGE", "Age", "Num"),
    ColumnMeta("HEIGHTBL", "Baseline Height", "Num"),
    ColumnMeta("SEX", "Sex", "Char", 1),
    ColumnMeta("ARMNRS", "Reason Arm and/or Actual Arm is Null", "Char", 20),
))
GOLDEN_ROWS: list[list[object]] = [
    ["STUDY-X", "DM", "STUDY-X-001", "1961-04", 63.0, 171.5, "F", None],
    ["STUDY-X", "DM", "STUDY-X-002", None, 41.0, math.nan, "M", None],
    ["STUDY-X", "DM", "STUDY-X-003", "1990-12-30", math.nan, 0.1, None, "SCREEN FAILURE"],
]


@pytest.mark.parametrize("name", ["dm.json", "dm.ndjson"])
def test_golden(name: str, tmp_path: Path) -> None:
    out = tmp_path / name
    write_dataset_json(frame(GOLDEN_META, GOLDEN_ROWS), out, GOLDEN_META,
                       ndjson=name.endswith(".ndjson"), creation_datetime=CREATED,
                       study_oid="STUDY-X", source_system={"name": "fhircdisc", "version": "0"})
    golden = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_bytes(out.read_bytes())
    assert out.read_bytes() == golden.read_bytes(), f"regenerate with UPDATE_GOLDEN=1 ({golden})"

    df, meta = read_dataset_json(golden)
    assert meta == GOLDEN_META
    pd.testing.assert_frame_equal(df, frame(GOLDEN_META, GOLDEN_ROWS), check_exact=True)
    lines = golden.read_bytes().splitlines()
    doc = orjson.loads(lines[0])
    if name.endswith(".ndjson"):
        assert len(lines) == 4 and "rows" not in doc
        doc["rows"] = [orjson.loads(line) for line in lines[1:]]
    _schema_check(doc)
    assert list(doc) == ["datasetJSONCreationDateTime", "datasetJSONVersion", "fileOID",
                         "originator", "sourceSystem", "studyOID", "itemGroupOID", "records",
                         "name", "label", "columns", "rows"]
    assert doc["columns"][4] == {"itemOID": "IT.DM.AGE", "name": "AGE", "label": "Age",
                                 "dataType": "integer"}
    assert doc["columns"][5]["dataType"] == "double"
    assert doc["rows"][2] == ["STUDY-X", "DM", "STUDY-X-003", "1990-12-30", None, 0.1, None,
                              "SCREEN FAILURE"]


def test_output_is_deterministic(tmp_path: Path) -> None:
    df = frame(GOLDEN_META, GOLDEN_ROWS)
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    write_dataset_json(df, first, GOLDEN_META, creation_datetime=CREATED)
    write_dataset_json(df.copy(), second, GOLDEN_META, creation_datetime=CREATED)
    assert first.read_bytes() == second.read_bytes()


def test_write_rejects_bad_arguments(tmp_path: Path) -> None:
    df = frame(GOLDEN_META, GOLDEN_ROWS)
    with pytest.raises(ConversionError, match="creation_datetime"):
        write_dataset_json(df, tmp_path / "dm.json", GOLDEN_META, creation_datetime="yesterday")
    meta = DatasetMeta("XX", "X", (ColumnMeta("N", "n", "Num"),))
    with pytest.raises(ConversionError, match=r"XX.N row 2: value inf"):
        write_dataset_json(frame(meta, [[1.0], [math.inf]]), tmp_path / "xx.json", meta,
                           creation_datetime=CREATED)
    bad = frame(GOLDEN_META, GOLDEN_ROWS)
    bad.loc[1, "SEX"] = 5
    with pytest.raises(ConversionError, match=r"DM.SEX row 2: Char variable holds int"):
        write_dataset_json(bad, tmp_path / "dm.json", GOLDEN_META, creation_datetime=CREATED)
    with pytest.raises(ConversionError, match="not in the data: ARMNRS"):
        write_dataset_json(df.drop(columns=["ARMNRS"]), tmp_path / "dm.json", GOLDEN_META,
                           creation_datetime=CREATED)
    assert list(tmp_path.iterdir()) == []


def test_data_type_choice(tmp_path: Path) -> None:
    meta = DatasetMeta("XX", "X", (ColumnMeta("I", "i", "Num"), ColumnMeta("D", "d", "Num"),
                                   ColumnMeta("E", "e", "Num"), ColumnMeta("B", "b", "Num")))
    df = frame(meta, [[1.0, 1.0, math.nan, 2.0**60], [math.nan, 2.5, math.nan, 1.0]])
    out = tmp_path / "xx.json"
    write_dataset_json(df, out, meta, creation_datetime=CREATED)
    doc = orjson.loads(out.read_bytes())
    assert [c["dataType"] for c in doc["columns"]] == ["integer", "double", "double", "double"]
    assert doc["rows"] == [[1, 1.0, None, 2.0**60], [None, 2.5, None, 1.0]]


# --------------------------------------------------------------------------- bad input


def _valid_doc() -> dict[str, Any]:
    return {
        "datasetJSONCreationDateTime": CREATED, "datasetJSONVersion": "1.1.0",
        "itemGroupOID": "IG.LB", "records": 3, "name": "LB", "label": "Lab",
        "columns": [
            {"itemOID": "IT.LB.USUBJID", "name": "USUBJID", "label": "Subject",
             "dataType": "string", "length": 8},
            {"itemOID": "IT.LB.LBSTRESN", "name": "LBSTRESN", "label": "Result",
             "dataType": "double"},
            {"itemOID": "IT.LB.LBSEQ", "name": "LBSEQ", "label": "Seq", "dataType": "integer"},
        ],
        "rows": [["S1", 1.5, 1], ["S1", None, 2], ["S2", 3, 3]],
    }


def test_valid_doc_reads(tmp_path: Path) -> None:
    df, meta = read_dataset_json(write_raw(tmp_path / "lb.json", _valid_doc()))
    assert df["LBSTRESN"].tolist()[::2] == [1.5, 3.0]
    assert df["LBSEQ"].tolist() == [1.0, 2.0, 3.0]
    assert meta.column("USUBJID") == ColumnMeta("USUBJID", "Subject", "Char", 8)


def test_short_row(tmp_path: Path) -> None:
    doc = _valid_doc()
    doc["rows"][1] = ["S1", None]
    path = write_raw(tmp_path / "lb.json", doc)
    with pytest.raises(InputError) as info:
        read_dataset_json(path)
    assert str(info.value) == f"{path} [row 2]: has 2 values, the dataset has 3 columns"


def test_wrong_cell_type_ndjson(tmp_path: Path) -> None:
    doc = _valid_doc()
    rows = doc.pop("rows")
    rows[1][1] = "abc"
    path = write_raw(tmp_path / "lb.ndjson",
                     lines=[orjson.dumps(doc), *(orjson.dumps(r) for r in rows)])
    with pytest.raises(InputError) as info:
        read_dataset_json(path)
    assert str(info.value) == (f"{path} [row 2 (line 3), column LBSTRESN]: "
                               "expected a number, got string 'abc'")


def test_many_problems_listed(tmp_path: Path) -> None:
    doc = _valid_doc()
    doc["rows"] = [["S1", "x", 1.5], [7, None, True], ["S3", None, 3]] + \
        [["S", "bad", 1] for _ in range(30)]
    doc["records"] = len(doc["rows"])
    path = write_raw(tmp_path / "lb.json", doc)
    with pytest.raises(InputError) as info:
        read_dataset_json(path)
    message = str(info.value)
    assert message.startswith(f"{path}: first 20 problems (stopped looking):")
    assert "row 1, column LBSTRESN: expected a number, got string 'x'" in message
    assert "row 1, column LBSEQ: expected an integer, got number 1.5" in message
    assert "row 2, column USUBJID: expected a string, got integer 7" in message
    assert "row 2, column LBSEQ: expected an integer, got boolean true" in message
    assert message.count("\n  ") == 20


def test_missing_required_key(tmp_path: Path) -> None:
    doc = _valid_doc()
    del doc["records"], doc["label"]
    path = write_raw(tmp_path / "lb.json", doc)
    with pytest.raises(InputError) as info:
        read_dataset_json(path)
    assert str(info.value) == f"{path} [metadata]: required key(s) missing: records, label"
    lines = [orjson.dumps({k: v for k, v in _valid_doc().items() if k not in ("rows", "name")})]
    path = write_raw(tmp_path / "lb.ndjson", lines=lines)
    with pytest.raises(InputError, match=r"lb.ndjson \[line 1\]: required key\(s\) missing: name"):
        read_dataset_json(path)


def test_malformed_json(tmp_path: Path) -> None:
    path = write_raw(tmp_path / "lb.json", text=b'{"datasetJSONVersion": "1.1.0",\n "rows": [1,]}')
    with pytest.raises(InputError) as info:
        read_dataset_json(path)
    assert str(info.value).startswith(f"{path} [line 2, column ")
    assert "malformed JSON" in str(info.value)

    doc = _valid_doc()
    rows = doc.pop("rows")
    lines = [orjson.dumps(doc), orjson.dumps(rows[0]), b'["S1", 2.0, 2', orjson.dumps(rows[2])]
    path = write_raw(tmp_path / "lb.ndjson", lines=lines)
    with pytest.raises(InputError, match=r"lb.ndjson \[line 3, column \d+\]: malformed JSON"):
        read_dataset_json(path)


@pytest.mark.parametrize(("change", "message"), [
    ({"records": 5}, "records says 5 but the file has 3 rows"),
    ({"datasetJSONVersion": "1.0.0"}, "datasetJSONVersion '1.0.0' is not supported"),
    ({"columns": [{"itemOID": "x", "name": "A", "label": "a", "dataType": "text"}]},
     "invalid metadata: Invalid value text for dataType"),
    ({"records": "3"}, "invalid metadata: records must be an integer, got string '3'"),
    ({"columns": [{"itemOID": "x", "name": "A", "label": "a", "dataType": "string",
                   "length": "8"}]},
     "invalid metadata: column A: length must be an integer, got string '8'"),
    ({"columns": [{"itemOID": "x", "name": "A", "label": "a", "dataType": "string",
                   "length": 0}]}, "invalid metadata"),
    ({"columns": [{"itemOID": "x", "name": "A", "label": "a"}]},
     "invalid metadata: Missing required keyword argument dataType in Column"),
])
def test_bad_metadata(change: dict[str, Any], message: str, tmp_path: Path) -> None:
    doc = {**_valid_doc(), **change}
    path = write_raw(tmp_path / "lb.json", doc)
    with pytest.raises(InputError, match=re.escape(message)):
        read_dataset_json(path)


def test_other_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        read_dataset_json(tmp_path / "absent.json")
    with pytest.raises(InputError, match="empty file"):
        read_dataset_json(write_raw(tmp_path / "e.ndjson", text=b""))
    with pytest.raises(InputError, match="not a JSON object"):
        read_dataset_json(write_raw(tmp_path / "a.json", text=b"[1, 2]"))
    v10 = {"creationDateTime": CREATED, "datasetJSONVersion": "1.0.0", "clinicalData": {}}
    with pytest.raises(InputError, match=r"Dataset-JSON 1\.0"):
        read_dataset_json(write_raw(tmp_path / "old.json", v10))


def test_lenient_types(tmp_path: Path) -> None:
    """decimal as numeric text, boolean as 1/0, date/time types as Char, unknown keys ignored."""
    doc = {
        **_valid_doc(), "records": 2, "futureKey": {"x": 1},
        "columns": [
            {"itemOID": "a", "name": "DEC", "label": "d", "dataType": "decimal"},
            {"itemOID": "b", "name": "FLG", "label": "f", "dataType": "boolean"},
            {"itemOID": "c", "name": "DTC", "label": "t", "dataType": "datetime"},
            {"itemOID": "d", "name": "TXT", "label": "s", "dataType": "string",
             "targetDataType": "decimal"},
        ],
        "rows": [["1.25", True, "2024-01-01T10:00", "0.5"], [3, False, None, None]],
    }
    df, meta = read_dataset_json(write_raw(tmp_path / "x.json", doc))
    assert [c.type for c in meta.columns] == ["Num", "Num", "Char", "Num"]
    assert df["DEC"].tolist() == [1.25, 3.0]
    assert df["FLG"].tolist() == [1.0, 0.0]
    assert df["DTC"].tolist() == ["2024-01-01T10:00", None]
    assert df["TXT"].tolist()[0] == 0.5
    doc["rows"][0][0] = "1,25"
    with pytest.raises(InputError, match="expected a decimal number, got string '1,25'"):
        read_dataset_json(write_raw(tmp_path / "x.json", doc))


# --------------------------------------------------------------------------- property

NUMBERS = numbers(allow_infinity=False)


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=datasets(NUMBERS))
def test_property_round_trip(fmt: str, tmp_path_factory: pytest.TempPathFactory,
                             data: tuple[pd.DataFrame, DatasetMeta]) -> None:
    df, meta = data
    out = tmp_path_factory.mktemp("prop") / f"rt.{fmt}"
    write_dataset_json(df, out, meta, ndjson=fmt == "ndjson", creation_datetime=CREATED)
    back, meta2 = read_dataset_json(out)
    expected = build_frame(meta, [[normalize_char(v) for v in df[c.name]] if c.type == "Char"
                                  else df[c.name].tolist() for c in meta.columns])
    pd.testing.assert_frame_equal(back, expected, check_exact=True)  # floats bit for bit
    assert meta2 == meta
    assert np.array_equal(back.select_dtypes("float64").to_numpy(),
                          expected.select_dtypes("float64").to_numpy(), equal_nan=True)
