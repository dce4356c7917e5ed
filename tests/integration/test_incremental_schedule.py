"""A beat schedule with ``incremental=True`` every 3 s on real workers, against the sandbox at
Airtable's 5 requests per second with its 30-s penalty: no 429, and each tick's listing
requests follow the changes made before it (none, 5, 150, none), not the table's size.

Between ticks the test changes records in the sandbox directly (no request of its own counts
against the base) and moves the sandbox's clock past the windows' overlap before and after the
changes, so each change falls in exactly one tick's window. A tick's listing requests are
found in the sandbox's request log by the window they filter on, which the previous tick's
cursor fixes.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest

from app.contracts import TableRef
from app.sync.changes import OVERLAP_SECONDS, iso, parse_time
from app.warehouses import SQLiteWarehouse
from broker.status import TERMINAL, RunStatus, redis_client
from sandbox.clock import CLOCK
from tests.conftest import TEST_REDIS_URL
from tests.support.stack import running_stack
from tests.support.waiting import wait_for
from tests.support.workers import BeatProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIXTURES = Path(__file__).parent / "schedules_fixture"
ENTRY = "incremental-orders"
ORDERS = 600
#: Records changed before each tick after the first (full) one.
CHANGES = (0, 5, 150, 0)
PAGE = 100
_SINCE = re.compile(r"DATETIME_PARSE\('([^']+)'\)")


def runs_of_entry() -> list[dict[str, Any]]:
    runs = RunStatus(redis_client(TEST_REDIS_URL)).recent(500)
    return sorted((r for r in runs if r.get("trigger") == f"schedule:{ENTRY}"),
                  key=lambda r: datetime.fromisoformat(r["created_at"]))


def orders_of(run: dict[str, Any]) -> dict[str, Any]:
    return next(t for t in run["tables"] if t["table"]["name"] == "Orders")


def change_between_ticks(base: Any, count: int, number: int) -> list[str]:
    """Change ``count`` Orders (updates, and a few creates when many) in the sandbox itself."""
    orders = base.table("Orders")
    ids = [r["id"] for r in orders.records][number * 200:]
    creates = count // 15
    with base.transaction():
        CLOCK.advance(seconds=OVERLAP_SECONDS + 5)
        if count:
            orders.update_many([(i, {"Quantity": 7000 + number}) for i in ids[:count - creates]])
        created = orders.create_many([{"Name": f"tick {number} new {n}"} for n in range(creates)]) \
            if creates else []
        CLOCK.advance(seconds=OVERLAP_SECONDS + 5)
    return ids[:count - creates] + [r["id"] for r in created]


def unsent(run: dict[str, Any]) -> bool:
    """Stopping beat can interrupt it between recording a run and sending it."""
    return run["state"] == "queued" and not run.get("sent_at")


def listing_requests(log: list[Any], since: str) -> int:
    """The answered list requests of the window that starts at ``since``."""
    return sum(1 for entry in log if entry.kind in ("list", "list_post") and entry.status == 200
               and _SINCE.findall(unquote_plus(entry.target)) == [since])


@pytest.mark.timeout(600)
def test_frequent_incremental_ticks_at_5_per_second_cost_what_changed(tmp_path):
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    warehouse = SQLiteWarehouse(url)
    env = {"WAREHOUSE_URL": url, "AIRTABLE_REQUESTS_PER_SECOND": "5",
           "PYTHONPATH": str(FIXTURES)}
    with running_stack({"Orders": ORDERS}, warehouse, env, tmp_path, requests_per_second=5,
                       penalty_seconds=30, webhooks_allowed=False) as stack:
        stack.sandbox.stats.keep_log()
        beat = BeatProcess({**stack.env, "CONVEYOR_SCHEDULES": "conveyor_test_schedules:INCREMENTAL"},
                           stack.log_dir).start()
        changed: list[str] = []
        try:
            wait_for(lambda: any(r["state"] == "succeeded" for r in runs_of_entry()), 180,
                     "the first (full) tick")
            for number, count in enumerate(CHANGES):
                # Between ticks: the latest tick has finished and the next is not yet created.
                wait_for(lambda: runs_of_entry()[-1]["state"] in TERMINAL, 120, "a tick to end")
                ticks_before = len(runs_of_entry())
                changed += change_between_ticks(stack.base, count, number)
                wait_for(lambda n=ticks_before: [r for r in runs_of_entry()[n:]
                                                 if r["state"] == "succeeded"], 120,
                         f"a tick after {count} changes")
        finally:
            beat.stop()
        wait_for(lambda: all(r["state"] in TERMINAL or unsent(r) for r in runs_of_entry()), 120,
                 "every sent tick to end")
        runs = [r for r in runs_of_entry() if r["state"] in TERMINAL]
        log = list(stack.sandbox.stats.log or [])
        assert stack.sandbox.stats.rate_limited == 0, stack.sandbox.stats
        assert all(r["state"] in ("succeeded", "skipped") for r in runs), \
            [(r["state"], r.get("error")) for r in runs]
        done = [r for r in runs if r["state"] == "succeeded"]
        first, ticks = orders_of(done[0]), [orders_of(r) for r in done[1:]]
        assert first["change_source"] == "full" and first["loaded"] == ORDERS
        assert ticks and all(t["change_source"] == "window" for t in ticks), ticks

        seen, listings = [], []
        for before, tick in zip([first, *ticks], ticks, strict=False):
            since = iso(parse_time(before["cursor"]["until"]) - timedelta(seconds=OVERLAP_SECONDS))
            listed = listing_requests(log, since)
            # One page per 100 changed records (one when none changed): never the whole table.
            assert listed == max(1, math.ceil(tick["loaded"] / PAGE)), (tick, listed)
            assert tick["requests"] == listed  # the run's report counts what the sandbox saw
            seen.append(tick["loaded"])
            listings.append(listed)
        # Each batch of changes was read by exactly one tick; the other ticks read nothing.
        assert sorted(n for n in seen if n) == sorted(c for c in CHANGES if c), seen
        assert seen.count(0) >= CHANGES.count(0), seen
        # Every other request: the first tick's full listing, one metadata read per tick (a
        # skipped tick too: it reads the table list before it finds the run still going), and
        # per run that plans the table, the one request that finds the token may not manage
        # webhooks (so the window is the change source).
        full_listing = sum(1 for e in log if e.kind in ("list", "list_post")
                           and "LAST_MODIFIED_TIME" not in unquote_plus(e.target))
        assert full_listing == math.ceil(ORDERS / PAGE)
        assert stack.sandbox.stats.by_kind["meta_tables"] == len(runs)
        assert stack.sandbox.stats.by_kind["webhooks"] == len(done)
        assert len(log) == full_listing + sum(listings) + len(runs) + len(done), \
            stack.sandbox.stats.by_kind

        ref = TableRef("airtable", stack.base.table("Orders").id, "Orders")
        rows = {r["id"] for r in warehouse.read_records(ref)}
        assert set(changed) <= rows and len(rows) == ORDERS + sum(c // 15 for c in CHANGES)
