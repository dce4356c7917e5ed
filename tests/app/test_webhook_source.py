"""The webhook change feed as a change source, without a server: what its plan lists from a
feed read, what it does with a lost feed, the by-id listing's pages, and which source a table
gets (against the sandbox, whose token may or may not manage webhooks)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from app.contracts import FieldSpec, TableSchema
from app.extractors import AirtableExtractor
from app.extractors.changefeed import FeedRead
from app.extractors.changefold import FieldState, TableChanges
from app.sync import changes, steps, webhook
from app.sync.plan import ChangePlan, RunOptions, TableSync
from app.sync.states import WriteMode
from sandbox import SandboxConfig, build_base, run_sandbox
from tests.support.change_sources import HOOK, SCHEMA, STATE, TABLE, Filtered, ids, plan, source_with


def test_a_read_becomes_a_by_id_listing_of_the_upserted_records_and_the_destroyed_ids():
    changed = TableChanges(TABLE.table_id, upserted_ids=frozenset(ids(250)),
                           destroyed_ids=frozenset(ids(3, "recGONE")))
    source, feed = source_with(FeedRead(HOOK, 7, 19, {TABLE.table_id: changed}))
    change = source.plan(SCHEMA, STATE, RunOptions.parse(incremental=True, hard_deletes=True))
    assert change is not None and change.source == "webhook"
    assert change.phases == ("byid",) * 3 and change.record_ids == tuple(sorted(ids(250)))
    assert change.deleted_ids == tuple(sorted(ids(3, "recGONE"))) and change.hard_deletes
    assert change.cursor == {"source": "webhook", "webhook_id": HOOK, "cursor": 19}
    assert not change.full and not change.finds_deletes  # nothing is deleted for not being seen
    assert change.requests == 2 and change.resync is None
    assert ChangePlan.from_json(json.loads(json.dumps(change.to_json()))) == change
    # Another table of the same run shares the read.
    other = TableSchema(TABLE.__class__("airtable", "tblB", "B"), ())
    quiet = source.plan(other, STATE, RunOptions.parse(incremental=True))
    assert quiet is not None and quiet.phases == () and quiet.requests == 0 and feed.reads == 1


def test_new_fields_filled_at_creation_and_retyped_fields_are_listed_for_every_record():
    schema = TableSchema(TABLE, (*SCHEMA.fields, FieldSpec("Double", "formula", "fldDouble"),
                                 FieldSpec("Region", "singleLineText", "fldRegion")))
    changed = TableChanges(TABLE.table_id, upserted_ids=frozenset(ids(2)), fields_created={
        "fldDouble": FieldState("Double", "formula"), "fldRegion": FieldState("Region", None)},
        fields_changed_type={"fldDone": "number"}, fields_renamed={"fldName": "Title"})
    source, _ = source_with(FeedRead(HOOK, 7, 9, {TABLE.table_id: changed}))
    change = source.plan(schema, STATE, RunOptions.parse(incremental=True))
    assert change is not None and change.phases == ("byid", "computed")
    # A plain new field starts empty (its cells come in record payloads); renames need no listing.
    assert change.computed_fields == ("Done", "Double")
    assert change.finds_deletes  # the computed phase lists every live record


@pytest.mark.parametrize("read, words", [
    (FeedRead(HOOK, 7, 7, lost=True, reason="webhook is disabled (expired)"), "expired"),
    (FeedRead(HOOK, 7, 9, {TABLE.table_id: TableChanges(TABLE.table_id, fields_created={
        "fldLater": FieldState("Later", "number")})}), "fldLater"),
])
def test_a_lost_feed_or_a_schema_newer_than_the_run_lists_everything_once(read, words):
    source, feed = source_with(read)
    change = source.plan(SCHEMA, STATE, RunOptions.parse(incremental=True))
    assert change is not None and change.source == changes.FULL and change.full
    assert change.resync is not None and words in change.resync
    assert feed.restarts == [HOOK]  # the hook's fresh cursor is taken before the listing
    assert change.cursor == {"source": "webhook", "webhook_id": HOOK, "cursor": 42}
    assert change.requests == 3


def test_without_webhook_state_the_full_listing_starts_at_the_hooks_cursor():
    source, feed = source_with(FeedRead(HOOK, 1, 1))
    sync = TableSync(plan(incremental=True), TABLE, schema=SCHEMA)
    for previous in (None, {"source": "window", "until": "2026-01-01T00:00:00.000Z"}):
        change = source.plan(SCHEMA, previous, sync.plan.options)
        assert change is not None and change.source == changes.FULL and change.full
        assert change.cursor == {"source": "webhook", "webhook_id": "achNEW", "cursor": 42}
        assert change.resync is None and change.requests == 1
    planned = changes.plan_change(Filtered(), sync, None, source).change
    assert planned is not None and planned.full and planned.identity == "airtable:appX"
    assert planned.cursor["source"] == "webhook" and feed.reads == 0
    assert feed.restarts == [None, None, None]  # ensure(): the hook found or created


def test_by_id_phases_list_100_ids_a_request_and_resume_at_the_next_chunk():
    extractor = Filtered(pages=1)
    change = ChangePlan(source="webhook", phases=("byid",) * 3, record_ids=tuple(ids(250)))
    sync = TableSync(plan(incremental=True), TABLE, schema=SCHEMA, change=change)
    pages = list(changes.pages(extractor, sync, None))
    assert [p.next_cursor for p in pages] == ["1|", "2|", None]
    assert not any(p.seen for p in pages) and all(p.fields is None for p in pages)
    formulas = [formula for _, formula, _ in extractor.asked]
    assert [f.count("RECORD_ID()") for f in formulas] == [100, 100, 50]
    assert ids(250)[100] in formulas[1] and ids(250)[99] not in formulas[1]
    extractor.asked.clear()
    list(changes.pages(extractor, sync, "2|"))
    assert len(extractor.asked) == 1 and ids(250)[200] in extractor.asked[0][1]


def test_nothing_changed_is_one_empty_page_and_no_request():
    extractor = Filtered()
    change = ChangePlan(source="webhook", phases=())
    sync = TableSync(plan(incremental=True), TABLE, schema=SCHEMA, change=change)
    [page] = list(changes.pages(extractor, sync, None))
    assert (page.records, page.next_cursor, page.requests) == ([], None, 0)
    assert extractor.asked == []


@pytest.fixture
def sandbox() -> Iterator[Any]:
    base = build_base("appCHOICE00000001", {"Orders": 5}, seed=1, hostile=False)
    with run_sandbox([base], SandboxConfig(token="t", requests_per_second=None)) as running:
        yield running


def test_the_feed_is_chosen_for_incremental_tables_when_the_token_may_manage_webhooks(sandbox):
    shared = AirtableExtractor(api_key="t", base_id="appCHOICE00000001", api_url=sandbox.url,
                               requests_per_second=1000)

    def names(mode: WriteMode, run_id: str = "r1") -> list[str]:
        return [s.name for s in webhook.candidates(shared, mode, run_id)]

    assert names(WriteMode.INCREMENTAL) == ["webhook", "window"]
    assert names(WriteMode.MERGE) == names(WriteMode.REPLACE) == ["window"]
    assert names(WriteMode.INCREMENTAL) == ["webhook", "window"]
    assert sandbox.stats.by_kind["webhooks"] == 1  # asked once a run; merge and replace never
    sandbox.config.webhooks_allowed = False  # a token without webhook:manage
    assert names(WriteMode.INCREMENTAL) == ["webhook", "window"]  # this run asked already
    assert names(WriteMode.INCREMENTAL, "r2") == ["window"]  # the next run asks again
    assert webhook.WebhookSource.of(Filtered(), "r1") is None
    assert [s.name for s in webhook.candidates(Filtered(), WriteMode.INCREMENTAL, "r1")] == \
        ["window"]


def test_load_messages_leave_the_listed_ids_behind_and_keep_what_finishing_needs():
    change = ChangePlan(source="webhook", phases=("byid",) * 3, record_ids=tuple(ids(250)),
                        deleted_ids=("recGONE00000001",), cursor=STATE)
    sync = TableSync(plan(incremental=True), TABLE, schema=SCHEMA, change=change)
    loading = steps.for_loading(sync)
    assert loading.change is not None and loading.change.record_ids == ()
    assert (loading.change.deleted_ids, loading.change.cursor) == (change.deleted_ids, STATE)
    assert len(json.dumps(loading.to_json())) < len(json.dumps(sync.to_json())) - 250 * 14
    window = TableSync(plan(incremental=True), TABLE, change=ChangePlan(source="window"))
    assert steps.for_loading(window) is window
