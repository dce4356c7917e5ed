"""Live progress and the run summary, drawn into a file-backed console with a fake clock."""

from __future__ import annotations

import io

from rich.console import Console

from app.contracts import RejectedRecord, TableRef
from app.workflows.report import TableReport
from broker.cli.display import ProgressDisplay, TableProgress, describe, summary_text

ORDERS = TableRef(source="airtable", table_id="tblORDERS", name="Orders with a rather long name, never cut")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def report(state: str, loaded: int, rejected: int = 0) -> TableReport:
    return TableReport(table=ORDERS, state=state, fetched=loaded + rejected, loaded=loaded,
                       rejected=[RejectedRecord(f"rec{i:014d}", "NUL") for i in range(rejected)])


def test_rate_estimated_total_and_eta():
    clock = Clock()
    table = TableProgress("Orders", estimate=20_000, state="running", loaded=5_000, started=clock.now - 50)
    text = describe(table, clock.now, None)
    assert text == ("loaded 5,000 of ~20,000 (estimate from the last sync), 100 rec/s, ETA 0:02:30")


def test_plain_output_writes_one_line_per_table_and_shows_the_penalty_wait():
    out = io.StringIO()
    clock = Clock()
    display = ProgressDisplay({"tblORDERS": 20_000}, Console(file=out, width=40), clock=clock,
                              ticker=False)
    assert display.plain  # a file is not a terminal
    with display:
        display.update(report("running", 0))
        clock.now += 10
        display.penalty_for(30)
        display.update(report("running", 2_000))  # not due yet: no second line
        clock.now += 10
        display._tick_once()
        clock.now += 25  # the penalty is over
        display.update(report("succeeded", 19_990, rejected=10))
    lines = out.getvalue().splitlines()
    assert lines == [
        f"{ORDERS.name}: loaded 0 of ~20,000 (estimate from the last sync)",
        f"{ORDERS.name}: loaded 2,000 of ~20,000 (estimate from the last sync), 100 rec/s, ETA 0:03:00, "
        "waiting out Airtable's rate-limit penalty (20 s)",
        f"{ORDERS.name}: loaded 19,990, rejected 10, 444 rec/s, succeeded",
    ]


def test_the_summary_names_the_first_rejected_records_and_how_to_see_all():
    run = {"run_id": "a" * 32, "state": "succeeded_with_rejections", "tables": [{
        "table": ORDERS.to_json(), "sql_table": "airtable__orders_with_a_rather_long_name_never_cut",
        "state": "succeeded", "fetched": 12, "loaded": 5, "error": None,
        "rejected": [{"record_id": f"rec{i:014d}", "reason": f"reason {i}"} for i in range(7)]}]}
    text = summary_text(run)
    assert ORDERS.name in text and "airtable__orders_with_a_rather_long_name_never_cut" in text
    assert "7 records rejected (first 5):" in text
    assert "  " + ORDERS.name + " rec00000000000004: reason 4" in text
    assert "rec00000000000005" not in text
    assert text.endswith(f"all of them: conveyor rejected {'a' * 32}")


def test_the_summary_shows_each_tables_mode_change_source_counts_and_cursor():
    table = {"table": {"source": "airtable", "table_id": "tbl1", "name": "Orders"},
             "sql_table": "airtable__orders", "state": "succeeded", "fetched": 2030, "loaded": 30,
             "rejected": [], "mode": "incremental", "change_source": "window", "created": 20,
             "updated": 10, "deleted": 3, "requests": 22,
             "cursor": {"source": "window", "until": "2026-11-27T18:27:22.000Z", "runs": 1}}
    text = summary_text({"run_id": "r1", "state": "succeeded", "tables": [table]})
    line = next(row for row in text.splitlines() if row.startswith("Orders") and "window" in row)
    assert line.split()[:7] == ["Orders", "incremental", "window", "20", "10", "3", "22"]
    assert "until 2026-11-27T18:27:22.000Z" in line


def test_the_summary_shows_the_feeds_cursor_and_why_a_table_was_re_synced_in_full():
    table = {"table": {"source": "airtable", "table_id": "tbl1", "name": "Orders"},
             "sql_table": "airtable__orders", "state": "succeeded", "fetched": 400, "loaded": 400,
             "rejected": [], "mode": "incremental", "change_source": "full", "created": 0,
             "updated": 400, "deleted": 1, "requests": 7,
             "resync": "webhook achX is disabled (expired at 2026-11-20)",
             "cursor": {"source": "webhook", "webhook_id": "achX", "cursor": 12}}
    text = summary_text({"run_id": "r1", "state": "succeeded", "tables": [table]})
    line = next(row for row in text.splitlines() if row.startswith("Orders") and "webhook" in row)
    assert line.split()[1:3] == ["incremental", "full"] and line.endswith("webhook at 12")
    assert "Orders: re-synced in full (webhook achX is disabled (expired at 2026-11-20))" in text
    quiet = summary_text({"run_id": "r2", "state": "succeeded",
                          "tables": [{**table, "resync": None}]})
    assert "re-synced" not in quiet
