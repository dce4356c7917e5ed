"""One writer at a time on a DuckDB file: a cross-process file lock held while a connection is open.

DuckDB lets one process open a database file for writing and refuses every other process
("Could not set lock on file"), even readers. Conveyor's load workers are separate processes
sharing one file, so each of them opens the file only for one transaction, holding an
exclusive ``flock`` on ``<file>.lock`` from before the open until after the close. A waiting
process blocks on the lock (no polling of DuckDB itself), and the kernel drops the lock of a
process that dies, so a SIGKILLed worker never leaves the file locked.

A plain lock is not fair: a worker that commits a batch and at once opens the file for its
next one wins against a waiter polling the lock, which then starves (measured with two
loaders: one got twice the other's rate, and a slow one made the other time out). So a
process first queues on a second lock, ``<file>.lock.queue``, and holds it while it waits for
the file: the process that just released the file must queue behind it before it can
take the file again.

A program outside Conveyor (a notebook, dbt) that keeps the file open does not take this
lock; while it does, opening fails with DuckDB's lock error, which is retried for up to the
same timeout and then reported as transient (the task is retried later).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final

import duckdb
import filelock
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

from app.errors import WarehouseUnavailableError

#: How long a process waits for another one's transaction (or an outside program) by default.
LOCK_TIMEOUT_SECONDS: Final = 120.0


def lock_path(database: str) -> str:
    """The lock file beside ``database``."""
    return f"{database}.lock"


@lru_cache(maxsize=64)
def _file_lock(path: str, pid: int) -> filelock.FileLock:
    # One lock object per file and process (keyed by pid: a forked child must not inherit
    # its parent's hold). Thread-local and reentrant: a thread that already holds it (a
    # read still open while it writes) passes, another thread of the process waits.
    return filelock.FileLock(path, thread_local=True)


def _held_by_another_program(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


class LockedConnection:
    """A DBAPI connection that releases the file lock once DuckDB has closed the file."""

    def __init__(self, inner: Any, release: Callable[[], None]) -> None:
        self.inner = inner
        self._release: Callable[[], None] | None = release

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def cursor(self) -> Any:
        return self.inner.cursor()

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()


def connect_locked(
    database: str, connect: Callable[[], Any], timeout: float, display_url: str
) -> LockedConnection:
    """``connect()`` while holding ``database``'s lock, which the connection's ``close`` frees.

    Raises:
        WarehouseUnavailableError: the lock (or the file, held by another program) did not
            come free within ``timeout`` seconds: worth a retry later.
    """
    lock = _file_lock(lock_path(database), os.getpid())
    try:
        if lock.is_locked:  # this thread holds it already: reentrant, nothing to wait for
            lock.acquire()
        else:
            deadline = time.monotonic() + timeout
            with _file_lock(lock_path(database) + ".queue", os.getpid()).acquire(timeout=timeout):
                lock.acquire(timeout=max(0.0, deadline - time.monotonic()))
    except filelock.Timeout:
        raise WarehouseUnavailableError(
            f"warehouse {display_url} stayed locked by another Conveyor process for"
            f" {timeout:g} s; retry"
        ) from None
    try:
        retrying = Retrying(
            retry=retry_if_exception(_held_by_another_program),
            stop=stop_after_delay(timeout),
            wait=wait_random_exponential(multiplier=0.05, max=2.0),
            reraise=True,
        )
        inner = retrying(connect)
    except BaseException:
        lock.release()
        raise
    return LockedConnection(inner, lock.release)
