"""The sync model without Redis, Celery or a database: options, contracts, rules, batching."""

import json

import pytest

from app.contracts import TableRef, TableSchema
from app.errors import ConfigurationError
from app.extractors.base import Page, TabularExtractor
from app.sync import rules, steps
from app.sync.plan import ComponentConfig, Listing, RunOptions, RunPlan, TableSync
from app.sync.states import RunState, TableState, WriteMode


def plan(**overrides):
    data = dict(run_id="r1", workflow="etl", extractor=ComponentConfig("airtable", {"base_id": "appX"}),
                warehouse=ComponentConfig(None), options=RunOptions(), batch_max_records=3,
                batch_max_bytes=10_000)
    data.update(overrides)
    return RunPlan(**data)


TABLE = TableRef("src", "tbl1", "One")


def test_options_are_validated_once_with_the_valid_names_in_the_error():
    assert RunOptions.parse(drop_tables=True, tables="A, B").to_json() == {
        "mode": "replace", "tables": ["A", "B"]}
    assert RunOptions.parse().mode is WriteMode.MERGE
    with pytest.raises(ConfigurationError, match="'drop_table'.*drop_tables, tables"):
        RunOptions.parse(drop_table=True)
    with pytest.raises(ConfigurationError, match="drop_tables must be True or False"):
        RunOptions.parse(drop_tables="yes")


def test_contracts_round_trip_through_json():
    sync = TableSync(plan(options=RunOptions.parse(drop_tables=True, tables=["One"])), TABLE,
                     schema=TableSchema(TABLE, ()), listing=Listing("cur", 7, 1, 2, True))
    again = TableSync.from_json(json.loads(json.dumps(sync.to_json())))
    assert again == sync
    assert again.plan.options.replace


@pytest.mark.parametrize(("states", "rejected", "cancelled", "expected"), [
    (["succeeded", "succeeded"], 0, False, RunState.SUCCEEDED),
    (["succeeded"], 2, False, RunState.SUCCEEDED_WITH_REJECTIONS),
    (["succeeded", "failed"], 2, False, RunState.FAILED),
    (["succeeded", "pending"], 0, False, RunState.FAILED),
    (["succeeded", "cancelled"], 0, True, RunState.CANCELLED),
    ([], 0, False, RunState.SUCCEEDED),
])
def test_outcome(states, rejected, cancelled, expected):
    assert rules.outcome(states, rejected, cancelled=cancelled) is expected
    assert expected.is_final


def test_listing_rules():
    start = Listing()
    assert rules.advanced(start, 4, None) == start  # cut inside a page: resume stays put
    moved = rules.advanced(start, 4, "c5")
    assert (moved.cursor, moved.next_batch) == ("c5", 5)
    stalled = rules.stalled(rules.stalled(moved))
    assert stalled.stalls == 2 and not rules.gives_up(stalled)
    assert rules.advanced(stalled, 5, "c6").stalls == 0
    restarted = rules.restart(moved)
    assert (restarted.cursor, restarted.epoch, restarted.next_batch) == (None, 1, rules.EPOCH_SIZE)
    assert rules.epoch_of(restarted.next_batch + 3) == 1
    assert TableState.CANCELLED.is_final and not TableState.RUNNING.is_final


class Pages(TabularExtractor):
    """Pages of ``sizes`` records; counts the pages it served."""

    def __init__(self, sizes):
        self.sizes, self.served = sizes, 0

    def list_tables(self):
        return [TABLE]

    def iter_pages(self, table, cursor=None):
        start = int(cursor) if cursor else 0
        for index in range(start, len(self.sizes)):
            self.served += 1
            records = [{"id": f"r{index}-{n}", "fields": {}} for n in range(self.sizes[index])]
            yield Page(records, str(index + 1) if index + 1 < len(self.sizes) else None)


def cuts(batches):
    return [(b.batch.batch_no, len(b.batch.records), b.cursor, b.last) for b in batches]


def test_both_drivers_cut_the_same_batches():
    sync = TableSync(plan(), TABLE)
    extractor = Pages([2, 2, 2, 1])
    # in-process: the first page is fetched for the sample, batched alone, the rest follows
    page = steps.first_page(extractor, sync)
    head = list(steps.iter_batches([page], sync, 0))
    rest_sync = sync.with_(listing=Listing(cursor=head[-1].cursor, next_batch=1))
    in_process = cuts(head) + cuts(steps.listing_batches(Pages([2, 2, 2, 1]), rest_sync))
    # on workers when the first page could not travel: the listing starts from scratch
    from_scratch = cuts(steps.listing_batches(Pages([2, 2, 2, 1]), sync))
    assert in_process == from_scratch == [(0, 2, "1", False), (1, 3, None, False), (2, 2, None, True)]


