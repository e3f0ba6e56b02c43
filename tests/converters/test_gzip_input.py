"""Gzipped Bulk Data NDJSON: the streaming engine decompresses each file once into its
staging folder and its tasks read byte ranges of that copy (no Observation line is held
in memory); damaged gzip streams are input errors naming the file, in both engines."""

from __future__ import annotations

import gzip
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_a_file_that_is_not_gzip_is_refused_by_both_engines_alike(tmp_path: Path) -> None:
    """Plain text named .gz: refused before any line, naming no line."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "Observation.ndjson.gz").write_bytes(b'{"resourceType": "Patient", "id": "p"}\n')
    errors = []
    for convert in (lambda: stream_to_sdtm([folder], tmp_path / "out", study_id="GZ"),
                    lambda: to_sdtm([folder], study_id="GZ")):
        with pytest.raises(InputError, match="Not a gzipped file") as caught:
            convert()
        errors.append((caught.value.source, caught.value.location))
    assert errors == [(str(folder / "Observation.ndjson.gz"), None)] * 2


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
    # both engines name the file, and the same last line read whole before the damage
    assert (memory.value.source, memory.value.location) \
        == (streamed.value.source, streamed.value.location)
    assert int(streamed.value.location.removeprefix("after line ")) < 2_500


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


@pytest.mark.parametrize("size", [0, 17, 5_000, 300_000])
def test_text_size_of_a_gzipped_file_is_its_uncompressed_size(tmp_path: Path, size: int
                                                              ) -> None:
    from fhircdisc.converters.fhir_reader import text_size

    text = (b'{"resourceType":"Patient","id":"p"}\n' * (size // 36 + 1))[:size]
    plain, zipped = tmp_path / "x.ndjson", tmp_path / "x.ndjson.gz"
    plain.write_bytes(text)
    zipped.write_bytes(gzip.compress(text))
    assert text_size(plain) == size
    # never below the size on disk (a tiny text compresses to more bytes than it has)
    assert text_size(zipped) == max(size, zipped.stat().st_size)


@pytest.mark.parametrize("gzipped", [False, True])
def test_auto_engine_counts_a_gzipped_file_by_its_text(
        exports: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        gzipped: bool) -> None:
    """``--engine auto`` streams from a size of NDJSON text, compressed or not: a
    gzipped export ten times smaller on disk than the limit streams all the same."""
    import fhircdisc.cli as cli

    folder = exports[gzipped]
    text = sum(path.stat().st_size for path in exports[0].iterdir())
    on_disk = sum(path.stat().st_size for path in folder.iterdir())
    if gzipped:
        assert on_disk * 10 < text
    monkeypatch.setattr(cli, "STREAM_FROM_BYTES", text)
    ran: list[str] = []

    def spy(*args: object, **kwargs: object) -> object:
        ran.append("stream")
        return stream_to_sdtm(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(streaming, "stream_to_sdtm", spy)
    result = CliRunner().invoke(main, ["to-sdtm", str(folder), "-o", str(tmp_path / "out"),
                                       "--study-id", "GZ", "-q"])
    assert result.exit_code in (0, 1), result.output
    assert ran == ["stream"]
    monkeypatch.setattr(cli, "STREAM_FROM_BYTES", text + 1)
    result = CliRunner().invoke(main, ["to-sdtm", str(folder), "-o", str(tmp_path / "mem"),
                                       "--study-id", "GZ", "-q"])
    assert ran == ["stream"]                   # below the limit: held in memory
    assert (tmp_path / "mem" / "lb.xpt").exists()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([b"a", b"\n", b"\r", b"{}"]), max_size=30),
       st.integers(0, 3 * 2**20))
def test_a_damaged_files_copy_keeps_its_whole_lines(parts: list[bytes], padding: int
                                                     ) -> None:
    """The copy of a damaged gzip file is cut after its last line break (the lines before
    the damage are read; the one cut short is not), however far back that break is."""
    import tempfile

    text = b"x" * padding + b"".join(parts)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "copy.ndjson"
        path.write_bytes(text)
        streaming._cut_after_last_line(path)
        assert path.read_bytes() == text[:text.rfind(b"\n") + 1]


def test_progress_is_told_while_a_gzipped_file_is_decompressed(
        exports: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, zipped = exports
    monkeypatch.setattr(streaming, "TELL_EVERY", 2**18)
    calls: list[tuple[str, int]] = []
    stream_to_sdtm([zipped], tmp_path / "out", ("xpt",), study_id="GZ", workers=1,
                   progress=lambda label, count: calls.append((label, count)))
    told = [label for label, _ in calls if label.endswith("(decompressing)")]
    name = f"{zipped / 'Observation.000.ndjson.gz'} (decompressing)"
    text = sum(path.stat().st_size for path in exports[0].glob("Observation*"))
    assert told.count(name) == text // 2**18 > 0
    counts = [count for _, count in calls]
    assert counts == sorted(counts)



def test_a_failed_scan_gives_up_the_decompressions_still_to_come(
        exports: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gzipped files are decompressed on a thread ahead of the scan: when the scan
    stops at a damaged file, the files after it are given up, not decompressed in the
    background, and nothing is written."""
    folder = _damaged(exports, tmp_path / "in", "overwritten")
    big = gzip.compress(b"".join(path.read_bytes() for path in exports[0].iterdir()) * 40, 1)
    for number in range(1, 4):
        (folder / f"Observation.{number:03d}.x.ndjson.gz").write_bytes(big)
    finished: list[str] = []
    real = streaming._decompress

    def decompress(path: Path, *args: Any) -> Any:
        found = real(path, *args)
        finished.append(path.name)
        return found

    monkeypatch.setattr(streaming, "_decompress", decompress)
    out = tmp_path / "out"
    with pytest.raises(InputError, match="cannot read file"):
        stream_to_sdtm([folder], out, study_id="GZ", workers=2)
    assert "Observation.000.ndjson.gz" in finished
    assert "Observation.003.x.ndjson.gz" not in finished
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("gunzip")]
    assert not out.exists()


def test_a_gzipped_file_is_decompressed_while_the_one_before_is_scanned(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The next gzipped file is under way before the scan of the one before is over."""
    plain = tmp_path / "plain"
    generate(plain, 3_000, 20)
    folder = tmp_path / "in"
    folder.mkdir()
    for path in plain.iterdir():
        (folder / f"{path.name}.gz").write_bytes(gzip.compress(path.read_bytes(), 1))
    second = "Observation.001.ndjson.gz"
    (folder / second).write_bytes((folder / "Observation.000.ndjson.gz").read_bytes())
    started: list[str] = []
    seen_while_scanning: list[str] = []
    real_decompress, real_plain = streaming._decompress, streaming._ContextScan.plain

    def decompress(path: Path, *args: Any) -> Any:
        started.append(path.name)
        return real_decompress(path, *args)

    def scan(self: Any, path: Path, rank: int, name: str | None = None) -> None:
        if name is not None and name.endswith("Observation.000.ndjson.gz"):
            waited = 0.0
            while second not in started and waited < 10:
                time.sleep(0.01)
                waited += 0.01
            seen_while_scanning.extend(started)
        real_plain(self, path, rank, name)

    monkeypatch.setattr(streaming, "_decompress", decompress)
    monkeypatch.setattr(streaming._ContextScan, "plain", scan)
    result = stream_to_sdtm([folder], tmp_path / "out", ("csv",), study_id="GZ", workers=1)
    assert second in seen_while_scanning
    assert result.datasets["LB"][0] + result.datasets["VS"][0] == 6_000
