"""Forked worker processes that leave an interrupt (Ctrl-C) to the process that started
them.

A terminal sends Ctrl-C to every process of the foreground job: each worker would stop
with its own ``KeyboardInterrupt`` traceback while the main process unwinds. Workers
made here ignore it; the main process stops them as it unwinds (``Pool.terminate``).
While it forks them, the main process holds Ctrl-C back: Python runs the handlers
registered for a fork (``os.register_at_fork``) right then, and an interrupt raised
inside one of them is printed and dropped, the conversion going on as if nothing had
been pressed.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import signal
from collections.abc import Callable
from multiprocessing.pool import Pool
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

_Started = TypeVar("_Started", Pool, BaseProcess)


def _leave_interrupts_to_the_parent() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    keep_freed_memory()


#: glibc's ``mallopt`` parameters (``malloc.h``)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def keep_freed_memory() -> None:
    """Have glibc's allocator keep the memory this process frees for its next
    allocations: no trimming of the heap, large blocks from the heap rather than
    ``mmap`` (up to 32 MB), the heap grown 256 MB at a time (address space; pages are
    only taken when touched). A worker frees and allocates the same few hundred MB over
    and over (a job's rows, a bucket's columns): given back and taken again, every page
    costs a page fault. Measured (1M Observations, 2 workers): page faults of the whole
    conversion about -20 %, wall -2.3 % (benchmarks/compare.py, 4 rounds). Only for
    processes made here, which end with their work (the process that forks them keeps
    its settings); nothing where the C library is not glibc."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):     # no such C library, or no mallopt
        return
    mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    mallopt(_M_TOP_PAD, 256 * 2**20)
    mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)


def can_fork() -> bool:
    """Whether this system starts processes by forking (the forked pools and processes
    here need it; elsewhere the work runs in the calling process)."""
    return "fork" in multiprocessing.get_all_start_methods()


def forked_pool(workers: int) -> Pool:
    """A pool of ``workers`` forked processes that ignore Ctrl-C (the caller must
    terminate it on leaving, as ``with`` does); a Ctrl-C pressed while they are forked
    is raised in the caller once they are."""
    return _forked(lambda: multiprocessing.get_context("fork").Pool(
        workers, initializer=_leave_interrupts_to_the_parent))


def forked_process(target: Callable[..., Any], *args: Any) -> BaseProcess:
    """A started forked process running ``target(*args)`` that ignores Ctrl-C (the
    caller must terminate it on an error and join it)."""
    def started() -> BaseProcess:
        process = multiprocessing.get_context("fork").Process(
            target=_without_interrupts, args=(target, args))
        process.start()
        return process
    return _forked(started)


def _without_interrupts(target: Callable[..., Any], args: tuple[Any, ...]) -> None:
    _leave_interrupts_to_the_parent()
    target(*args)


def _forked(make: Callable[[], _Started]) -> _Started:
    """``make()`` with Ctrl-C held back while it forks, raised once it has (then what it
    made is stopped)."""
    if not hasattr(signal, "pthread_sigmask"):
        return make()
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        made = make()
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
        raise
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)   # a Ctrl-C held back: raised here
    except BaseException:
        made.terminate()
        made.join()
        raise
    return made
