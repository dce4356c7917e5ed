"""Airtable's 5 requests/s per base, enforced by the sandbox with real 429 penalties."""

from __future__ import annotations

import pytest

from app.warehouses import SQLiteWarehouse
from app.workflows import ETLWorkflow
from tests.support.fixtures import extractor_for, sandbox_with

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_20000_records_at_5_requests_per_second_with_a_30_second_penalty(tmp_path):
    warehouse = SQLiteWarehouse(f"sqlite:///{tmp_path / 'w.db'}")
    with sandbox_with({"Orders": 20000}, requests_per_second=5, penalty_seconds=30) as (sandbox, _):
        extractor = extractor_for(sandbox, requests_per_second=5, penalty_seconds=30)
        report = ETLWorkflow(extractor, warehouse).run(drop_tables=True)
        assert sandbox.stats.requests >= 200
    assert report.state == "succeeded"
    assert report.tables[0].loaded == 20000
    ref = extractor.list_tables()[0]
    assert warehouse.row_count(ref) == 20000


def test_429s_are_waited_out_and_the_run_carries_on(tmp_path):
    """A client that paces itself too fast gets 429s; it waits the penalty and loses nothing."""
    warehouse = SQLiteWarehouse(f"sqlite:///{tmp_path / 'w.db'}")
    with sandbox_with({"Orders": 1500}, requests_per_second=5, penalty_seconds=1.5) as (sandbox, _):
        extractor = extractor_for(sandbox, requests_per_second=50, penalty_seconds=1.5)
        report = ETLWorkflow(extractor, warehouse).run(drop_tables=True)
        rate_limited = sandbox.stats.rate_limited
    assert rate_limited > 0
    assert extractor.session.rate_limited > 0
    assert report.tables[0].loaded == 1500
