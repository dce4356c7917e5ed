"""One item read ahead in a thread: the next page is fetched while this batch is loaded."""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import Final, TypeVar

T = TypeVar("T")

#: How long a blocked hand-over waits before it looks whether the reader has gone away.
_POLL_SECONDS: Final = 0.1


class _End:
    """The producer's last message: the iterator ended, or raised ``error``."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def read_ahead(items: Iterator[T]) -> Generator[T, None, None]:
    """``items`` in order, the next one produced by a thread while the caller works on this one.

    Waiting for the source (a socket, the database releasing the GIL) then overlaps the
    caller's work instead of following it. At most two items exist ahead of the caller: one
    handed over and one being made. An error of ``items`` is raised where its item would
    have come; when the caller stops early, the thread stops after the item it is making and
    closes ``items``.

    Args:
        items: The iterator to read; only the thread advances it once this starts.

    Yields:
        The items of ``items``.
    """
    handed: queue.Queue[tuple[T] | _End] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def give(message: tuple[T] | _End) -> bool:
        while not stop.is_set():
            try:
                handed.put(message, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not give((item,)):
                    return
        except BaseException as exc:  # handed to the reader, which raises it
            give(_End(exc))
        else:
            give(_End())
        finally:
            close = getattr(items, "close", None)
            if stop.is_set() and close is not None:
                close()

    thread = threading.Thread(target=produce, name="read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            message = handed.get()
            if isinstance(message, _End):
                if message.error is not None:
                    raise message.error
                return
            yield message[0]
    finally:
        stop.set()
        thread.join()
