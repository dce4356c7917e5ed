"""How a finished run's state follows from its tables: one rule, used in-process and by the workers."""

from __future__ import annotations

from app.sync.states import RunState


def outcome(*, failed: bool, cancelled: bool, rejected: int) -> RunState:
    """The final state of a run.

    Args:
        failed: at least one table failed (or the run could not finish).
        cancelled: someone asked the run to stop.
        rejected: how many records the warehouse could not store (reported by id).

    Returns:
        ``cancelled`` over ``failed`` over ``succeeded_with_rejections`` over ``succeeded``:
        a rejected record is not a failure, but it must never look like a clean success.
    """
    if cancelled:
        return RunState.CANCELLED
    if failed:
        return RunState.FAILED
    if rejected:
        return RunState.SUCCEEDED_WITH_REJECTIONS
    return RunState.SUCCEEDED
