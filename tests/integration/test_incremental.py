"""Incremental sync against the sandbox, in-process and on real workers, SQLite and PostgreSQL.

After a full sync: records updated, created and deleted, a field renamed and one added, and a
linked record changed so a rollup changes. One incremental run (the modified-time window)
then lands every change but the rollup, which the computed-field refresh brings on its due
run; deleted records have ``__deleted_at`` and nothing else does. A failed run leaves the
cursor where it was, and the next run lands everything. The incremental run costs at most
5 % of the full sync's requests when the delete listing is not due.

The sandbox here refuses webhooks (a token without ``webhook:manage``), so the window is the
change source chosen; ``test_incremental_webhook.py`` covers the change feed.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from app.contracts import TableRef
from app.errors import WarehouseError
from app.warehouses import Warehouse
from sandbox import build_base
from tests.support.incremental import (
    BASE,
    CLIENT_COMPUTED,
    ROLLUP,
    SOURCE,
    cancel_a_run_no_load_worker_sees,
    change_the_base,
    differences,
    orders_ref,
    sandbox_and_driver,
    table_report,
    window_only,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: The issue's acceptance size is 20,000 Orders: CONVEYOR_TEST_INCREMENTAL_ORDERS=20000 runs these
#: tests (and test_incremental_webhook.py's) at that size; the suite keeps them small.
ORDERS = int(os.environ.get("CONVEYOR_TEST_INCREMENTAL_ORDERS", "2000"))
TABLES = {"Clients": 40, "Orders": ORDERS}


@pytest.mark.timeout(900)  # a shared 2-core machine; each case runs three syncs
@pytest.mark.parametrize("driver", ["in-process", "workers"])
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_one_incremental_run_lands_updates_creates_deletes_and_schema_changes(
        backend, driver, tmp_path, pg_schema):
    base = build_base(BASE, TABLES, seed=21)
    with sandbox_and_driver(base, window_only(), driver, tmp_path, backend, pg_schema) as (
            sandbox, api, warehouse, runner):
        full = runner.run()
        assert table_report(full, "Orders")["created"] == TABLES["Orders"]
        time.sleep(1.1)  # the Date header counts whole seconds
        changed = change_the_base(api)
        first = runner.run(incremental=True, computed_every=2)
        orders = table_report(first, "Orders")
        assert (orders["mode"], orders["change_source"]) == ("incremental", "window")
        assert orders["created"] == 20 and orders["deleted"] == 10
        assert orders["cursor"]["source"] == "window" and orders["cursor"]["until"]
        ref = orders_ref(api)
        assert warehouse.deleted_ids(ref) == set(changed["deleted"])
        # Everything but the computed fields is there after one run; the rollup that
        # followed the linked client waits for its refresh (computed_every=2).
        assert differences(warehouse, api, "Orders", skip=(ROLLUP,)) == []
        stale = differences(warehouse, api, "Orders")
        assert stale and all(f".{ROLLUP}:" in d for d in stale)
        # Clients' links to deleted orders went without their modified time moving.
        assert differences(warehouse, api, "Clients", skip=CLIENT_COMPUTED) == []
        second = runner.run(incremental=True, computed_every=2)
        assert "computed" not in str(table_report(second, "Orders").get("error"))
        assert differences(warehouse, api, "Orders") == []
        assert differences(warehouse, api, "Clients") == []
        assert warehouse.deleted_ids(ref) == set(changed["deleted"])
        # The renamed field kept its column (and its earlier values); the new one has its own.
        sql_table = warehouse.table_name_for(ref)
        columns = {c.field_name: c.column for c in warehouse.columns_for(sql_table)}
        assert columns["Remarks"] == "notes" and columns["Priority"] == "priority"
        assert "Notes" not in columns


@pytest.mark.timeout(900)
def test_a_failed_run_does_not_move_the_cursor_and_the_next_run_lands_everything(
        tmp_path, monkeypatch):
    base = build_base(BASE, TABLES, seed=22)
    with sandbox_and_driver(base, window_only(), "in-process", tmp_path) as (sandbox, api, warehouse, runner):
        runner.run()
        ref = orders_ref(api)
        before = warehouse.sync_state(SOURCE, ref, "window")
        assert before is not None and before["until"]
        time.sleep(1.1)
        changed = change_the_base(api)

        # Fails in the finish step's transaction, after the deletes and the cursor were written.
        from app.warehouses import tables

        def broken_swap(*args: Any, **kwargs: Any) -> None:
            raise WarehouseError("the swap failed")

        with monkeypatch.context() as patch:
            patch.setattr(tables, "_swap", broken_swap)
            failed = runner.run(incremental=True, computed_every=1)
        assert table_report(failed, "Orders")["state"] == "failed"
        assert warehouse.sync_state(SOURCE, ref, "window") == before
        assert warehouse.deleted_ids(ref) == set()

        # Fails in the middle of the listing.
        from app.sync import steps

        real_load, calls = steps.load, []

        def failing_load(warehouse: Warehouse, sync: Any, batch: Any) -> Any:
            if sync.table.name == "Orders":
                calls.append(batch.batch_no)
                if len(calls) == 2:
                    raise WarehouseError("the warehouse went away")
            return real_load(warehouse, sync, batch)

        with monkeypatch.context() as patch:
            patch.setattr(steps, "load", failing_load)
            failed = runner.run(incremental=True, computed_every=1)
        assert table_report(failed, "Orders")["state"] == "failed"
        assert warehouse.sync_state(SOURCE, ref, "window") == before

        landed = runner.run(incremental=True, computed_every=1)
        assert table_report(landed, "Orders")["deleted"] == 10
        assert differences(warehouse, api, "Orders") == []
        assert warehouse.deleted_ids(ref) == set(changed["deleted"])
        after = warehouse.sync_state(SOURCE, ref, "window")
        assert after is not None and after["until"] > before["until"]


def test_merge_and_hard_deletes_fill_deleted_rows(tmp_path):
    base = build_base(BASE, {"Clients": 10, "Orders": 300}, seed=23)
    with sandbox_and_driver(base, window_only(), "in-process", tmp_path) as (sandbox, api, warehouse, runner):
        runner.run()
        orders = api.table(BASE, "Orders")
        ref = TableRef("airtable", orders.schema().id, "Orders")
        gone = [r["id"] for r in orders.all(max_records=4)]
        orders.batch_delete(gone[:2])
        merged = runner.run()  # a merge's full listing knows every live id
        assert table_report(merged, "Orders")["deleted"] == 2
        assert warehouse.deleted_ids(ref) == set(gone[:2])
        orders.batch_delete(gone[2:])
        runner.run(incremental=True, hard_deletes=True)
        # Hard deletes remove every row of a deleted record, soft-deleted earlier ones too.
        ids = {r["id"] for r in warehouse.read_records(ref)}
        assert not ids & set(gone) and len(ids) == 296
        assert differences(warehouse, api, "Orders") == []


@pytest.mark.timeout(900)  # 20,000 records generated and synced
def test_an_incremental_run_costs_at_most_5_percent_of_the_full_syncs_requests(tmp_path):
    """20,000 records (the issue's size): 1 % of them changed, the delete listing not due."""
    base = build_base(BASE, {"Orders": 20_000}, seed=24)
    with sandbox_and_driver(base, window_only(), "in-process", tmp_path) as (sandbox, api, warehouse, runner):
        sandbox.stats.reset()
        runner.run()
        full = sandbox.stats.requests
        orders = api.table(BASE, "Orders")
        some = [r["id"] for r in orders.all(fields=["Name"], max_records=200)]
        time.sleep(1.1)
        orders.batch_update([{"id": i, "fields": {"Quantity": 7}} for i in some[:150]])
        orders.batch_create([{"Name": f"new {n}"} for n in range(50)])
        sandbox.stats.reset()
        run = runner.run(incremental=True, deletes_every=10, computed_every=10)
        incremental = sandbox.stats.requests
        assert table_report(run, "Orders")["loaded"] == 200
        assert incremental <= 0.05 * full, (incremental, full)
        assert differences(warehouse, api, "Orders", skip=(ROLLUP,)) == []


@pytest.mark.timeout(900)
def test_on_workers_a_run_whose_load_worker_died_never_moves_the_cursor(tmp_path):
    """The load worker is SIGKILLed; the incremental run extracts but cannot load, and is
    cancelled: the cursor has not moved. With a new load worker the next run lands everything."""
    base = build_base(BASE, TABLES, seed=25)
    with sandbox_and_driver(base, window_only(), "workers", tmp_path) as (sandbox, api, warehouse, runner):
        runner.run()
        ref = orders_ref(api)
        before = warehouse.sync_state(SOURCE, ref, "window")
        assert before is not None
        time.sleep(1.1)
        changed = change_the_base(api)
        cancel_a_run_no_load_worker_sees(
            runner, cursor=lambda: warehouse.sync_state(SOURCE, ref, "window"),
            started=lambda table: table["table"]["name"] == "Orders" and table["requests"],
            what="the incremental run listing Orders", incremental=True, computed_every=1)
        assert warehouse.deleted_ids(ref) == set()
        landed = runner.run(incremental=True, computed_every=1)
        assert table_report(landed, "Orders")["deleted"] == 10
        assert differences(warehouse, api, "Orders") == []
        assert differences(warehouse, api, "Clients") == []
        assert warehouse.deleted_ids(ref) == set(changed["deleted"])
        after = warehouse.sync_state(SOURCE, ref, "window")
        assert after is not None and after["until"] > before["until"]
