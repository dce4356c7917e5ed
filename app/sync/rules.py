"""The rules that decide what happens next in a sync, as plain functions (no I/O).

Both drivers, the in-process ``ETLWorkflow.run`` and the Celery tasks, call these. Only the
fan-in — a table is complete when every batch of its listing's last epoch is loaded — is
counted where the batches are recorded, atomically, by the barrier's Lua (``broker/barrier.py``).
"""

from __future__ import annotations

from collections.abc import Iterable

from app.sync.plan import Listing
from app.sync.states import RunState, TableState

#: Batch numbers of a listing restarted from scratch start at ``epoch * EPOCH_SIZE``.
EPOCH_SIZE = 1_000_000
#: Slices in a row in which a listing did not move before its source counts as down.
MAX_STALLS = 8


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


def last_epoch(per_batch: dict[int, int], epoch: int | None = None) -> dict[int, int]:
    """Per-batch counts of the listing's last epoch only (or of ``epoch``). Batches of an
    abandoned listing may still land after it restarted (they were queued); their records come
    again in the new epoch, so counting both would report more records than the table has."""
    if not per_batch:
        return {}
    newest = max(epoch_of(batch_no) for batch_no in per_batch) if epoch is None else epoch
    return {batch_no: n for batch_no, n in per_batch.items() if epoch_of(batch_no) == newest}


def restart(listing: Listing) -> Listing:
    """The listing started again from scratch, in a new epoch (its cursor expired)."""
    epoch = listing.epoch + 1
    return Listing(cursor=None, next_batch=epoch * EPOCH_SIZE, epoch=epoch)


def advanced(listing: Listing, batch_no: int, cursor: str | None) -> Listing:
    """The listing after batch ``batch_no`` was sent. It can resume only where a batch ended
    at a page boundary (``cursor``); otherwise the resume point stays where it was."""
    if cursor is None:
        return listing
    return Listing(cursor=cursor, next_batch=batch_no + 1, epoch=listing.epoch, stalls=0)


def stalled(listing: Listing) -> Listing:
    """The listing after a slice in which it did not move."""
    return Listing(cursor=listing.cursor, next_batch=listing.next_batch, epoch=listing.epoch,
                   stalls=listing.stalls + 1)


def gives_up(listing: Listing) -> bool:
    """True when the source made no progress for too many slices in a row."""
    return listing.stalls > MAX_STALLS

