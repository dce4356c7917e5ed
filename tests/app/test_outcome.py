"""How a run's final state follows from its tables."""

from __future__ import annotations

import pytest

from app.sync.outcome import outcome
from app.sync.states import RunState


@pytest.mark.parametrize(("failed", "cancelled", "rejected", "expected"), [
    (False, False, 0, RunState.SUCCEEDED),
    (False, False, 1, RunState.SUCCEEDED_WITH_REJECTIONS),
    (True, False, 3, RunState.FAILED),
    (True, True, 3, RunState.CANCELLED),
    (False, True, 0, RunState.CANCELLED),
])
def test_outcome(failed, cancelled, rejected, expected):
    assert outcome(failed=failed, cancelled=cancelled, rejected=rejected) is expected


def test_a_run_with_rejections_landed_but_is_not_a_plain_success():
    state = outcome(failed=False, cancelled=False, rejected=2)
    assert state.landed and state.is_final and state != RunState.SUCCEEDED

