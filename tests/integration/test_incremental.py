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
import redis
from pyairtable import Api

from app.contracts import TableRef
from app.errors import WarehouseError
from app.extractors import AirtableExtractor
from app.warehouses import PostgresWarehouse, SQLiteWarehouse, Warehouse
from app.workflows import ETLWorkflow
from app.workflows.etl import RunFailedError
from broker.producer import enqueue
from sandbox import SandboxConfig, build_base, run_sandbox
from tests.conftest import TEST_PG_URL, TEST_REDIS_URL
from tests.support.compare import same_value
from tests.support.fixtures import TOKEN
from tests.support.workers import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BASE = "appINCREMENTAL0001"
#: The issue's acceptance size is 20,000 Orders: CONVEYOR_TEST_INCREMENTAL_ORDERS=20000 runs these
#: tests (and test_incremental_webhook.py's) at that size; the suite keeps them small.
ORDERS = int(os.environ.get("CONVEYOR_TEST_INCREMENTAL_ORDERS", "2000"))
TABLES = {"Clients": 40, "Orders": ORDERS}
ROLLUP = "Related total"
#: What changes in Clients, without their modified time, when linked orders change or go.
CLIENT_COMPUTED = ("Related", ROLLUP, "Related count", "Related names")


def window_only() -> SandboxConfig:
    """A sandbox whose token may not manage webhooks: incremental runs use the window."""
    return SandboxConfig(token=TOKEN, requests_per_second=0, webhooks_allowed=False)


def make_warehouse(backend: str, tmp_path: Any, schema: str) -> Warehouse:
    if backend == "sqlite":
        return SQLiteWarehouse(f"sqlite:///{tmp_path / 'incremental.db'}")
    return PostgresWarehouse(TEST_PG_URL, schema=schema)


class Driver:
    """Runs the workflow in-process or on one extract and one load worker."""

    def __init__(self, kind: str, sandbox: Any, warehouse: Warehouse, tmp_path: Any) -> None:
        self.kind, self.sandbox, self.warehouse = kind, sandbox, warehouse
        self.workers: list[WorkerProcess] = []
        if kind == "workers":
            env = {"CELERY_BROKER_URL": TEST_REDIS_URL, "AIRTABLE_API_KEY": TOKEN,
                   "AIRTABLE_REQUESTS_PER_SECOND": "1000", "AIRTABLE_API_URL": sandbox.url,
                   "WAREHOUSE_URL": f"sqlite:///{tmp_path / 'workers_default.db'}"}
            self.workers = [WorkerProcess(q, env, tmp_path).start() for q in ("extract", "load")]

    def run(self, **options: Any) -> dict[str, Any]:
        if self.kind == "in-process":
            extractor = AirtableExtractor(api_key=TOKEN, base_id=BASE, api_url=self.sandbox.url,
                                          requests_per_second=1000)
            try:
                report = ETLWorkflow(extractor, self.warehouse).run(**options)
            except RunFailedError as exc:
                return exc.report.to_json()
            return report.to_json()
        with pytest.MonkeyPatch.context() as env:
            env.setenv("AIRTABLE_API_KEY", TOKEN)  # the producer's own; never sent
            extractor = AirtableExtractor(base_id=BASE, api_url=self.sandbox.url,
                                          requests_per_second=1000)
            handle = enqueue(ETLWorkflow(extractor, self.warehouse), **options)
        final = handle.wait(timeout=240, raise_on_failure=False)
        assert final["state"] == "succeeded", (final.get("error"), self.workers[1].log()[-3000:])
        return final

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


def table_report(run: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in run["tables"] if t["table"]["name"] == name)


