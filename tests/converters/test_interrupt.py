"""Ctrl-C during a streamed conversion: the command stops with a short message and exit
code 130, no worker prints a traceback, no worker is left running and no output is
written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.generate import generate


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("export")
    generate(folder, 300_000, 2_000)
    return folder


# pressed as pass 2 starts (its workers being forked), and while they work
@pytest.mark.parametrize("after", [0.0, 0.4])
@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="process groups and SIGINT are POSIX; /proc lists them on Linux")
def test_ctrl_c_in_the_middle_of_a_conversion_stops_everything_cleanly(
        export: Path, tmp_path: Path, after: float) -> None:
    out = tmp_path / "out"
    command = [sys.executable, "-m", "fhircdisc.cli", "to-sdtm", str(export), "-o", str(out),
               "--study-id", "S1", "--workers", "2", "--format", "xpt", "--format", "json",
               "--format", "csv"]
    # a session of its own: the signal goes to the command's processes alone, as a
    # terminal sends it to the foreground job
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None \
            and not any(out.glob(".fhircdisc-*/.spill")):
        time.sleep(0.005)
    time.sleep(after)
    assert process.poll() is None, "the conversion ended before it could be interrupted"
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=120)
    message = err.decode()
    # as a shell reports SIGINT (else: what the command said, and how this process, whose
    # signal state the command inherits, handles and blocks SIGINT)
    assert process.returncode == 130, (process.returncode, message[-3000:],
                                       signal.getsignal(signal.SIGINT),
                                       signal.pthread_sigmask(signal.SIG_BLOCK, []))
    assert "Aborted" in message
    assert "Traceback" not in message and "ForkPoolWorker" not in message, message
    assert not out.exists()
    assert not _alive_in_group(process.pid)       # no worker outlives the command


def _alive_in_group(group: int) -> list[int]:
    """The processes of a process group still running (zombies aside)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:          # ended meanwhile
            continue
        state, process_group = fields[0], int(fields[2])
        if process_group == group and state != "Z":
            alive.append(int(stat.parent.name))
    return alive


def _nap(seconds: float) -> None:
    time.sleep(seconds)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX signals")
def test_forked_workers_leave_ctrl_c_to_their_parent() -> None:
    """The processes the converters fork (a pool's, or one of their own) outlive a
    SIGINT: the parent, which gets it too, stops them as it unwinds."""
    from fhircdisc.converters.processes import forked_pool, forked_process

    child = forked_process(_nap, 30)
    with forked_pool(1) as pool:
        pending = pool.apply_async(os.getpid)
        worker = pending.get(timeout=30)
        try:
            for pid in (child.pid, worker):
                assert pid is not None
                os.kill(pid, signal.SIGINT)
            time.sleep(0.3)
            assert child.is_alive()
            assert pool.apply_async(os.getpid).get(timeout=30) == worker
        finally:
            child.terminate()
            child.join()
