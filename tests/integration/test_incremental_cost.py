"""What an incremental run (the modified-time window) downloads when its delete listing is due:
at most 10 % of the full sync's bytes, measured at the sandbox. The listing of every live id
asks for one cheap field, so a record costs its id and little else.

(test_incremental.py checks the other half: at most 5 % of the full sync's requests when the
delete listing is not due. Bytes per record do not depend on the table's size, so a small
table shows the ratio.)
"""

from __future__ import annotations

import time
from urllib.parse import unquote_plus

import pytest

from app.contracts import TableRef
from sandbox import build_base
from tests.support.incremental import (
    BASE,
    CLIENT_COMPUTED,
    differences,
    sandbox_and_driver,
    table_report,
    window_only,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ORDERS = 2000


@pytest.mark.timeout(600)
def test_an_incremental_run_with_its_delete_listing_costs_at_most_10_percent_of_the_bytes(
        tmp_path):
    base = build_base(BASE, {"Orders": ORDERS}, seed=27)
    with sandbox_and_driver(base, window_only(), "in-process", tmp_path) as (sandbox, api, warehouse, runner):
        sandbox.stats.keep_log()
        sandbox.stats.reset()
        runner.run()
        full = sandbox.stats.body_bytes
        orders = api.table(BASE, "Orders")
        some = [r["id"] for r in orders.all(fields=["Name"], max_records=30)]
        time.sleep(1.1)  # the Date header counts whole seconds
        # 1 % of the records: 12 updated, 5 created, 3 deleted.
        orders.batch_update([{"id": i, "fields": {"Quantity": 8}} for i in some[:12]])
        orders.batch_create([{"Name": f"new {n}"} for n in range(5)])
        orders.batch_delete(some[20:23])
        sandbox.stats.reset()
        run = runner.run(incremental=True, deletes_every=1, computed_every=1000)
        incremental = sandbox.stats.body_bytes
        log = list(sandbox.stats.log or [])
        report = table_report(run, "Orders")
        assert (report["change_source"], report["deleted"]) == ("window", 3)
        # The ids-only listing ran: it lists every live record, one field at most each.
        ids_listing = [e for e in log if e.kind in ("list", "list_post")
                       and "LAST_MODIFIED_TIME" not in unquote_plus(e.target)]
        assert sum(e.records for e in ids_listing) == ORDERS + 5 - 3
        assert incremental <= 0.10 * full, (incremental, full)
        ref = TableRef("airtable", orders.schema().id, "Orders")
        assert warehouse.deleted_ids(ref) == set(some[20:23])
        # Links to the deleted records went without a modified time: the computed refresh
        # (not due here) brings them.
        assert differences(warehouse, api, "Orders", skip=CLIENT_COMPUTED) == []
