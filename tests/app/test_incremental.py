"""The rules of incremental sync without Redis or a server: options, the window's plan, the
phased listing, and what finishing a table commits (on SQLite files)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from app.contracts import Batch, SyncCommit, TableRef, TableSchema
from app.errors import ConfigurationError, WarehouseError
from app.sync import changes, steps
from app.sync.plan import ChangePlan, RunOptions, RunPlan, TableSync
from app.sync.states import WriteMode
from app.warehouses import SQLiteWarehouse, naming, tables
from tests.support.change_sources import (
    SCHEMA,
    TABLE,
    Filtered,
    loaded,
    plan,
    rows,
    sqlite_file,
)

UNTIL = "2026-01-02T03:04:05.000Z"


def test_options_name_the_mode_per_table_and_refuse_what_cannot_be():
    assert RunOptions.parse(incremental=True).mode is WriteMode.INCREMENTAL
    some = RunOptions.parse(incremental="Orders, tblB")
    assert some.mode is WriteMode.MERGE and some.mode_for(TABLE) is WriteMode.INCREMENTAL
    assert some.mode_for(TableRef("airtable", "tblC", "C")) is WriteMode.MERGE
    again = RunOptions.from_json(json.loads(json.dumps(some.to_json())))
    assert again == some and some.to_user()["incremental"] == ["Orders", "tblB"]
    assert RunOptions.parse().to_json() == {"mode": "merge", "tables": []}
    with pytest.raises(ConfigurationError, match="exclude each other"):
        RunOptions.parse(drop_tables=True, incremental=True)
    with pytest.raises(ConfigurationError, match="deletes_every must be a whole number"):
        RunOptions.parse(incremental=True, deletes_every=0)
    with pytest.raises(ConfigurationError, match="hard_deletes must be True or False"):
        RunOptions.parse(hard_deletes="yes")
    with pytest.raises(ConfigurationError, match="incremental must be"):
        RunOptions.parse(incremental=3)


def test_without_state_or_when_merging_the_listing_reads_everything():
    extractor = Filtered()
    sync = TableSync(plan(incremental=True), TABLE, schema=SCHEMA)
    first = changes.plan_change(extractor, sync, None).change
    assert first is not None and first.full and first.source == changes.FULL
    assert first.cursor["source"] == changes.WINDOW and first.identity == "airtable:appX"
    previous = {"source": "window", "until": UTC_LATER, "runs": 3}
    merged = changes.plan_change(extractor, TableSync(plan(), TABLE, schema=SCHEMA), previous).change
    assert merged is not None and merged.full and merged.cursor["runs"] == 0


UTC_LATER = "2026-01-02T03:04:05.000Z"


def test_the_window_starts_at_the_previous_end_minus_the_overlap_and_schedules_full_listings():
    source = changes.WindowSource()
    previous = {"source": "window", "until": UNTIL, "runs": 4, "deletes_run": 4, "computed_run": 4}
    options = RunOptions.parse(incremental=True, deletes_every=2, computed_every=6)
    change = source.plan(SCHEMA, previous, options)
    assert change is not None
    assert change.formula == "LAST_MODIFIED_TIME() >= DATETIME_PARSE('2026-01-02T03:03:35.000Z')"
    assert change.phases == ("records",)  # run 5: deletes last ran at 4, every 2
    assert change.cursor["runs"] == 5 and change.cursor["until"] is None
    later = source.plan(SCHEMA, {**previous, "runs": 5}, options)
    assert later is not None and later.phases == ("records", "ids") and later.id_field == "Done"
    assert later.cursor["deletes_run"] == 6
    refresh = source.plan(SCHEMA, {**previous, "runs": 5, "computed_run": 0},
                          RunOptions.parse(incremental=True, computed_every=6))
    assert refresh is not None and refresh.phases == ("records", "computed")
    assert refresh.computed_fields == ("Total", "Links")
    assert refresh.cursor["computed_run"] == refresh.cursor["deletes_run"] == 6
    assert source.plan(SCHEMA, None, options) is None
    assert source.plan(SCHEMA, {"source": "webhook", "cursor": 9}, options) is None


def test_the_window_ends_at_the_servers_time_once():
    sync = changes.plan_change(Filtered(), TableSync(plan(incremental=True), TABLE, schema=SCHEMA), None)
    moment = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
    ended = changes.started(sync, moment)
    assert ended.change is not None and ended.change.cursor["until"] == "2026-05-06T07:08:09.000Z"
    assert changes.started(ended, datetime(2027, 1, 1, tzinfo=UTC)) == ended
    blind = changes.started(sync, None)
    assert blind.change is not None and blind.change.cursor["source"] == changes.FULL


def test_a_phased_listing_resumes_in_its_phase_and_never_mixes_phases_in_a_batch():
    extractor = Filtered(pages=2)
    change = ChangePlan(source="window", identity="airtable:appX", formula="F",
                        phases=("records", "ids"), id_field="Done", cursor={"source": "window"})
    sync = TableSync(plan(incremental=True), TABLE, change=change)
    pages = list(changes.pages(extractor, sync, None))
    assert [p.next_cursor for p in pages] == ["0|1", "1|", "1|1", None]
    assert [(p.fields, p.seen) for p in pages] == [(None, False), (None, False), ((), True), ((), True)]
    assert extractor.asked == [(None, "F", None), (None, None, ["Done"])]
    batches = list(steps.iter_batches(pages, sync, 0))
    assert [(len(b.batch.records), b.batch.fields, b.batch.seen, b.cursor, b.last) for b in batches] == [
        (3, None, False, None, False), (1, None, False, "1|", False),
        (3, (), True, None, False), (1, (), True, None, True)]
    resumed = list(changes.pages(Filtered(pages=2), sync, "1|1"))
    assert len(resumed) == 1 and resumed[0].fields == () and resumed[0].next_cursor is None
    assert changes.split_cursor("plain-offset") == (0, "plain-offset")
    assert TableSync.from_json(json.loads(json.dumps(sync.to_json()))) == sync
    batch = batches[2].batch
    assert Batch.from_json(json.loads(json.dumps(batch.to_json()))) == batch


@pytest.fixture
def warehouse(tmp_path):
    """One SQLite file, in place of tests/app/conftest.py's warehouse on every backend."""
    yield from sqlite_file(tmp_path)


