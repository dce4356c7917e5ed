"""The steps of one table's sync, as plain functions over an extractor and a warehouse.

The in-process driver (``ETLWorkflow.run``) calls them in a loop; each Celery task calls one.
A table's sync: its schema (from the run's one metadata read) → the first page, which is both
the typing sample and the first batches → the target table → the rest of the listing in
bounded batches → finish (swap a staging table in) or abort.

A large table whose previous sync left creation times in the warehouse is split into
creation-time partitions (``partition_plan``): one listing per window, each paged on its own
(by any extract worker), the first page of the first window being the sample.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

from app import fastjson
from app.contracts import (
    Batch,
    BatchResult,
    Record,
    SyncCommit,
    TableRef,
    TableSchema,
    TableTarget,
)
from app.errors import ConfigurationError, TerminalError
from app.extractors.base import Page, TabularExtractor
from app.extractors.partitions import CreatedWindow, plan_from_created
from app.sync import changes, rules, webhook
from app.sync.plan import Listing, TableSync
from app.warehouses import Warehouse
from app.warehouses.kinds import detect_schema

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchedBatch:
    """A batch, whether it ends the listing, and the cursor that resumes the listing after it.

    ``cursor`` is None when the batch ended inside a page (a listing resumes only at page
    boundaries) or ends the listing.
    """

    batch: Batch
    cursor: str | None
    last: bool
    #: The JSON text of each of ``batch.records`` (``ensure_ascii=False``), made while sizing
    #: them; None when a record holds a value JSON cannot write.
    record_texts: list[str] | None = None


def resolve_tables(extractor: TabularExtractor, wanted: Iterable[str]) -> list[TableRef]:
    """The run's tables: every table of the source, or those ``wanted`` (names or ids).

    A wanted table the source lacks stays in the list, so its own sync fails with a clear
    error while the other tables still land.
    """
    every = extractor.list_tables()
    names = list(wanted)
    if not names:
        return every
    chosen = []
    for name in names:
        match = next((t for t in every if name == t.table_id), None) or next(
            (t for t in every if name == t.name), None)
        chosen.append(match or TableRef(source=extractor.source_name, table_id=name, name=name))
    return chosen


def schema_of(extractor: TabularExtractor, table: TableRef) -> TableSchema:
    """The source's fields of ``table`` (from the metadata the extractor read once).

    Raises:
        ConfigurationError: the source has no such table.
    """
    if table.table_id not in {t.table_id for t in extractor.list_tables()}:
        raise ConfigurationError(f"unknown table {table.name!r}: the source has no such table")
    return extractor.get_schema(table)


def partition_plan(extractor: TabularExtractor, warehouse: Warehouse,
                   sync: TableSync) -> tuple[CreatedWindow, ...]:
    """The creation-time windows the table is listed in, or () to list it whole.

    Boundaries split the previous sync's records (``__created_time`` in the warehouse) into
    about equal parts, so no request is spent on finding them. A table with no previous sync,
    or fewer records than two partitions' worth, is listed whole; so is a source that cannot
    list a window, a run asking for one partition, and an incremental listing (call this
    after ``plan_listing``).
    """
    parts = min(sync.plan.partitions, rules.MAX_PARTITIONS)
    if parts < 2 or not extractor.supports_partitions:
        return ()
    if sync.change is not None and sync.change.source != changes.FULL:
        return ()  # an incremental listing reads only what changed: small, one listing
    windows = plan_from_created(warehouse.created_times(sync.table), parts)
    return tuple(windows) if len(windows) > 1 else ()


def partitioned(sync: TableSync, windows: tuple[CreatedWindow, ...]) -> TableSync:
    """The table's sync split into ``windows``, at the first window's listing (none: as is)."""
    if not windows:
        return sync
    return sync.with_(partitions=windows, listing=window_listing(windows[0]))


def window_listing(window: CreatedWindow) -> Listing:
    """The listing of one partition, from its start."""
    return Listing(next_batch=rules.first_batch(window.index), partition=window)


def first_page(extractor: TabularExtractor, sync: TableSync) -> Page:
    """The first page of the table's listing (of its partition's when it has one): the typing
    sample and its first batches."""
    return next(iter(_pages(extractor, sync, None)))


def _pages(extractor: TabularExtractor, sync: TableSync, cursor: str | None) -> Iterator[Page]:
    window = sync.listing.partition
    if window is None:
        return changes.pages(extractor, sync, cursor, webhook.value_pages)
    # partitions split only a full listing (``partition_plan``): together they see every id
    seen = changes.records_seen(sync)
    return (replace(page, seen=seen) for page in extractor.iter_window(sync.table, window, cursor))


def sample_of(records: list[Record], max_bytes: int) -> list[Record]:
    """The records schema detection looks at: the first page, cut at one batch's bytes."""
    kept: list[Record] = []
    sizer = _Sizer()
    for record in records:
        max_bytes -= len(sizer.encode(record)[0])
        if max_bytes < 0:
            break
        kept.append(record)
    return kept


