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

import multiprocessing
import signal
from multiprocessing.pool import Pool


def _leave_interrupts_to_the_parent() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def forked_pool(workers: int) -> Pool:
    """A pool of ``workers`` forked processes that ignore Ctrl-C (the caller must
    terminate it on leaving, as ``with`` does); a Ctrl-C pressed while they are forked
    is raised in the caller once they are."""
    if not hasattr(signal, "pthread_sigmask"):
        return _pool(workers)
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        pool = _pool(workers)
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
        raise
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)   # a Ctrl-C held back: raised here
    except BaseException:
        pool.terminate()
        pool.join()
        raise
    return pool


def _pool(workers: int) -> Pool:
    return multiprocessing.get_context("fork").Pool(
        workers, initializer=_leave_interrupts_to_the_parent)
