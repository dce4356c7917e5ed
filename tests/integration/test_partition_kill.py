"""An extract worker SIGKILLed while it pages the partitions of a table: the run still ends
equal to the source. Kept apart from test_partitions.py because killing workers and waiting
for redelivery is slow; it restarts no server (unlike test_faults.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.contracts import TableRef
from app.extractors import AirtableExtractor
from app.warehouses import SQLiteWarehouse
from app.workflows import ETLWorkflow
from broker.producer import enqueue
from tests.support.compare import differences
from tests.support.stack import running_stack
from tests.support.waiting import wait_for
from tests.support.workers import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ORDERS = 20_000
# Short visibility so the killed worker's messages come back within the test's patience.
FAULT_ENV = {"CONVEYOR_VISIBILITY_TIMEOUT_SECONDS": "20"}


@pytest.mark.timeout(900)
def test_extract_worker_killed_mid_partition(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    with running_stack({"Orders": ORDERS}, SQLiteWarehouse(url), {"WAREHOUSE_URL": url, **FAULT_ENV},
                       tmp_path) as stack:
        table = stack.base.tables[0]
        ref = TableRef("airtable", table.id, table.name)
        first = enqueue(ETLWorkflow(AirtableExtractor, SQLiteWarehouse)).wait(timeout=300)
        assert first["state"] == "succeeded"  # the previous sync the partitions are cut from

        stack.workers["extract"].stop()
        stack.workers["extract"] = WorkerProcess("extract", stack.env, tmp_path,
                                                 concurrency=2).start()
        stack.sandbox.config.latency_seconds = 0.05
        handle = enqueue(ETLWorkflow(AirtableExtractor, SQLiteWarehouse), drop_tables=True)

        def partitioned_and_under_way() -> bool:
            tables = handle.status()["tables"]
            return bool(tables) and tables[0]["partitions"] == 4 and \
                0 < tables[0]["fetched"] < ORDERS // 2

        wait_for(partitioned_and_under_way, 120, "partitioned extraction under way")
        stack.workers["extract"].kill()
        time.sleep(0.5)
        stack.sandbox.config.latency_seconds = 0.0
        stack.workers["extract"] = WorkerProcess("extract", stack.env, tmp_path,
                                                 concurrency=2).start()
        final = handle.wait(timeout=300, raise_on_failure=False)
        assert final["state"] == "succeeded", (final.get("error"), stack.logs())
        assert stack.warehouse.row_count(ref) == len(table.records) == ORDERS
        assert differences(table.records, list(stack.warehouse.read_records(ref))) == []
        assert final["tables"][0]["fetched"] == ORDERS  # counted once per batch, kill or not