def change_the_base(api: Api) -> dict[str, Any]:
    """Update 50 Orders, create 20, delete 10; rename a field and add one (filled in some
    records); change a client's Quantity so the rollups of the Orders linking it change."""
    orders, clients = api.table(BASE, "Orders"), api.table(BASE, "Clients")
    every = orders.all(fields=["Name", "Related"])
    updated = [r["id"] for r in every[100:150]]
    deleted = [r["id"] for r in every[300:310]]
    orders.batch_update([{"id": i, "fields": {"Quantity": 4242}} for i in updated])
    created = [r["id"] for r in orders.batch_create([{"Name": f"new {n}"} for n in range(20)])]
    orders.batch_delete(deleted)
    notes = orders.schema().field("Notes")
    notes.name = "Remarks"
    notes.save()
    orders.create_field("Priority", "number", options={"precision": 0})
    orders.batch_update([{"id": i, "fields": {"Priority": 3}} for i in updated[:5]])
    # A client that some order still links to, outside the records changed above.
    skipped = set(updated) | set(deleted)
    linking = next(r for r in every if r["fields"].get("Related") and r["id"] not in skipped)
    client_id = linking["fields"]["Related"][0]
    quantity = clients.get(client_id)["fields"].get("Quantity") or 0
    clients.update(client_id, {"Quantity": quantity + 1000})
    return {"updated": updated, "deleted": deleted, "created": created, "linking": linking["id"]}


def differences(warehouse: Warehouse, api: Api, name: str, skip: tuple[str, ...] = ()) -> list[str]:
    """Every way the live rows of table ``name`` differ from the source's records."""
    table = api.table(BASE, name)
    ref = TableRef("airtable", table.schema().id, name)
    source = {r["id"]: r for r in table.all()}
    deleted = warehouse.deleted_ids(ref)
    landed = {r["id"]: r for r in warehouse.read_records(ref) if r["id"] not in deleted}
    found = []
    if set(source) != set(landed):
        found.append(f"ids: missing {sorted(set(source) - set(landed))[:5]}, "
                     f"extra {sorted(set(landed) - set(source))[:5]}")
    for record_id in set(source) & set(landed):
        want, got = source[record_id]["fields"], landed[record_id]["fields"]
        for field in set(want) | set(got):
            if field in skip:
                continue
            if not same_value(want.get(field), got.get(field)):
                found.append(f"{record_id}.{field}: {want.get(field)!r} != {got.get(field)!r}")
    return found


@pytest.fixture
def backend_schema(pg_schema):
    return pg_schema


@pytest.mark.timeout(900)  # a shared 2-core machine; each case runs three syncs
@pytest.mark.parametrize("driver", ["in-process", "workers"])
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_one_incremental_run_lands_updates_creates_deletes_and_schema_changes(
        backend, driver, tmp_path, pg_schema):
    if driver == "workers":
        redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    base = build_base(BASE, TABLES, seed=21)
    warehouse = make_warehouse(backend, tmp_path, pg_schema)
    with run_sandbox([base], window_only()) as sandbox:
        api = Api(TOKEN, endpoint_url=sandbox.url)
        runner = Driver(driver, sandbox, warehouse, tmp_path)
        try:
            full = runner.run()
            assert table_report(full, "Orders")["created"] == TABLES["Orders"]
            time.sleep(1.1)  # the Date header counts whole seconds
            changed = change_the_base(api)
            first = runner.run(incremental=True, computed_every=2)
            orders = table_report(first, "Orders")
            assert (orders["mode"], orders["change_source"]) == ("incremental", "window")
            assert orders["created"] == 20 and orders["deleted"] == 10
            assert orders["cursor"]["source"] == "window" and orders["cursor"]["until"]
            ref = TableRef("airtable", api.table(BASE, "Orders").schema().id, "Orders")
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
        finally:
            runner.stop()
    warehouse.dispose()


@pytest.mark.timeout(900)
def test_a_failed_run_does_not_move_the_cursor_and_the_next_run_lands_everything(
        tmp_path, monkeypatch):
    base = build_base(BASE, TABLES, seed=22)
    warehouse = make_warehouse("sqlite", tmp_path, "")
    with run_sandbox([base], window_only()) as sandbox:
        api = Api(TOKEN, endpoint_url=sandbox.url)
        runner = Driver("in-process", sandbox, warehouse, tmp_path)
        runner.run()
        ref = TableRef("airtable", api.table(BASE, "Orders").schema().id, "Orders")
        before = warehouse.sync_state(f"airtable:{BASE}", ref, "window")
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
        assert warehouse.sync_state(f"airtable:{BASE}", ref, "window") == before
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
        assert warehouse.sync_state(f"airtable:{BASE}", ref, "window") == before

        landed = runner.run(incremental=True, computed_every=1)
        assert table_report(landed, "Orders")["deleted"] == 10
        assert differences(warehouse, api, "Orders") == []
        assert warehouse.deleted_ids(ref) == set(changed["deleted"])
        after = warehouse.sync_state(f"airtable:{BASE}", ref, "window")
        assert after is not None and after["until"] > before["until"]
    warehouse.dispose()


