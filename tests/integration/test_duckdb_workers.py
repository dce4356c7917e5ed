"""Two load workers on one DuckDB file: every batch lands, no worker hits DuckDB's file lock."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from app.contracts import TableRef
from app.extractors import AirtableExtractor
from app.warehouses import DuckDBWarehouse
from app.workflows import ETLWorkflow
from sandbox import SandboxBase, SandboxConfig, build_base, build_hostile_base, run_sandbox
from tests.conftest import TEST_REDIS_URL
from tests.support.compare import differences
from tests.support.fixtures import THREE_TABLES, TOKEN
from tests.support.workers import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: What DuckDB says when a second process opens a file another one holds.
LOCK_ERRORS = ("could not set lock", "conflicting lock")


class NamedWorker(WorkerProcess):
    """A worker with a node name of its own, so two workers can serve one queue."""

    def __init__(self, queue: str, name: str, env: dict[str, str], log_dir: Path) -> None:
        super().__init__(queue, env, log_dir)
        self.name = name

    @property
    def hostname(self) -> str:
        return f"{self.name}@conveyor-test"


@contextlib.contextmanager
def two_loaders(base: SandboxBase, url: str, log_dir: Path) -> Iterator[list[WorkerProcess]]:
    redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    with run_sandbox([base], SandboxConfig(token=TOKEN, requests_per_second=0)) as sandbox:
        env = {"CELERY_BROKER_URL": TEST_REDIS_URL, "AIRTABLE_API_URL": sandbox.url,
               "AIRTABLE_BASE_ID": base.id, "AIRTABLE_API_KEY": TOKEN,
               "AIRTABLE_REQUESTS_PER_SECOND": "1000", "AIRTABLE_MAX_ATTEMPTS": "3",
               "WAREHOUSE_URL": url}
        workers = [NamedWorker("extract", "extract", env, log_dir),
                   NamedWorker("load", "load1", env, log_dir),
                   NamedWorker("load", "load2", env, log_dir)]
        try:
            for worker in workers:
                worker.start()
            yield workers
        finally:
            for worker in workers:
                worker.stop()
            redis.Redis.from_url(TEST_REDIS_URL).flushdb()


@pytest.mark.parametrize("which", ["hostile", "three_tables"])
def test_two_load_workers_share_one_duckdb_file(which, tmp_path):
    from broker.producer import enqueue

    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    if which == "hostile":
        base = build_hostile_base()
    else:
        base = build_base("appTESTBASE000001", THREE_TABLES, seed=7)
    warehouse = DuckDBWarehouse(url)
    try:
        with two_loaders(base, url, tmp_path) as workers:
            handle = enqueue(ETLWorkflow(AirtableExtractor, DuckDBWarehouse), drop_tables=True)
            final = handle.wait(timeout=600, raise_on_failure=False)
            logs = {w.hostname: w.log() for w in workers}
            assert final["state"] == "succeeded", (final.get("error"), [log[-3000:] for log in logs.values()])
            status = handle.status()
        by_id = {t["table"]["table_id"]: t for t in status["tables"]}
        for table in base.tables:
            counts = by_id[table.id]
            assert counts["state"] == "succeeded", (table.name, counts["error"])
            assert counts["fetched"] == len(table.records), table.name
            # DuckDB stores every hostile value (NUL included): nothing is rejected.
            assert (counts["loaded"], counts["rejected"]) == (len(table.records), []), table.name
            ref = TableRef("airtable", table.id, table.name)
            assert differences(table.records, list(warehouse.read_records(ref))) == [], table.name
            assert warehouse.row_count(ref) == len(table.records)
        for hostname, log in logs.items():
            assert not any(e in log.lower() for e in LOCK_ERRORS), hostname
        # Both load workers did load batches (the work was shared, not serialised by luck).
        loaded_by = {h: log.count("conveyor.load_batch") for h, log in logs.items() if h.startswith("load")}
        assert all(count > 0 for count in loaded_by.values()), loaded_by
        history = warehouse.list_runs(limit=1)[0]
        assert (history["run_id"], history["state"]) == (handle.id, "succeeded")
    finally:
        warehouse.dispose()