def test_a_listing_resumes_at_the_cursor_of_a_batch_that_ended_on_a_page_boundary():
    sync = TableSync(plan(batch_max_records=2), TABLE)
    all_batches = cuts(steps.listing_batches(Pages([2, 2, 2]), sync))
    assert all_batches == [(0, 2, "1", False), (1, 2, "2", False), (2, 2, None, True)]
    resumed = sync.with_(listing=rules.advanced(Listing(), 1, "2"))
    extractor = Pages([2, 2, 2])
    assert cuts(steps.listing_batches(extractor, resumed)) == [(2, 2, None, True)]
    assert extractor.served == 1  # one request, not the whole listing again


def test_an_empty_table_is_one_empty_last_batch():
    sync = TableSync(plan(), TABLE)
    assert cuts(steps.listing_batches(Pages([0]), sync)) == [(0, 0, None, True)]


def test_an_unknown_table_stays_in_the_run_and_fails_alone():
    extractor = Pages([1])
    tables = steps.resolve_tables(extractor, ["One", "Nope"])
    assert [t.table_id for t in tables] == ["tbl1", "Nope"]
    with pytest.raises(ConfigurationError, match="unknown table 'Nope'"):
        steps.schema_of(extractor, tables[1])


def test_only_the_last_epoch_of_a_restarted_listing_counts():
    restarted = rules.EPOCH_SIZE
    counts = {0: 100, 1: 100, 2: 7, restarted: 100, restarted + 1: 40}
    assert rules.last_epoch(counts) == {restarted: 100, restarted + 1: 40}
    assert rules.last_epoch({0: 5, 1: 6}) == {0: 5, 1: 6}
    assert rules.last_epoch({}) == {}
def test_partition_listings_number_their_batches_apart_and_keep_their_window():
    from app.extractors.partitions import windows
    from app.sync import rules
    from app.sync.plan import Listing

    plan = windows([1_000, 2_000, 3_000])
    starts = [rules.first_batch(w.index) for w in plan]
    assert starts == [0, 62_500, 125_000, 187_500]
    assert [rules.partition_of(n + 5) for n in starts] == [0, 1, 2, 3]
    assert rules.batch_count(rules.first_batch(2) + 9) == 10
    assert rules.batch_count(rules.first_batch(2, epoch=3) + 9) == 10
    listing = Listing(next_batch=starts[2], partition=plan[2])
    moved = rules.advanced(listing, starts[2], "itr/1")
    assert (moved.partition, moved.next_batch, moved.cursor) == (plan[2], starts[2] + 1, "itr/1")
    assert rules.stalled(moved).partition == plan[2]
    again = rules.restart(moved)
    assert (again.partition, again.epoch, again.next_batch, again.cursor) == (
        plan[2], 1, rules.first_batch(2, 1), None)
    assert rules.epoch_of(again.next_batch) == 1 and rules.partition_of(again.next_batch) == 2
    assert rules.restart(Listing()).next_batch == rules.EPOCH_SIZE  # unsplit tables as before


def test_partitions_travel_in_the_contracts_and_old_messages_read_as_unsplit():
    from app.contracts import TableRef
    from app.extractors.partitions import windows
    from app.sync.plan import ComponentConfig, Listing, RunOptions, RunPlan, TableSync

    plan = RunPlan("r", "etl", ComponentConfig("airtable"), ComponentConfig(None), RunOptions(),
                   500, 2_000_000, partitions=4)
    cut = tuple(windows([10, 20]))
    sync = TableSync(plan, TableRef("airtable", "tbl1", "T"), partitions=cut,
                     listing=Listing(next_batch=62_500, partition=cut[1]))
    back = TableSync.from_json(sync.to_json())
    assert back == sync and back.plan.partitions == 4
    old = sync.to_json()
    del old["partitions"], old["listing"]["partition"], old["plan"]["partitions"]
    unsplit = TableSync.from_json(old)
    assert (unsplit.partitions, unsplit.listing.partition, unsplit.plan.partitions) == ((), None, 1)
    assert "partition" not in TableSync(plan, sync.table).to_json()["listing"]


class WindowPages(Pages):
    """``Pages`` that serves every window's listing the same pages."""

    def iter_window(self, table, window, cursor=None):
        return self.iter_pages(table, cursor)


@pytest.mark.parametrize(("options", "seen"), [(RunOptions(), True),
                                               (RunOptions.parse(drop_tables=True), False)])
def test_partitions_record_the_ids_they_saw_only_for_a_load_that_does_not_replace(options, seen):
    from app.extractors.partitions import windows

    cut = tuple(windows([10, 20]))
    sync = TableSync(plan(options=options), TABLE, partitions=cut,
                     listing=steps.window_listing(cut[1]))
    batches = [b.batch for b in steps.listing_batches(WindowPages([2, 2, 1]), sync)]
    assert len(batches) == 2 and [b.seen for b in batches] == [seen, seen]
