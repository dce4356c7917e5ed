"""Read-only views of runs for the CLI and metrics: rejected records, previous totals, lookups.

Reads go through ``RunStatus.get``/``recent`` (distributed runs) and the warehouse's run history
(in-process runs); nothing here writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from app.sync.states import RunState


@dataclass(frozen=True)
class Rejection:
    """One record a run could not store, and why."""

    table: str
    record_id: str
    reason: str


def rejections(run: dict[str, Any]) -> Iterator[Rejection]:
    """Every rejected record of a run (a status or history dict), table by table."""
    for table in run.get("tables") or []:
        name = table["table"]["name"]
        for item in table.get("rejected") or []:
            yield Rejection(name, str(item["record_id"]), str(item["reason"]))


def rejected_count(run: dict[str, Any] | None) -> int:
    """How many records a run rejected (0 for an unknown run)."""
    return sum(len(t.get("rejected") or []) for t in (run or {}).get("tables") or [])


def find_run(run_id: str, warehouse_runs: Iterable[dict[str, Any]] = ()) -> dict[str, Any] | None:
    """A run from the broker's run status, else from ``warehouse_runs`` (in-process history)."""
    from broker.status import RunStatus

    found = RunStatus().get(run_id, steps=False)
    if found is not None:
        return found
    return next((run for run in warehouse_runs if run.get("run_id") == run_id), None)


def previous_totals(runs: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Records loaded per table id by the newest landed run that synced the table.

    ``runs`` come newest first. These are estimates for the next sync's totals: the source may
    have grown or shrunk since.
    """
    totals: dict[str, int] = {}
    for run in runs:
        state = run.get("state")
        if state not in (RunState.SUCCEEDED, RunState.SUCCEEDED_WITH_REJECTIONS):
            continue
        for table in run.get("tables") or []:
            table_id = table["table"]["table_id"]
            if table_id not in totals and table.get("state") == "succeeded":
                totals[table_id] = int(table.get("loaded") or 0) + len(table.get("rejected") or [])
    return totals