def test_merge_and_hard_deletes_fill_deleted_rows(tmp_path):
    base = build_base(BASE, {"Clients": 10, "Orders": 300}, seed=23)
    warehouse = make_warehouse("sqlite", tmp_path, "")
    with run_sandbox([base], window_only()) as sandbox:
        api = Api(TOKEN, endpoint_url=sandbox.url)
        runner = Driver("in-process", sandbox, warehouse, tmp_path)
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
    warehouse.dispose()


@pytest.mark.timeout(900)  # 20,000 records generated and synced
def test_an_incremental_run_costs_at_most_5_percent_of_the_full_syncs_requests(tmp_path):
    """20,000 records (the issue's size): 1 % of them changed, the delete listing not due."""
    base = build_base(BASE, {"Orders": 20_000}, seed=24)
    warehouse = make_warehouse("sqlite", tmp_path, "")
    with run_sandbox([base], window_only()) as sandbox:
        api = Api(TOKEN, endpoint_url=sandbox.url)
        runner = Driver("in-process", sandbox, warehouse, tmp_path)
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
    warehouse.dispose()


@pytest.mark.timeout(900)
def test_on_workers_a_run_whose_load_worker_died_never_moves_the_cursor(tmp_path):
    """The load worker is SIGKILLed; the incremental run extracts but cannot load, and is
    cancelled: the cursor has not moved. With a new load worker the next run lands everything."""
    redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    base = build_base(BASE, TABLES, seed=25)
    warehouse = make_warehouse("sqlite", tmp_path, "")
    with run_sandbox([base], window_only()) as sandbox:
        api = Api(TOKEN, endpoint_url=sandbox.url)
        runner = Driver("workers", sandbox, warehouse, tmp_path)
        try:
            runner.run()
            ref = TableRef("airtable", api.table(BASE, "Orders").schema().id, "Orders")
            before = warehouse.sync_state(f"airtable:{BASE}", ref, "window")
            assert before is not None
            time.sleep(1.1)
            changed = change_the_base(api)
            runner.workers[1].kill()
            with pytest.MonkeyPatch.context() as env:
                env.setenv("AIRTABLE_API_KEY", TOKEN)
                extractor = AirtableExtractor(base_id=BASE, api_url=sandbox.url,
                                              requests_per_second=1000)
                handle = enqueue(ETLWorkflow(extractor, warehouse), incremental=True,
                                 computed_every=1)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                tables_now = handle.status().get("tables", [])
                if any(t["table"]["name"] == "Orders" and t["requests"] for t in tables_now):
                    break
                time.sleep(0.5)
            else:
                pytest.fail("the incremental run never started listing Orders")
            assert warehouse.sync_state(f"airtable:{BASE}", ref, "window") == before
            handle.cancel()  # the run ends cancelled once a load worker sees its messages
            runner.workers[1] = WorkerProcess("load", runner.workers[1].env, tmp_path).start()
            assert handle.wait(timeout=120, raise_on_failure=False)["state"] == "cancelled"
            assert warehouse.sync_state(f"airtable:{BASE}", ref, "window") == before
            assert warehouse.deleted_ids(ref) == set()
            landed = runner.run(incremental=True, computed_every=1)
            assert table_report(landed, "Orders")["deleted"] == 10
            assert differences(warehouse, api, "Orders") == []
            assert differences(warehouse, api, "Clients") == []
            assert warehouse.deleted_ids(ref) == set(changed["deleted"])
            after = warehouse.sync_state(f"airtable:{BASE}", ref, "window")
            assert after is not None and after["until"] > before["until"]
        finally:
            runner.stop()
    warehouse.dispose()
