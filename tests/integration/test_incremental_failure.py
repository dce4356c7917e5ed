"""An incremental run (the modified-time window) that fails in the middle of its listing, when
the token is revoked between two pages: in-process and on workers, SQLite and PostgreSQL. The
cursor has not moved and no delete was marked; once the token works again, the next run lands
everything, with no row twice and none missing.

(test_incremental.py fails a run in-process on SQLite, in its load and in its finish step.)
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from app.contracts import TableRef
from sandbox import build_base
from tests.support.fixtures import TOKEN
from tests.support.incremental import (
    BASE,
    SOURCE,
    Driver,
    before_the_windows_second_page,
    change_the_base,
    differences,
    every_row_once,
    sandbox_and_driver,
    table_report,
    window_only,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TABLES = {"Clients": 40, "Orders": 1000}


def failing_run(runner: Driver) -> dict[str, Any]:
    """An incremental run that may fail (``Driver.run`` on workers insists on success)."""
    if runner.kind == "in-process":
        return runner.run(incremental=True, computed_every=1)
    handle = runner.enqueue(incremental=True, computed_every=1)
    return handle.wait(timeout=240, raise_on_failure=False)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("driver", ["in-process", "workers"])
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_run_whose_token_is_revoked_mid_listing_moves_no_cursor_and_loses_nothing(
        backend, driver, tmp_path, pg_schema):
    base = build_base(BASE, TABLES, seed=28)
    with sandbox_and_driver(base, window_only(), driver, tmp_path, backend, pg_schema) as (
            sandbox, api, warehouse, runner):
        orders = api.table(BASE, "Orders")
        table_id = orders.schema().id
        ref = TableRef("airtable", table_id, "Orders")
        runner.run()
        before = warehouse.sync_state(SOURCE, ref, "window")
        assert before is not None
        time.sleep(1.1)  # the Date header counts whole seconds
        changed = change_the_base(api)
        # More changed records, so the window's listing has pages after its first.
        others = [r["id"] for r in orders.all(fields=["Name"])][500:750]
        orders.batch_update([{"id": i, "fields": {"Quantity": 77}} for i in others])

        def revoke_the_token(first_page: list[str]) -> None:
            sandbox.config.token = "revoked"

        with before_the_windows_second_page(table_id, revoke_the_token) as seen:
            failed = failing_run(runner)
        assert seen, "the window's listing never answered a page"
        assert table_report(failed, "Orders")["state"] == "failed", failed
        assert "401" in str(table_report(failed, "Orders")["error"])
        assert warehouse.sync_state(SOURCE, ref, "window") == before
        assert warehouse.deleted_ids(ref) == set()

        sandbox.config.token = TOKEN
        landed = runner.run(incremental=True, computed_every=1)
        assert table_report(landed, "Orders")["deleted"] == 10
        assert differences(warehouse, api, "Orders") == []
        assert differences(warehouse, api, "Clients") == []
        assert warehouse.deleted_ids(ref) == set(changed["deleted"])
        assert every_row_once(warehouse, ref) == []
        after = warehouse.sync_state(SOURCE, ref, "window")
        assert after is not None and after["until"] > before["until"]