def create_target(warehouse: Warehouse, sync: TableSync, sample: list[Record]) -> TableSync:
    """Column kinds from the source types or the sample, and the table the batches go to (a
    staging table when replacing). Calling it again for the same run returns the same target."""
    if sync.schema is None:
        raise ValueError("create_target needs the table's schema")
    schema = detect_schema(sync.schema, sample)
    target = warehouse.prepare_table(schema, run_id=sync.run_id, replace=sync.plan.options.replace)
    return sync.with_(schema=schema, target=target)


def iter_batches(pages: Iterable[Page], sync: TableSync, first_batch_no: int) -> Iterator[FetchedBatch]:
    """``pages`` in bounded batches, numbered from ``first_batch_no``.

    A batch holds up to ``batch_max_records`` records and about ``batch_max_bytes`` of JSON,
    so no batch (and no task message) holds a whole table. Batches end at page boundaries
    when they can, so a listing can resume after them. When ``pages`` end on a page that has
    a next cursor (only part of the listing was given), the last batch carries that cursor
    and ``last`` is False; an empty listing yields one empty last batch. Each batch carries
    its records' JSON texts (``FetchedBatch.record_texts``) when they are plain JSON.
    """
    plan = sync.plan
    part = sync.listing.partition_index
    batch_no, pending_bytes = first_batch_no, 0
    pending: list[Record] = []
    texts: list[str] | None = []  # None once a pending record is not plain JSON
    sizer = _Sizer()
    cursor: str | None = None
    # What the pending records are (a listing's phases never share a batch).
    kind: tuple[tuple[str, ...] | None, bool] | None = None

    def cut(cursor: str | None, last: bool) -> FetchedBatch:
        fields, seen = kind or (None, False)
        return FetchedBatch(sync.batch(batch_no, pending, fields, seen), cursor, last, texts)

    for page in pages:
        if pending and kind != (page.fields, page.seen):
            # A new phase: the batch so far ends at the page boundary before it.
            yield cut(cursor, False)
            batch_no, pending, texts, pending_bytes = batch_no + 1, [], [], 0
        kind = (page.fields, page.seen)
        for record in page.records:
            text, plain = sizer.encode(record)
            size = len(text)
            if pending and (len(pending) >= plan.batch_max_records
                            or pending_bytes + size > plan.batch_max_bytes):
                _check_span(sync, part, batch_no)
                yield cut(None, False)
                batch_no, pending, texts, pending_bytes = batch_no + 1, [], [], 0
            pending.append(record)
            pending_bytes += size
            if not plain:
                texts = None
            elif texts is not None:
                texts.append(text)
        cursor = page.next_cursor
        _check_span(sync, part, batch_no)
        if cursor is None:
            yield cut(None, True)
            return
        if len(pending) >= plan.batch_max_records or pending_bytes >= plan.batch_max_bytes:
            yield cut(cursor, False)
            batch_no, pending, texts, pending_bytes = batch_no + 1, [], [], 0
    if pending or batch_no == first_batch_no:
        yield cut(cursor, cursor is None)


class _Sizer:
    """A record's JSON text, from which its size is taken (``ensure_ascii=False``, compact
    when ``fastjson`` writes it; a value JSON cannot write is written as its ``str``), and
    whether it is plain JSON (no value needed that)."""

    def __init__(self) -> None:
        self._plain = True
        self._encoder = json.JSONEncoder(ensure_ascii=False, default=self._as_text)

    def encode(self, record: Record) -> tuple[str, bool]:
        text = fastjson.dumps(record)
        if text is not None:
            return text, True
        self._plain = True
        return self._encoder.encode(record), self._plain

    def _as_text(self, value: object) -> str:
        self._plain = False
        return str(value)


