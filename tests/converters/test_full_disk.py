"""A full disk (or any system error while the output is written) ends a conversion with an
output error naming the output folder, and leaves nothing behind, in every engine."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from benchmarks.generate import generate
from fhircdisc.cli import main
from fhircdisc.converters import datasets, streaming
from fhircdisc.errors import OutputError


def _full(*args: Any, **kwargs: Any) -> Any:
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("export")
    generate(folder, 1_500, 20)
    return folder


@pytest.mark.parametrize("step", ["_spill", "_finish_bucket", "write_dataset", "rename"])
def test_streaming_on_a_full_disk_is_an_output_error(export: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     step: str) -> None:
    """Spilling rows (pass 2), parking finished buckets (pass 3), writing the datasets,
    renaming a dataset written beside its place: the message names the output folder."""
    if step == "rename":
        from fhircdisc.converters import atomic

        monkeypatch.setattr(atomic.os, "replace", _full)
    else:
        monkeypatch.setattr(streaming, step, _full)
    out = tmp_path / "out"
    with pytest.raises(OutputError) as caught:
        streaming.stream_to_sdtm([export], out, study_id="S", workers=1, chunk_lines=500)
    assert str(caught.value) == f"cannot write in {out}: No space left on device"
    assert not out.exists()


def test_a_full_disk_while_datasets_are_written_beside_the_workers(
        export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With two workers LB is written on a thread while VS is finished: a full disk
    there is the same output error."""
    monkeypatch.setattr(streaming, "_write_streamed", _full)
    out = tmp_path / "out"
    with pytest.raises(OutputError) as caught:
        streaming.stream_to_sdtm([export], out, study_id="S", workers=2, chunk_lines=500)
    assert str(caught.value) == f"cannot write in {out}: No space left on device"
    assert not out.exists()


def test_the_command_line_says_so_without_a_traceback(export: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch
                                                      ) -> None:
    monkeypatch.setattr(datasets, "write_dataset", _full)    # the in-memory engine's writer
    monkeypatch.setattr(streaming, "_spill", _full)
    for engine in ("memory", "stream"):
        out = tmp_path / engine
        result = CliRunner().invoke(main, ["to-sdtm", str(export), "-o", str(out),
                                           "--study-id", "S", "--engine", engine,
                                           "--workers", "1"])
        assert result.exit_code == 2, (engine, result.output)
        assert f"error: cannot write in {out}: No space left on device" in result.output
        assert "Traceback" not in result.output
        assert not out.exists()


def test_a_file_written_atomically_names_itself_and_leaves_no_part(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch
                                                                   ) -> None:
    """Reports, Bundles and define.xml are written beside their place, then renamed: a
    full disk there is an output error naming the file, and no part file stays."""
    from fhircdisc.converters import atomic

    target = tmp_path / "bundle.json"
    target.write_bytes(b"before")
    monkeypatch.setattr(atomic.Path, "write_bytes", _full)
    with pytest.raises(OutputError, match=f"cannot write {target}: No space left"):
        atomic.write_bytes_atomic(target, b"after")
    assert [path.name for path in tmp_path.iterdir()] == ["bundle.json"]
    assert target.read_bytes() == b"before"