def test_finishing_marks_unseen_rows_deleted_and_stores_the_cursor_in_one_transaction(warehouse):
    first = [{"id": f"rec{i}", "fields": {"Name": f"n{i}"}} for i in range(5)]
    target, result = loaded(warehouse, "r1", first, seen=True)
    assert result.created == 5
    commit = SyncCommit("airtable:appX", {"source": "window", "until": UNTIL}, full_listing=True)
    assert warehouse.finish_table(target, commit) == 0
    assert warehouse.sync_state("airtable:appX", TABLE, "window") == {"source": "window", "until": UNTIL}

    # Run 2 sees only rec0..rec2 (an ids-only listing): rec3 and rec4 were deleted.
    target, result = loaded(warehouse, "r2", first[:3], fields=(), seen=True)
    assert result.loaded == 0 and result.created == 0
    later = SyncCommit("airtable:appX", {"source": "window", "until": "2027-01-01T00:00:00.000Z"},
                       full_listing=True)
    broken = tables._swap

    def failing(*args: Any) -> None:
        raise WarehouseError("no")

    tables._swap = failing  # type: ignore[assignment]
    try:
        with pytest.raises(WarehouseError):
            warehouse.finish_table(target, later)
    finally:
        tables._swap = broken  # type: ignore[assignment]
    assert warehouse.deleted_ids(TABLE) == set()
    assert warehouse.sync_state("airtable:appX", TABLE, "window")["until"] == UNTIL
    assert warehouse.finish_table(target, later) == 2
    assert warehouse.deleted_ids(TABLE) == {"rec3", "rec4"}
    assert warehouse.finish_table(target, later) == 0  # a redelivered finish changes nothing
    assert warehouse.deleted_ids(TABLE) == {"rec3", "rec4"}
    stored = rows(warehouse)
    assert stored["rec1"]["name"] == "n1" and stored["rec3"][naming.DELETED_AT] is not None

    # A record listed again lives again; hard deletes remove rows.
    target, _ = loaded(warehouse, "r3", [first[3]], seen=True)
    assert warehouse.finish_table(target, SyncCommit("airtable:appX", None, full_listing=True,
                                                     hard_deletes=True)) == 4
    assert set(rows(warehouse)) == {"rec3"}


def test_a_fields_batch_updates_only_those_columns_of_existing_rows(warehouse):
    target, _ = loaded(warehouse, "r1", [{"id": "rec1", "fields": {"Name": "a", "Total": 1}}])
    warehouse.finish_table(target)
    target, result = loaded(warehouse, "r2", [{"id": "rec1", "fields": {"Total": 9}},
                                              {"id": "recNEW", "fields": {"Total": 5}}],
                            fields=("Total", "Links"), seen=True)
    assert result.loaded == 2
    stored = rows(warehouse)
    assert set(stored) == {"rec1"}
    assert stored["rec1"]["name"] == "a" and stored["rec1"]["total"] == 9


