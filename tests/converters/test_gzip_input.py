"""Gzipped Bulk Data NDJSON: the streaming engine decompresses each file once into its
staging folder and its tasks read byte ranges of that copy (no Observation line is held
in memory); damaged gzip streams are input errors naming the file, in both engines."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from click.testing import CliRunner

from benchmarks.generate import generate
from fhircdisc import to_sdtm
from fhircdisc.cli import main
from fhircdisc.converters import streaming
from fhircdisc.converters.streaming import stream_to_sdtm
from fhircdisc.errors import InputError

STAMP = "2026-01-02T03:04:05"


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same generated export, plain and gzipped."""
    plain = tmp_path_factory.mktemp("plain")
    generate(plain, 2_500, 40, encounters=True, panels=0.2)
    zipped = tmp_path_factory.mktemp("zipped")
    for path in plain.iterdir():
        (zipped / f"{path.name}.gz").write_bytes(gzip.compress(path.read_bytes(), 1))
    return plain, zipped


def _files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_gzipped_export_gives_the_plain_exports_rows(exports: tuple[Path, Path],
                                                     tmp_path: Path) -> None:
    plain, zipped = exports
    stream_to_sdtm([plain], tmp_path / "plain", ("xpt", "csv"), study_id="GZ", workers=2,
                   creation_datetime=STAMP, chunk_lines=400, bucket_rows=300)
    result = stream_to_sdtm([zipped], tmp_path / "zipped", ("xpt", "csv"), study_id="GZ",
                            workers=2, creation_datetime=STAMP, chunk_lines=400,
                            bucket_rows=300)
    assert result.datasets["LB"][0] + result.datasets["VS"][0] > 2_500
    expected, found = _files(tmp_path / "plain"), _files(tmp_path / "zipped")
    assert found.keys() == expected.keys()
    for name in ("lb.xpt", "vs.xpt", "dm.xpt", "lb.csv", "vs.csv"):
        assert found[name] == expected[name], name
    # the report and provenance name the files read: the gzipped ones
    assert b".ndjson.gz" in found["provenance.csv"]
    renamed = found["provenance.csv"].replace(b".ndjson.gz", b".ndjson")
    assert renamed.replace(zipped.name.encode(), plain.name.encode()) \
        == expected["provenance.csv"]
    # the staging folder with the decompressed copies is gone
    assert not [path for path in (tmp_path / "zipped").iterdir() if path.name.startswith(".")]


def test_tasks_of_a_gzipped_file_read_its_copy(exports: tuple[Path, Path], tmp_path: Path
                                               ) -> None:
    _, zipped = exports
    files = sorted(zipped.glob("Observation.*.gz"))
    work = tmp_path / "work"
    _, _, tasks, streamed = streaming._read_context(files, 700, None, work)
    assert streamed == 2_500 and len(tasks) == 4
    for task in tasks:
        assert task.file == str(files[0]) and task.path is not None
        assert Path(task.path).parent == work
    lines = [line for task in tasks for _, line in streaming.task_lines(task)]
    with gzip.open(files[0], "rb") as handle:
        assert lines == handle.read().splitlines()


def test_gzipped_input_needs_a_work_folder(exports: tuple[Path, Path]) -> None:
    _, zipped = exports
    with pytest.raises(ValueError, match="work folder"):
        streaming._read_context(sorted(zipped.glob("*.gz")), 700, None)


def _damaged(exports: tuple[Path, Path], folder: Path, how: str) -> Path:
    """The gzipped export with its Observation file damaged ``how``: cut short, or bytes
    of its deflate stream overwritten."""
    _, zipped = exports
    folder.mkdir()
    for path in zipped.iterdir():
        data = bytearray(path.read_bytes())
        if path.name.startswith("Observation"):
            if how == "truncated":
                data = data[: len(data) // 2]
            else:
                middle = len(data) // 2
                data[middle:middle + 64] = b"\xff" * 64
        (folder / path.name).write_bytes(bytes(data))
    return folder


@pytest.mark.parametrize("how", ["truncated", "overwritten"])
def test_damaged_gzip_is_an_input_error_in_both_engines(exports: tuple[Path, Path],
                                                        tmp_path: Path, how: str) -> None:
    folder = _damaged(exports, tmp_path / "in", how)
    out = tmp_path / "out"
    with pytest.raises(InputError, match="cannot read file") as streamed:
        stream_to_sdtm([folder], out, study_id="GZ", workers=2, chunk_lines=400)
    assert streamed.value.source == str(folder / "Observation.000.ndjson.gz")
    assert streamed.value.location is not None
    assert streamed.value.location.startswith("after line ")
    assert not out.exists()
    with pytest.raises(InputError, match="cannot read file") as memory:
        to_sdtm([folder], study_id="GZ")
    assert memory.value.source == streamed.value.source


def test_damaged_gzip_exits_with_a_clean_error(exports: tuple[Path, Path], tmp_path: Path
                                               ) -> None:
    folder = _damaged(exports, tmp_path / "in", "overwritten")
    for engine in ("memory", "stream"):
        out = tmp_path / f"out-{engine}"
        result = CliRunner().invoke(main, ["to-sdtm", str(folder), "-o", str(out),
                                           "--study-id", "GZ", "--engine", engine, "-q"])
        assert result.exit_code != 0, engine
        assert "Observation.000.ndjson.gz" in result.output
        assert "cannot read file" in result.output
        assert "Traceback" not in result.output
        assert not out.exists()
