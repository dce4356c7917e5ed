"""A load worker SIGKILLed while it loads a batch of an incremental run (the modified-time
window), on SQLite and PostgreSQL: while the run is unfinished the cursor has not moved; a new
load worker gets the batch back and finishes the run, and then the next run lands everything,
with no row twice and none missing.

(test_incremental.py kills the load worker before the run reaches it and cancels the run.)
"""

from __future__ import annotations

import re
import time

import pytest

from sandbox import build_base
from tests.support.incremental import (
    BASE,
    SOURCE,
    change_the_base,
    differences,
    every_row_once,
    orders_ref,
    sandbox_and_driver,
    table_report,
    window_only,
)
from tests.support.waiting import wait_for
from tests.support.workers import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TABLES = {"Clients": 40, "Orders": 1500}
#: Short visibility, so the message the killed worker held comes back within the test's patience.
FAULT_ENV = {"CONVEYOR_VISIBILITY_TIMEOUT_SECONDS": "20"}


def loading_a_batch(worker: WorkerProcess) -> bool:
    """Whether ``worker`` has received a ``load_batch`` it has not finished (its log says)."""
    log = worker.log()
    received = set(re.findall(r"conveyor\.load_batch\[([^\]]+)\] received", log))
    ended = set(re.findall(r"conveyor\.load_batch\[([^\]]+)\] (?:succeeded|failed|retry)", log))
    return bool(received - ended)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_load_worker_killed_mid_incremental_run_moves_no_cursor_early_and_loses_nothing(
        backend, tmp_path, pg_schema):
    base = build_base(BASE, TABLES, seed=26)
    with sandbox_and_driver(base, window_only(), "workers", tmp_path, backend, pg_schema,
                            worker_env=FAULT_ENV) as (sandbox, api, warehouse, runner):
        runner.run()
        ref = orders_ref(api)
        before = warehouse.sync_state(SOURCE, ref, "window")
        assert before is not None
        time.sleep(1.1)  # the Date header counts whole seconds
        changed = change_the_base(api)
        # Slow pages: the window's listing and the computed refresh of every record take
        # a few seconds, so the kill lands while the run still has batches to load.
        sandbox.config.latency_seconds = 0.1
        # Batches of 100 records: many load tasks to kill one of.
        handle = runner.enqueue({"BATCH_MAX_RECORDS": "100"}, incremental=True,
                                computed_every=1)

        def loading_orders() -> bool:
            tables = {t["table"]["name"]: t for t in handle.status().get("tables", [])}
            orders = tables.get("Orders")
            return bool(orders) and orders["loaded"] > 0 and orders["state"] == "running"

        wait_for(loading_orders, 120, "the incremental run loading Orders")
        deadline = time.monotonic() + 120
        while not loading_a_batch(runner.workers[1]) and time.monotonic() < deadline:
            time.sleep(0.005)
        runner.workers[1].kill()
        assert loading_a_batch(runner.workers[1]), "no batch was loading when the worker died"
        killed = handle.status()
        assert killed["state"] == "running", killed
        assert warehouse.sync_state(SOURCE, ref, "window") == before
        sandbox.config.latency_seconds = 0.0
        runner.restart_load_worker()
        final = handle.wait(timeout=240, raise_on_failure=False)
        after_kill = warehouse.sync_state(SOURCE, ref, "window")
        if final["state"] == "succeeded":
            assert differences(warehouse, api, "Orders") == []
            assert after_kill is not None and after_kill["until"] > before["until"]
        else:  # a run that could not finish leaves the cursor where it was
            assert after_kill == before, final
        assert every_row_once(warehouse, ref) == []

        landed = runner.run(incremental=True, computed_every=1)
        assert table_report(landed, "Orders")["state"] == "succeeded"
        assert differences(warehouse, api, "Orders") == []
        assert differences(warehouse, api, "Clients") == []
        assert warehouse.deleted_ids(ref) == set(changed["deleted"])
        assert every_row_once(warehouse, ref) == []
        assert warehouse.row_count(ref) == TABLES["Orders"] + len(changed["created"])