def test_a_deleted_field_keeps_its_column_marked_retired(warehouse):
    target, _ = loaded(warehouse, "r1", [{"id": "rec1", "fields": {"Name": "a", "Total": 1}}])
    warehouse.finish_table(target)
    fewer = TableSchema(TABLE, tuple(f for f in SCHEMA.fields if f.name != "Total"))
    warehouse.prepare_table(fewer, run_id="r2", replace=False)
    assert warehouse.retired_columns("airtable__orders") == {"fldTotal": "total"}
    assert rows(warehouse)["rec1"]["total"] == 1
    warehouse.prepare_table(SCHEMA, run_id="r3", replace=False)
    assert warehouse.retired_columns("airtable__orders") == {}


def test_a_replacing_load_keeps_retired_columns_and_deleted_rows(warehouse):
    records = [{"id": f"rec{i}", "fields": {"Name": f"n{i}", "Total": i}} for i in range(3)]
    target = warehouse.prepare_table(SCHEMA, run_id="r1", replace=True)
    warehouse.load_batch(target, Batch("r1", TABLE, 0, records))
    warehouse.finish_table(target, SyncCommit("airtable:appX", None))
    fewer = TableSchema(TABLE, tuple(f for f in SCHEMA.fields if f.name != "Total"))
    target = warehouse.prepare_table(fewer, run_id="r2", replace=True)
    warehouse.load_batch(target, Batch("r2", TABLE, 0, [{"id": "rec0", "fields": {"Name": "z"}},
                                                         {"id": "rec1", "fields": {"Name": "y"}}]))
    assert warehouse.finish_table(target, SyncCommit("airtable:appX", None)) == 1
    stored = rows(warehouse)
    assert stored["rec0"]["name"] == "z" and stored["rec0"]["total"] == 0
    assert stored["rec2"]["name"] == "n2" and stored["rec2"][naming.DELETED_AT] is not None
    assert stored["rec1"][naming.DELETED_AT] is None
    assert warehouse.retired_columns("airtable__orders") == {"fldTotal": "total"}
    # With hard deletes a replacing load keeps only what it listed.
    target = warehouse.prepare_table(fewer, run_id="r3", replace=True)
    warehouse.load_batch(target, Batch("r3", TABLE, 0, [{"id": "rec0", "fields": {"Name": "z"}}]))
    warehouse.finish_table(target, SyncCommit("airtable:appX", None, hard_deletes=True))
    assert set(rows(warehouse)) == {"rec0"}


def test_a_schedule_asks_for_incremental_runs_through_its_options():
    from app.extractors import AirtableExtractor
    from app.workflows import ETLWorkflow
    from broker.scheduling import ScheduledRun

    entry = ScheduledRun("often", ETLWorkflow(AirtableExtractor), 60, options={"incremental": True})
    planned = entry.workflow.plan(**entry.options)  # what the producer does on each tick
    assert planned.options.mode is WriteMode.INCREMENTAL
    assert RunPlan.from_json(json.loads(json.dumps(planned.to_json()))).options == planned.options


@pytest.mark.parametrize("kind", ["sqlite", "duckdb"])
def test_deletes_and_cursor_through_the_warehouse_api(kind, tmp_path):
    from app.warehouses import DuckDBWarehouse

    store = (SQLiteWarehouse(f"sqlite:///{tmp_path / 'w.db'}") if kind == "sqlite"
             else DuckDBWarehouse(f"duckdb:///{tmp_path / 'w.duckdb'}"))
    try:
        records = [{"id": f"rec{i}", "fields": {"Name": f"n{i}", "Total": i}} for i in range(4)]
        target, result = loaded(store, "r1", records, seen=True)
        assert result.created == 4
        store.finish_table(target, SyncCommit("airtable:appX", {"source": "window", "until": UNTIL},
                                              full_listing=True))
        target, result = loaded(store, "r2", [{"id": "rec0", "fields": {"Name": "m"}},
                                              {"id": "rec9", "fields": {"Name": "new"}}])
        assert (result.loaded, result.created) == (2, 1)
        store.load_batch(target, Batch("r2", TABLE, 1, [{"id": "rec1", "fields": {"Total": 7}}],
                                       fields=("Total",), seen=True))
        store.load_batch(target, Batch("r2", TABLE, 2, [{"id": i, "fields": {}} for i in
                                                        ("rec0", "rec1", "rec9")], fields=(), seen=True))
        assert store.finish_table(target, SyncCommit("airtable:appX", {"source": "window",
                                                                       "until": "2027"},
                                                     full_listing=True)) == 2
        assert store.deleted_ids(TABLE) == {"rec2", "rec3"}
        assert store.sync_state("airtable:appX", TABLE, "window") == {"source": "window",
                                                                      "until": "2027"}
        got = {r["id"]: r["fields"] for r in store.read_records(TABLE)}
        assert got["rec0"]["Name"] == "m" and got["rec1"] == {"Name": "n1", "Total": 7}
    finally:
        store.dispose()
