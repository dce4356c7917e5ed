"""Exit codes of ``conveyor run`` and ``conveyor enqueue --wait``: one per final run state.

| code | run state |
|---|---|
| 0 | succeeded |
| 1 | failed (and any error before the run: bad settings, broker or warehouse down) |
| 2 | succeeded_with_rejections: every table landed, some records were rejected by id |
| 3 | cancelled |
| 4 | skipped (another run of the same workflow was still going) |
| 5 | still running when ``--timeout`` ran out |
"""

from __future__ import annotations

from app.sync.states import RunState

EXIT_CODES: dict[RunState, int] = {
    RunState.SUCCEEDED: 0,
    RunState.FAILED: 1,
    RunState.SUCCEEDED_WITH_REJECTIONS: 2,
    RunState.CANCELLED: 3,
    RunState.SKIPPED: 4,
}
TIMED_OUT = 5


def exit_code(state: str) -> int:
    """The exit code for a run that ended in ``state`` (1 for anything unexpected)."""
    try:
        return EXIT_CODES.get(RunState(state), 1)
    except ValueError:
        return 1
