"""The Spark engine, on a local two-core cluster, writes the same files as the streaming
engine: every dataset format, provenance and report (findings included); and an input
error is raised as there, leaving nothing behind."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fhircdisc.converters.spark_engine import spark_to_sdtm
from fhircdisc.converters.streaming import stream_to_sdtm
from fhircdisc.errors import InputError
from tests.converters.test_streaming import FORMATS, STAMP, build_export

pytest.importorskip("pyspark", reason="the Spark engine needs PySpark (the 'spark' extra)")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("Spark needs a Java runtime (no java on PATH, no JAVA_HOME)",
                allow_module_level=True)

pytestmark = pytest.mark.filterwarnings(
    "ignore:PySpark does not yet fully support pandas:FutureWarning")

#: small chunks and buckets: several pass-2 partitions and several buckets per dataset
CHUNK_LINES = 700
BUCKET_ROWS = 900


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from pyspark.sql import SparkSession

    with pytest.MonkeyPatch.context() as env:
        env.setenv("PYSPARK_PYTHON", sys.executable)       # executors run this interpreter
        env.setenv("SPARK_LOCAL_IP", "127.0.0.1")
        session = (SparkSession.builder.master("local[2]").appName("fhircdisc-tests")
                   .config("spark.driver.memory", "512m")
                   .config("spark.driver.host", "127.0.0.1")
                   .config("spark.driver.bindAddress", "127.0.0.1")
                   .config("spark.ui.enabled", "false")
                   .config("spark.ui.showConsoleProgress", "false")
                   .config("spark.sql.shuffle.partitions", "2")
                   .config("spark.log.level", "ERROR")
                   # quick JIT only: the JVM starts seconds sooner, and the jobs are small
                   .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1")
                   .getOrCreate())
        try:
            yield session
        finally:
            session.stop()


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_export(tmp_path_factory.mktemp("export"))


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_spark_writes_the_same_files_as_streaming(spark: Any, export: Path,
                                                  tmp_path: Path) -> None:
    expected = stream_to_sdtm([export], tmp_path / "stream", FORMATS, study_id="BENCH",
                              workers=1, creation_datetime=STAMP, chunk_lines=CHUNK_LINES,
                              bucket_rows=BUCKET_ROWS)
    result = spark_to_sdtm([export], tmp_path / "spark", FORMATS, spark=spark,
                           study_id="BENCH", creation_datetime=STAMP,
                           chunk_lines=CHUNK_LINES, bucket_rows=BUCKET_ROWS)
    streamed, sparked = _files(tmp_path / "stream"), _files(tmp_path / "spark")
    assert sorted(sparked) == sorted(streamed)
    assert {"provenance.csv", "conversion-report.json", "lb.xpt", "vs.json"} <= set(sparked)
    for name, data in streamed.items():
        assert sparked[name] == data, name
    assert result.datasets == expected.datasets
    assert [p.name for p in result.written] == [p.name for p in expected.written]
    rows = result.datasets["LB"][0] + result.datasets["VS"][0]
    assert rows > 3 * BUCKET_ROWS          # four buckets or more


def test_bundle_without_ndjson_runs_no_chunk_and_writes_the_same(spark: Any,
                                                                  demo_bundle_path: Path,
                                                                  tmp_path: Path) -> None:
    from fhircdisc.examples.demo_codes import DEMO_TERMINOLOGY

    stream_to_sdtm([demo_bundle_path], tmp_path / "stream", ("xpt",), workers=1,
                   terminology=[DEMO_TERMINOLOGY], creation_datetime=STAMP)
    spark_to_sdtm([demo_bundle_path], tmp_path / "spark", ("xpt",), spark=spark,
                  terminology=[DEMO_TERMINOLOGY], creation_datetime=STAMP)
    assert _files(tmp_path / "spark") == _files(tmp_path / "stream")


def test_malformed_line_is_an_input_error_and_writes_nothing(spark: Any, export: Path,
                                                             tmp_path: Path) -> None:
    bad = tmp_path / "in"
    bad.mkdir()
    for path in export.glob("*.ndjson"):
        (bad / path.name).write_bytes(path.read_bytes())
    target = bad / "Observation.000.ndjson"
    line = target.read_bytes().count(b"\n") + 1
    with target.open("ab") as handle:
        handle.write(b'{"resourceType": "Observation", "id": \n')
    out = tmp_path / "out"
    with pytest.raises(InputError) as caught:
        spark_to_sdtm([bad], out, spark=spark, study_id="BENCH", chunk_lines=CHUNK_LINES)
    assert "Observation.000.ndjson" in str(caught.value)
    assert f"line {line}" in str(caught.value)
    assert not out.exists()


def test_gzipped_export_runs_from_the_copies_in_the_staging_folder(spark: Any, export: Path,
                                                                   tmp_path: Path) -> None:
    """The executors read a gzipped file's chunks from the copy the driver made in the
    staging folder: the files written are the streaming engine's for the same input."""
    import gzip

    zipped = tmp_path / "in"
    zipped.mkdir()
    for path in export.glob("*.ndjson"):
        (zipped / f"{path.name}.gz").write_bytes(gzip.compress(path.read_bytes(), 1))
    stream_to_sdtm([zipped], tmp_path / "stream", ("xpt",), study_id="BENCH", workers=1,
                   creation_datetime=STAMP, chunk_lines=CHUNK_LINES, bucket_rows=BUCKET_ROWS)
    spark_to_sdtm([zipped], tmp_path / "spark", ("xpt",), spark=spark, study_id="BENCH",
                  creation_datetime=STAMP, chunk_lines=CHUNK_LINES, bucket_rows=BUCKET_ROWS)
    sparked = _files(tmp_path / "spark")
    assert sparked == _files(tmp_path / "stream")
    assert b".ndjson.gz" in sparked["provenance.csv"]
