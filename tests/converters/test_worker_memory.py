"""Forked workers keep the memory they free for their next allocations (glibc)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# run in a fresh interpreter, whose heap holds no free block that large already: the
# share of a 16 MB block, written and freed, still resident once freed, in a forked
# worker and in the process that forked it
_PROBE = """
import os, sys
from fhircdisc.converters.processes import forked_pool

def resident():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

def kept(_=None):
    size = 16 * 2**20
    before = resident()
    block = bytearray(size)
    block[::4096] = b"x" * len(range(0, size, 4096))
    grown = resident() - before
    del block
    return round((resident() - before) / grown, 2) if grown > size // 2 else None

pool = forked_pool(1)
try:
    print(pool.apply(kept), kept())
finally:
    pool.terminate()
    pool.join()
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="the allocator settings are glibc's")
def test_a_worker_keeps_a_freed_block_for_its_next_allocations() -> None:
    """In a worker the block stays in the heap once freed (taken again without page
    faults); the process that forked it keeps glibc's own settings, which give a block
    that large back."""
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                          timeout=60, check=True)
    in_worker, in_parent = done.stdout.split()
    assert float(in_worker) > 0.9
    assert float(in_parent) < 0.1
