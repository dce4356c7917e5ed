"""The modified-time window and records modified while its listing pages, in-process and on
workers: a record modified after the listing read it, one modified before the listing reached
it, one outside the window and one created are all in the warehouse after the next
incremental run; also when the listing's offset expires at that moment and it starts over.

The sandbox answers the first page of the window's listing; before it answers the second, the
changes are written and its clock jumps ahead by twice the windows' overlap, as if the listing
had paged for a minute: a window ending when the listing ends (not when its first request was
answered) would then start after those changes and miss them.
"""

from __future__ import annotations

import time

import pytest

from app.contracts import TableRef
from app.sync.changes import OVERLAP_SECONDS, parse_time
from sandbox import build_base
from sandbox import errors as sandbox_errors
from sandbox.clock import CLOCK
from tests.support.incremental import (
    BASE,
    CLIENT_COMPUTED,
    ROLLUP,
    SOURCE,
    before_the_windows_second_page,
    differences,
    sandbox_and_driver,
    table_report,
    window_only,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TABLES = {"Clients": 10, "Orders": 600}
#: Updated after the full sync: the window's listing has three pages.
UPDATED = 250


@pytest.mark.timeout(600)
@pytest.mark.parametrize("offset_expires", [False, True], ids=["paged", "offset-expired"])
@pytest.mark.parametrize("driver", ["in-process", "workers"])
def test_records_modified_while_the_window_pages_land_by_the_next_run(driver, offset_expires,
                                                                      tmp_path):
    # No webhooks: the window is the change source under test.
    base = build_base(BASE, TABLES, seed=31)
    with sandbox_and_driver(base, window_only(), driver, tmp_path) as (sandbox, api, warehouse, runner):
        orders = api.table(BASE, "Orders")
        table_id = orders.schema().id
        ref = TableRef("airtable", table_id, "Orders")
        runner.run()
        every = [r["id"] for r in orders.all(fields=["Name"])]
        updated = every[:UPDATED]
        time.sleep(1.1)  # the Date header counts whole seconds
        orders.batch_update([{"id": i, "fields": {"Quantity": 11}} for i in updated])
        sandbox_orders = base.table("Orders")
        assert sandbox_orders is not None
        modified: dict[str, str] = {}

        def modify_while_paging(first_page: list[str]) -> None:
            listed = first_page[0]
            not_yet_listed = next(i for i in reversed(updated) if i not in first_page)
            outside_the_window = every[-1]
            for role, record_id in (("listed", listed), ("not yet listed", not_yet_listed),
                                    ("outside the window", outside_the_window)):
                modified[role] = record_id
            with base.transaction():
                sandbox_orders.update_many(
                    [(i, {"Name": f"changed while paging {n}", "Quantity": 5000 + n})
                     for n, i in enumerate(modified.values())])
                created = sandbox_orders.create({"Name": "created while paging"})
            modified["created"] = created["id"]
            CLOCK.advance(seconds=2 * OVERLAP_SECONDS)
            if offset_expires:  # the listing must start over, its window's end kept
                raise sandbox_errors.iterator_not_available()

        with before_the_windows_second_page(table_id, modify_while_paging) as seen:
            during = runner.run(incremental=True, deletes_every=10, computed_every=10)
        assert seen and len(modified) == 4, "the window's listing never answered a page"
        report = table_report(during, "Orders")
        assert (report["change_source"], report["state"]) == ("window", "succeeded")
        assert report["loaded"] >= UPDATED  # the window's listing paged past its first page
        window = warehouse.sync_state(SOURCE, ref, "window")
        assert window is not None
        # The window ends where the listing's first answer was, before the changes.
        assert parse_time(window["until"]).timestamp() * 1000 \
            <= sandbox_orders.modified_ms(modified["listed"])
        if not offset_expires:  # a listing started over reads the new values at once
            rows = {r["id"]: r["fields"] for r in warehouse.read_records(ref)}
            # The record listed before the change still has the values its page showed.
            assert rows[modified["listed"]]["Quantity"] == 11

        after = runner.run(incremental=True, deletes_every=10, computed_every=10)
        assert table_report(after, "Orders")["change_source"] == "window"
        rows = {r["id"]: r["fields"] for r in warehouse.read_records(ref)}
        assert rows[modified.pop("created")]["Name"] == "created while paging"
        for n, record_id in enumerate(modified.values()):
            assert rows[record_id]["Name"] == f"changed while paging {n}", record_id
            assert rows[record_id]["Quantity"] == 5000 + n, record_id
        assert differences(warehouse, api, "Orders", skip=(ROLLUP,)) == []
        assert differences(warehouse, api, "Clients", skip=CLIENT_COMPUTED) == []
