"""The watchdog: a run never hangs in "running" forever.

A lost chord callback, a finishing step that never comes back, or workers that are gone leave
a run with no sign of life; after STALLED_RUN_SECONDS the watchdog fails it with the reason and
frees its overlap guard, and ``conveyor retry RUN_ID`` re-runs the tables that did not finish.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from broker import policies
from broker.guard import OverlapGuard
from broker.status import RunStatus


def _age(stamp: str | None, now: datetime) -> float | None:
    if not stamp:
        return None
    return (now - datetime.fromisoformat(stamp)).total_seconds()


def verdict(run: dict[str, Any], now: datetime, stalled_after: float) -> str | None:
    """Why ``run`` should be failed now, or None if it is fine."""
    state = run.get("state")
    if state == "queued" and not run.get("sent_at"):
        age = _age(run.get("created_at"), now)
        if age is not None and age > policies.UNSENT_RUN_SECONDS:
            return "never sent: the process enqueueing it stopped first; retry it"
    if state == "running":
        quiet = _age(run.get("last_seen_at") or run.get("started_at"), now)
        if quiet is not None and quiet > stalled_after:
            return (f"no progress for {quiet:.0f} s (a lost finishing step or no live workers); "
                    f"`conveyor retry {run['run_id']}` re-runs the tables that did not finish")
    return None


def sweep(store: RunStatus, guard: OverlapGuard, *, stalled_after: float | None = None,
          limit: int = 500) -> list[str]:
    """Fail every stalled run among the newest ``limit``; return their ids."""
    stalled_after = policies.STALLED_RUN_SECONDS if stalled_after is None else stalled_after
    now = datetime.now(UTC)
    failed = []
    for run in store.recent(limit):
        reason = verdict(run, now, stalled_after)
        if reason and store.set_state(run["run_id"], "failed", error=reason):
            guard_key = run.get("spec", {}).get("guard")
            if guard_key:
                guard.release(guard_key, run["run_id"])
            failed.append(run["run_id"])
    return failed
