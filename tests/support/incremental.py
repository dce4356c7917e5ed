"""Shared by the incremental-sync tests: one base changed the same way each time, a driver that
runs the workflow in-process or on workers, and the warehouse compared with the source."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from pyairtable import Api

from app.contracts import TableRef
from app.extractors import AirtableExtractor
from app.settings import reload_settings
from app.warehouses import PostgresWarehouse, SQLiteWarehouse, Warehouse
from app.workflows import ETLWorkflow
from app.workflows.etl import RunFailedError
from broker.producer import RunHandle, enqueue
from sandbox import Sandbox, SandboxBase, SandboxConfig, run_sandbox
from sandbox import handler as sandbox_handler
from tests.conftest import TEST_PG_URL, TEST_REDIS_URL
from tests.support.compare import same_value
from tests.support.fixtures import TOKEN
from tests.support.waiting import wait_for
from tests.support.workers import WorkerProcess

BASE = "appINCREMENTAL0001"
SOURCE = f"airtable:{BASE}"
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
    """Runs the workflow in-process or on one extract and one load worker.

    On workers it empties the test's Redis database first, so no message of an earlier test
    reaches them; ``worker_env`` adds to the workers' environment.
    """

    def __init__(self, kind: str, sandbox: Any, warehouse: Warehouse, tmp_path: Any,
                 worker_env: dict[str, str] | None = None) -> None:
        self.kind, self.sandbox, self.warehouse = kind, sandbox, warehouse
        self.tmp_path = tmp_path
        self.workers: list[WorkerProcess] = []
        if kind == "workers":
            redis.Redis.from_url(TEST_REDIS_URL).flushdb()
            env = {"CELERY_BROKER_URL": TEST_REDIS_URL, "AIRTABLE_API_KEY": TOKEN,
                   "AIRTABLE_REQUESTS_PER_SECOND": "1000", "AIRTABLE_API_URL": sandbox.url,
                   "WAREHOUSE_URL": f"sqlite:///{tmp_path / 'workers_default.db'}",
                   **(worker_env or {})}
            self.workers = [WorkerProcess(q, env, tmp_path).start() for q in ("extract", "load")]

    def run(self, **options: Any) -> dict[str, Any]:
        """One run to its end: its report (in-process, also a failed one's); on workers the
        run must succeed."""
        if self.kind == "in-process":
            extractor = AirtableExtractor(api_key=TOKEN, base_id=BASE, api_url=self.sandbox.url,
                                          requests_per_second=1000)
            try:
                report = ETLWorkflow(extractor, self.warehouse).run(**options)
            except RunFailedError as exc:
                return exc.report.to_json()
            return report.to_json()
        final = self.enqueue(**options).wait(timeout=240, raise_on_failure=False)
        assert final["state"] == "succeeded", (final.get("error"), self.workers[1].log()[-3000:])
        return final

    def enqueue(self, settings: dict[str, str] | None = None, **options: Any) -> RunHandle:
        """Queue a run on the workers, as a producer would; ``settings`` are the producer's
        environment variables for this run only (``BATCH_MAX_RECORDS``…)."""
        with pytest.MonkeyPatch.context() as env:
            env.setenv("AIRTABLE_API_KEY", TOKEN)  # the producer's own; never sent
            for name, value in (settings or {}).items():
                env.setenv(name, value)
            if settings:
                reload_settings()
            extractor = AirtableExtractor(base_id=BASE, api_url=self.sandbox.url,
                                          requests_per_second=1000)
            handle = enqueue(ETLWorkflow(extractor, self.warehouse), **options)
        if settings:
            reload_settings()
        return handle

    def restart_load_worker(self) -> None:
        """A new load worker in place of the one that died, with its environment."""
        died = self.workers[1]
        self.workers[1] = WorkerProcess("load", died.env, self.tmp_path).start()

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


@contextlib.contextmanager
def sandbox_and_driver(base: SandboxBase, config: SandboxConfig, driver: str, tmp_path: Any,
                       backend: str = "sqlite", pg_schema: str = "",
                       worker_env: dict[str, str] | None = None,
                       ) -> Iterator[tuple[Sandbox, Api, Warehouse, Driver]]:
    """A sandbox serving ``base``, a client of it playing the people who change the base, a
    warehouse on ``backend`` and a ``Driver`` of kind ``driver``; afterwards the workers are
    stopped and the warehouse disposed of."""
    warehouse = make_warehouse(backend, tmp_path, pg_schema)
    try:
        with run_sandbox([base], config) as sandbox:
            runner = Driver(driver, sandbox, warehouse, tmp_path, worker_env)
            try:
                yield sandbox, Api(TOKEN, endpoint_url=sandbox.url), warehouse, runner
            finally:
                runner.stop()
    finally:
        warehouse.dispose()


def table_report(run: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in run["tables"] if t["table"]["name"] == name)


def orders_ref(api: Api) -> TableRef:
    return TableRef("airtable", api.table(BASE, "Orders").schema().id, "Orders")


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


def every_row_once(warehouse: Warehouse, ref: TableRef) -> list[str]:
    """The ids stored more than once for ``ref`` (soft-deleted rows included)."""
    ids = [r["id"] for r in warehouse.read_records(ref)]
    assert warehouse.row_count(ref) == len(ids)
    return sorted({i for i in ids if ids.count(i) > 1})


def cancel_a_run_no_load_worker_sees(runner: Driver, *, cursor: Callable[[], Any],
                                     started: Callable[[dict[str, Any]], Any], what: str,
                                     **options: Any) -> None:
    """SIGKILL the load worker, queue a run with ``options``, wait until a table of its status
    is ``started`` (``what`` names that moment), then cancel it: with a new load worker the
    run ends cancelled. The run's ``cursor()`` stays as it was before, before and after the
    cancel."""
    before = cursor()
    runner.workers[1].kill()
    handle = runner.enqueue(**options)
    wait_for(lambda: any(started(t) for t in handle.status().get("tables", [])), 120, what)
    assert cursor() == before
    handle.cancel()  # the run ends cancelled once a load worker sees its messages
    runner.restart_load_worker()
    assert handle.wait(timeout=120, raise_on_failure=False)["state"] == "cancelled"
    assert cursor() == before


@contextlib.contextmanager
def before_the_windows_second_page(table_id: str, write: Any) -> Iterator[list[Any]]:
    """Call ``write(first_page_ids)`` once, when the sandbox is asked for the second page of a
    ``LAST_MODIFIED_TIME()`` listing of ``table_id``: its first page has been answered."""
    real_dispatch = sandbox_handler.dispatch
    first_page: list[list[str]] = []
    seen: list[list[str]] = []

    def dispatch(state: Any, method: str, where: Any, params: dict[str, list[str]],
                 body: Any) -> tuple[int, Any]:
        query = {k: v[-1] for k, v in params.items()} | (body if isinstance(body, dict) else {})
        listing = where.kind in ("list", "list_post") and where.table in (table_id, "Orders")
        if listing and first_page and not seen and query.get("offset"):
            seen.append(first_page[0])
            write(first_page[0])
        status, payload = real_dispatch(state, method, where, params, body)
        window = "LAST_MODIFIED_TIME" in str(query.get("filterByFormula", ""))
        if listing and window and status == 200 and not first_page:
            first_page.append([r["id"] for r in payload["records"]])
        return status, payload

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sandbox_handler, "dispatch", dispatch)
        yield seen