def listing_batches(extractor: TabularExtractor, sync: TableSync,
                    on_page: Callable[[int], None] | None = None) -> Iterator[FetchedBatch]:
    """The batches of the table's listing from ``sync.listing``. A listing from the start
    batches its first page on its own, exactly as ``first_page`` + ``iter_batches([page])``
    do, so both drivers cut the same batches. ``on_page`` is told of every page and the
    requests it took."""
    listing = sync.listing
    start, cursor = listing.next_batch, listing.cursor
    if cursor is None:
        page = first_page(extractor, sync)
        if on_page:
            on_page(page.requests)
        fetched: FetchedBatch | None = None
        for fetched in iter_batches([page], sync, start):
            yield fetched
        if fetched is None or fetched.last:
            return
        start, cursor = fetched.batch.batch_no + 1, fetched.cursor
    yield from iter_batches(_counted(_pages(extractor, sync, cursor), on_page), sync, start)


def _check_span(sync: TableSync, part: int, batch_no: int) -> None:
    if sync.listing.partition is not None and rules.partition_of(batch_no) != part:
        raise TerminalError(f"partition {part} of {sync.table.name!r} ran out of batch numbers "
                            f"({rules.PARTITION_SPAN}); sync it with fewer partitions")


def _counted(pages: Iterator[Page], on_page: Callable[[int], None] | None) -> Iterator[Page]:
    for page in pages:
        if on_page:
            on_page(page.requests)
        yield page


def for_loading(sync: TableSync) -> TableSync:
    """``sync`` as a batch's load message carries it: without the record ids its listing reads
    (a change feed may name thousands, and every batch's message would repeat them); loading
    and finishing need only the deleted ids and the cursor. Never list from it."""
    change = sync.change
    if change is None or not (change.record_ids or change.value_ids):
        return sync
    return sync.with_(change=replace(change, record_ids=(), value_ids=()))


def load(warehouse: Warehouse, sync: TableSync, batch: Batch) -> BatchResult:
    """Upsert one batch; a batch loaded before is a no-op."""
    return warehouse.load_batch(_target(sync), batch)


def plan_listing(extractor: TabularExtractor, warehouse: Warehouse, sync: TableSync) -> TableSync:
    """What the table's listing reads in this run, from the sync state stored with its data
    (``app.sync.changes``): everything, or only what changed since the last successful sync,
    through the best change source that can serve it (``app.sync.webhook.candidates``)."""
    options = sync.plan.options
    for source in webhook.candidates(extractor, options.mode_for(sync.table), sync.run_id):
        previous = None if options.replace else warehouse.sync_state(
            extractor.identity(), sync.table, source.name)
        try:
            return changes.plan_change(extractor, sync, previous, source,
                                       lambda ids: warehouse.live_ids(sync.table, ids))
        except webhook.ChangeFeedUnavailable as exc:
            log.warning("table %s: %s; using the next change source", sync.table.name, exc)
    return changes.plan_change(extractor, sync, None, None)


def started(sync: TableSync, page: Page) -> TableSync:
    """``sync`` once its listing's first page came: the window it reads ends at the server's
    time of that answer."""
    return changes.started(sync, page.server_time)


def finish(warehouse: Warehouse, sync: TableSync) -> int:
    """After the last batch: swap a staging table in atomically and, in the same transaction,
    mark the rows of deleted records and store the table's new sync state.

    Returns:
        How many rows were found deleted at the source.
    """
    change = sync.change
    commit = None
    if change is not None and change.identity:
        # A full listing's state (no change source could serve it) is worth nothing later.
        cursor = change.cursor if change.cursor.get("source") != changes.FULL else None
        commit = SyncCommit(source=change.identity, cursor=cursor,
                            full_listing=change.finds_deletes and not sync.plan.options.replace,
                            hard_deletes=change.hard_deletes, deleted_ids=change.deleted_ids)
    return warehouse.finish_table(_target(sync), commit)


def abort(warehouse: Warehouse, sync: TableSync) -> None:
    """Drop a replacing load's staging table; the live table stays as it was."""
    if sync.target is not None:
        warehouse.abort_table(sync.target)


def _target(sync: TableSync) -> TableTarget:
    if sync.target is None:
        raise ValueError(f"table {sync.table.name!r} has no target yet")
    return sync.target


