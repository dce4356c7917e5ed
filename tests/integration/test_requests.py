"""No wasted Airtable requests: a sync reads the base's metadata once and every page once —
the first page is both the typing sample and the first batch — in-process and on workers."""

from __future__ import annotations

import math

import pytest

from app.extractors import AirtableExtractor
from app.warehouses import SQLiteWarehouse
from app.workflows import ETLWorkflow
from broker.producer import enqueue
from tests.support.fixtures import extractor_for
from tests.support.stack import running_stack

pytestmark = pytest.mark.integration

TABLES = {"Empty": 0, "Clients": 100, "Projects": 250, "Orders": 1000}
PAGES = sum(max(math.ceil(n / 100), 1) for n in TABLES.values())  # 1 + 1 + 3 + 10


def test_a_four_table_sync_reads_metadata_once_and_each_page_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'workers.db'}"
    with running_stack(TABLES, SQLiteWarehouse(url), {"WAREHOUSE_URL": url}, tmp_path) as stack:
        stats = stack.sandbox.stats
        stats.reset()
        final = enqueue(ETLWorkflow(AirtableExtractor, SQLiteWarehouse)).wait(timeout=120)
        assert final["state"] == "succeeded"
        assert (stats.by_kind["meta_tables"], stats.by_kind["list"]) == (1, PAGES), stats
        stats.reset()
        local = SQLiteWarehouse(f"sqlite:///{tmp_path / 'local.db'}")
        ETLWorkflow(extractor_for(stack.sandbox), local).run()
        assert (stats.by_kind["meta_tables"], stats.by_kind["list"]) == (1, PAGES), stats
        local.dispose()


PARTITIONED = {"Empty": 0, "Clients": 100, "Projects": 250, "Orders": 2500}


def _page_requests(stats) -> tuple[list[str], int]:
    """The page requests answered (their targets) and the records they served."""
    pages = [entry for entry in stats.log if entry.kind == "list" and entry.status == 200]
    return [entry.target for entry in pages], sum(entry.records for entry in pages)


def test_a_partitioned_four_table_sync_reads_metadata_once_and_no_page_twice(tmp_path):
    """Orders, above two partitions' worth after its first sync, is listed in creation-time
    windows the second time: still one metadata read, no page requested twice, and no record
    served twice (the windows do not overlap)."""
    url = f"sqlite:///{tmp_path / 'workers.db'}"
    records = sum(PARTITIONED.values())
    with running_stack(PARTITIONED, SQLiteWarehouse(url), {"WAREHOUSE_URL": url}, tmp_path) as stack:
        stats = stack.sandbox.stats
        stats.keep_log()
        local = SQLiteWarehouse(f"sqlite:///{tmp_path / 'local.db'}")
        for sync in ("first", "partitioned"):
            stats.reset()
            final = enqueue(ETLWorkflow(AirtableExtractor, SQLiteWarehouse)).wait(timeout=120)
            assert final["state"] == "succeeded"
            targets, served = _page_requests(stats)
            assert stats.by_kind["meta_tables"] == 1, stats
            assert len(set(targets)) == len(targets) and served == records, (sync, stats)
            partitions = {t["table"]["name"]: t["partitions"] for t in final["tables"]}
            # 2,500 records: two partitions of at least 1,000 (MIN_RECORDS_PER_PARTITION)
            assert partitions["Orders"] == (2 if sync == "partitioned" else 1)
            assert {n for n, p in partitions.items() if p > 1} <= {"Orders"}

            stats.reset()
            ETLWorkflow(extractor_for(stack.sandbox), local).run()
            targets, served = _page_requests(stats)
            assert stats.by_kind["meta_tables"] == 1, stats
            assert len(set(targets)) == len(targets) and served == records, (sync, stats)
            assert any("filterByFormula" in t for t in targets) == (sync == "partitioned")
        local.dispose()
