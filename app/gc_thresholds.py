"""The cyclic garbage collector set for syncing: far fewer collections of young objects.

A sync allocates hundreds of thousands of short-lived containers per table (each record's
dicts and lists, parsed from a page, made into a row, written) and keeps a few batches of
them alive at a time. At CPython's default (a collection every 700 new containers) the
collector ran about 800 times in a 21,000-record in-process sync, each time traversing the
batches in flight again, every tenth time with the older generation and about every hundredth
with the whole heap: a fifth of the sync's CPU, against under 1 % at the threshold below
(``docs/performance.md``). Reference counting still frees every record as soon as it is
written; only cyclic garbage, which records never form, waits longer for the collector.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

#: New containers between two collections of the youngest generation while syncing.
SYNC_THRESHOLD: Final = 50_000

_lock = threading.Lock()
_active = 0
_saved: tuple[int, int, int] | None = None


def raise_for_process() -> None:
    """Set the threshold for the rest of this process (a worker that only syncs); a higher
    threshold already set is left as it is."""
    first, *older = gc.get_threshold()
    if first < SYNC_THRESHOLD:
        gc.set_threshold(SYNC_THRESHOLD, *older)


@contextmanager
def raised() -> Iterator[None]:
    """The threshold raised while the block runs (a sync inside someone else's program), and
    restored when the last of the blocks running at once ends, unless something else set
    another threshold meanwhile."""
    global _active, _saved
    with _lock:
        if _active == 0:
            _saved = gc.get_threshold()
            raise_for_process()
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0 and _saved is not None:
                if gc.get_threshold()[0] == max(_saved[0], SYNC_THRESHOLD):
                    gc.set_threshold(*_saved)
                _saved = None
