"""The rules that decide what happens next in a sync, as plain functions (no I/O).

Both drivers, the in-process ``ETLWorkflow.run`` and the Celery tasks, call these. Only the
fan-in — a table is complete when every batch of its listing's last epoch is loaded — is
counted where the batches are recorded, atomically, by the barrier's Lua (``broker/barrier.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from app.sync.plan import Listing
from app.sync.states import RunState, TableState

#: Batch numbers of a listing restarted from scratch start at ``epoch * EPOCH_SIZE``.
EPOCH_SIZE = 1_000_000
#: Slices in a row in which a listing did not move before its source counts as down.
MAX_STALLS = 8
#: Most partitions of one table; partition ``p`` of epoch ``e`` numbers its batches from
#: ``e * EPOCH_SIZE + p * PARTITION_SPAN``, so every batch number of a table stays unique.
MAX_PARTITIONS = 16
PARTITION_SPAN = EPOCH_SIZE // MAX_PARTITIONS


def outcome(table_states: Iterable[TableState | str], rejected: int, *, cancelled: bool) -> RunState:
    """A finished run's state from its tables' states and how many records were rejected."""
    states = {TableState(s) for s in table_states}
    if cancelled:
        return RunState.CANCELLED
    if states - {TableState.SUCCEEDED}:
        return RunState.FAILED
    return RunState.SUCCEEDED_WITH_REJECTIONS if rejected else RunState.SUCCEEDED


def epoch_of(batch_no: int) -> int:
    """The listing epoch a batch number belongs to."""
    return batch_no // EPOCH_SIZE


def partition_of(batch_no: int) -> int:
    """The partition a batch number belongs to (0 for a table listed whole)."""
    return (batch_no % EPOCH_SIZE) // PARTITION_SPAN


def first_batch(partition: int, epoch: int = 0) -> int:
    """The first batch number of partition ``partition``'s listing in ``epoch``."""
    return epoch * EPOCH_SIZE + partition * PARTITION_SPAN


def batch_count(last_batch_no: int) -> int:
    """How many batches a listing that ended with ``last_batch_no`` sent in its epoch."""
    return last_batch_no - first_batch(partition_of(last_batch_no), epoch_of(last_batch_no)) + 1


def newest_epochs(batch_nos: Iterable[int]) -> dict[int, int]:
    """Each partition's newest listing epoch among ``batch_nos`` (a partition restarts alone)."""
    newest: dict[int, int] = {}
    for batch_no in batch_nos:
        partition = partition_of(batch_no)
        newest[partition] = max(newest.get(partition, 0), epoch_of(batch_no))
    return newest


def last_epoch(per_batch: dict[int, int], newest: dict[int, int] | None = None) -> dict[int, int]:
    """Per-batch counts of each partition's last listing epoch only (``newest``, by default
    taken from ``per_batch``). Batches of an abandoned listing may still land after it
    restarted (they were queued); their records come again in the new epoch, so counting both
    would report more records than the table has."""
    newest = newest_epochs(per_batch) if newest is None else newest
    return {batch_no: n for batch_no, n in per_batch.items()
            if epoch_of(batch_no) == newest.get(partition_of(batch_no), 0)}


def restart(listing: Listing) -> Listing:
    """The listing started again from scratch, in a new epoch (its cursor expired); a
    partition's listing restarts alone, in its own window."""
    epoch = listing.epoch + 1
    return Listing(cursor=None, next_batch=first_batch(listing.partition_index, epoch), epoch=epoch,
                   partition=listing.partition)


def advanced(listing: Listing, batch_no: int, cursor: str | None) -> Listing:
    """The listing after batch ``batch_no`` was sent. It can resume only where a batch ended
    at a page boundary (``cursor``); otherwise the resume point stays where it was."""
    if cursor is None:
        return listing
    return replace(listing, cursor=cursor, next_batch=batch_no + 1, stalls=0, resumed=False)


def stalled(listing: Listing) -> Listing:
    """The listing after a slice in which it did not move."""
    return replace(listing, stalls=listing.stalls + 1, resumed=False)


def gives_up(listing: Listing) -> bool:
    """True when the source made no progress for too many slices in a row."""
    return listing.stalls > MAX_STALLS

