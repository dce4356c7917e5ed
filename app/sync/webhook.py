"""The webhook change feed as a change source, and the one place a table's change source is chosen.

``candidates`` decides: an incremental table of an Airtable base whose token may manage the
base's webhooks reads Conveyor's own polled webhook (``WebhookSource``); otherwise (another
token, another extractor, or a base that has no room for one more hook) the modified-time
window (``app.sync.changes.WindowSource``). Merge and replace runs never touch the webhooks:
they list everything anyway, and leave the window's state as they always did.

``WebhookSource`` (see ``app.extractors.changefeed`` for the feed itself):

- No webhook state for the table: the hook is found or created and its cursor taken BEFORE
  the full listing starts; the full merge stores ``{"source": "webhook", "webhook_id", "cursor"}``
  with the data, so a change made while the listing pages is read again by the next run.
- With state: the payloads since the cursor are read (once per run, extractor and cursor, so the
  tables of an in-process run share one read). A record only changed in the window, whose
  payloads carry every changed cell in a form that reads without doubt
  (``app.extractors.webhook_cells``), and whose row the warehouse has (live), is updated
  field by field from those cells (a ``values`` phase: pages of up to 100 records with the
  same changed fields, made from the read, no request; ``ChangePlan.value_ids`` names them,
  never their values). So a linked record's change that moves a rollup or lookup in
  thousands of records costs no request. The other records created or changed are listed
  by id (``byid`` phases, 100 ids a request), the destroyed ones travel as ``deleted_ids``
  (soft or hard deletes, as the run asks), and the read's end is the new cursor, committed
  with the data (``Warehouse.finish_table``): a failed run leaves it where it was. On
  workers the task that pages the ``values`` phase after the first page reads the same
  payloads again (the hook list and one request per 50 payloads, cut at the new cursor).
- Field events need nothing of their own: every run reads the base's metadata, and the
  warehouse keys columns by field id (a renamed field keeps its column and values, a new one
  gets a column, a destroyed one's column is kept and retired). A field created with values
  in every record (a formula, rollup, lookup, count, auto number…) or retyped has cells that
  changed without a record payload: those fields alone are listed for every record once
  (a ``computed`` phase, which also finds deletes).
- A lost feed (hook expired, deleted or disabled, payloads past the 7-day retention, a field
  event the run's metadata does not know yet): the hook is restarted (its fresh cursor taken
  first), the table is listed whole as a merge, and ``ChangePlan.resync`` says why (the run
  report's ``resync``). The next run reads the feed again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Final
from weakref import WeakKeyDictionary

from app.contracts import Record, TableSchema
from app.errors import SourceError
from app.extractors.airtable import AirtableExtractor
from app.extractors.base import Page, TabularExtractor
from app.extractors.by_id import CHUNK as ID_CHUNK
from app.extractors.changefeed import ChangeFeed, ChangeFeedUnavailable, FeedRead
from app.extractors.changefold import TableChanges
from app.extractors.webhook_cells import field_types, payload_values
from app.sync.changes import FULL, SOURCES, ChangeSource, LiveRows
from app.sync.plan import ChangePlan, RunOptions, TableSync
from app.sync.states import WriteMode

log = logging.getLogger(__name__)

#: The change source that reads Conveyor's webhook on the base.
WEBHOOK: Final = "webhook"
#: Field types whose every cell has a value as soon as the field is created (no record payload
#: says so): such a new field is listed for every record once.
FILLED_AT_CREATION: Final = frozenset({
    "formula", "rollup", "multipleLookupValues", "count", "autoNumber", "createdTime",
    "lastModifiedTime", "createdBy", "lastModifiedBy", "button"})

#: One source per extractor instance and run: its feed, whether the token may use it, the reads
#: made. A new run asks again: a read must never be older than the run that applies it.
_BOUND: WeakKeyDictionary[TabularExtractor, tuple[str, WebhookSource]] = WeakKeyDictionary()


class WebhookSource:
    """The change feed of one extractor's base (see the module docstring)."""

    name = WEBHOOK

    def __init__(self, feed: ChangeFeed) -> None:
        self.feed = feed
        self._available: bool | None = None
        self._reads: dict[tuple[str, int], FeedRead] = {}
        self._reported = 0  # feed requests already reported by a plan

    @classmethod
    def of(cls, extractor: TabularExtractor, run_id: str) -> WebhookSource | None:
        """The extractor's change feed source in run ``run_id`` (the same object for every
        table of the run); None when the extractor is not an Airtable base's."""
        if not isinstance(extractor, AirtableExtractor):
            return None
        bound = _BOUND.get(extractor)
        if bound is None or bound[0] != run_id:
            session = extractor.session
            # The server's clock (its last ``Date`` header) tells when the hook is due for a
            # refresh, as it tells when it expires.
            feed = ChangeFeed(extractor, clock=lambda: session.last_date or datetime.now(UTC))
            bound = (run_id, cls(feed))
            _BOUND[extractor] = bound
        return bound[1]

    def usable(self, extractor: TabularExtractor) -> bool:
        """Whether the token may manage the base's webhooks (asked once per run: one
        request, the hook list, which the first read or ``ensure`` then reuses)."""
        if self._available is None:
            availability = self.feed.available()
            self._available = bool(availability)
            if not availability:
                log.info("change feed unavailable, using the modified-time window: %s",
                         availability.reason)
        return self._available

    def plan(self, schema: TableSchema, previous: dict[str, Any] | None,
             options: RunOptions, live: LiveRows | None = None) -> ChangePlan | None:
        if not previous or previous.get("source") != WEBHOOK or not previous.get("webhook_id") \
                or not previous.get("cursor"):
            # The first run with the feed: everything, from the hook's cursor taken now.
            return ChangePlan(source=FULL, cursor=self.full_cursor(previous), previous=previous,
                              hard_deletes=options.hard_deletes, requests=self._spent())
        read = self._read(str(previous["webhook_id"]), int(previous["cursor"]))
        reason = read.reason if read.lost else _unknown_fields(schema, read.table(schema.table.table_id))
        if reason is not None:
            cursor = self.full_cursor(previous, prefer=read.webhook_id)
            log.warning("table %s is re-synced in full: %s", schema.table.name, reason)
            return ChangePlan(source=FULL, cursor=cursor, previous=previous,
                              hard_deletes=options.hard_deletes, resync=reason,
                              requests=self._spent())
        changes = read.table(schema.table.table_id)
        carried = payload_values(field_types(schema), changes)
        value_ids = tuple(sorted(live(carried) if live is not None and carried else ()))
        record_ids = tuple(sorted(changes.upserted_ids - set(value_ids)))
        chunks = -(-len(record_ids) // ID_CHUNK)
        backfill = _backfill_fields(schema, changes)
        # The values first: a worker's first page is made from this very read.
        phases = (("values",) if value_ids else ()) + ("byid",) * chunks + \
            (("computed",) if backfill else ())
        cursor = {"source": WEBHOOK, "webhook_id": read.webhook_id, "cursor": read.next_cursor}
        return ChangePlan(source=WEBHOOK, phases=phases, computed_fields=backfill, cursor=cursor,
                          previous=previous, hard_deletes=options.hard_deletes,
                          deleted_ids=tuple(sorted(changes.destroyed_ids)), record_ids=record_ids,
                          requests=self._spent(), value_ids=value_ids)

    def value_pages(self, sync: TableSync, offset: str | None) -> Iterator[Page]:
        """The ``values`` phase of ``sync``'s plan from ``offset`` (records done): pages of up
        to ``ID_CHUNK`` records changing the same fields, in a fixed order, from the payloads
        between the plan's two cursors (this run's read, or the same payloads read again).

        Raises:
            SourceError: the payloads cannot be read again as the plan read them.
        """
        change = sync.change
        if change is None or not change.previous:
            raise ValueError("a values phase needs the table's change plan")
        spent = self.feed.requests
        read = self._read(str(change.previous["webhook_id"]), int(change.previous["cursor"]),
                          until=int(change.cursor["cursor"]))
        # The schema where the plan was made, the target's columns after the table was created.
        types = field_types(sync.schema, sync.target.columns if sync.target else ())
        changes = read.table(sync.table.table_id)
        carried = payload_values(types, changes)
        if read.lost or not set(change.value_ids) <= set(carried):
            raise SourceError(f"the change feed's payloads of {sync.table.name!r} could not be "
                              f"read again as planned ({read.reason or 'they differ'}): run again")
        # Grouped by the changed fields' ids, as the payloads give them: the same order
        # wherever the pages are made, so a listing resumes at a record offset.
        order = sorted(change.value_ids, key=lambda i: (sorted(changes.changed_cells[i]), i))
        start = int(offset or 0)
        while start < len(order):
            names = sorted(carried[order[start]])
            end = start + 1
            while end < min(len(order), start + ID_CHUNK) and \
                    changes.changed_cells[order[end]].keys() == \
                    changes.changed_cells[order[start]].keys():
                end += 1
            records: list[Record] = [{"id": i, "fields": carried[i]} for i in order[start:end]]
            yield Page(records, str(end) if end < len(order) else None, fields=tuple(names),
                       requests=self.feed.requests - spent)
            spent, start = self.feed.requests, end

    def full_cursor(self, previous: dict[str, Any] | None, *,
                    prefer: str | None = None) -> dict[str, Any]:
        """The hook's cursor now, before the full listing starts (the hook created or restarted
        when it must be): changes made while the listing pages are read again next run.

        Raises:
            ChangeFeedUnavailable: the token may not manage webhooks, or the base has no room
                for Conveyor's hook.
        """
        known = prefer or (previous or {}).get("webhook_id")
        handle = self.feed.restart(str(known)) if known else self.feed.ensure()
        return {"source": WEBHOOK, "webhook_id": handle.webhook_id, "cursor": handle.cursor}

    def _spent(self) -> int:
        """Feed requests since the last plan reported them (the availability probe included):
        the tables of one run that share a read report it once."""
        spent, self._reported = self.feed.requests - self._reported, self.feed.requests
        return spent

    def _read(self, webhook_id: str, since: int, until: int | None = None) -> FeedRead:
        # The tables of one run usually share a cursor: one read serves them all. Payloads that
        # arrive after it belong to the next run.
        key = (webhook_id, since)
        known = self._reads.get(key)
        if known is None or (until is not None and known.next_cursor != until):
            bound = {} if until is None else {"until": until}
            known = self._reads[key] = self.feed.read(webhook_id, since, **bound)
        return known


def candidates(extractor: TabularExtractor, mode: WriteMode, run_id: str) -> Iterator[ChangeSource]:
    """The change sources a table written in ``mode`` by run ``run_id`` may use, best first:
    the webhook change feed (incremental tables only) when the token may manage webhooks, then
    the modified-time window when the extractor can filter by modified time. A source whose
    plan raises ``ChangeFeedUnavailable`` is skipped for the next
    (``app.sync.steps.plan_listing``)."""
    if mode is WriteMode.INCREMENTAL:
        feed = WebhookSource.of(extractor, run_id)
        if feed is not None and feed.usable(extractor):
            yield feed
    yield from (s for s in SOURCES if s.usable(extractor))


def _backfill_fields(schema: TableSchema, changes: TableChanges) -> tuple[str, ...]:
    """The names of the fields whose every cell may have changed without a record payload: new
    fields of a type filled at creation, and retyped fields (their values were converted)."""
    created = set(changes.fields_created)
    return tuple(f.name for f in schema.fields
                 if f.field_id in changes.fields_changed_type
                 or (f.field_id in created and f.type in FILLED_AT_CREATION))


def _unknown_fields(schema: TableSchema, changes: TableChanges) -> str | None:
    """Why the feed cannot be applied with this run's metadata: a field was created or
    retyped after the metadata was read (its column would be missed), else None."""
    known = {f.field_id for f in schema.fields}
    unknown = sorted((set(changes.fields_created) | set(changes.fields_changed_type)) - known)
    if unknown:
        return (f"field {', '.join(unknown)} was created after this run read the base's "
                "metadata")
    return None


def value_pages(extractor: TabularExtractor, sync: TableSync, offset: str | None) -> Iterator[Page]:
    """The ``values`` phase of ``sync`` (see ``WebhookSource.value_pages``)."""
    source = WebhookSource.of(extractor, sync.run_id)
    if source is None:
        raise ValueError(f"a values phase needs an Airtable extractor, not {type(extractor).__name__}")
    return source.value_pages(sync, offset)


__all__ = ["WEBHOOK", "ChangeFeedUnavailable", "WebhookSource", "candidates", "value_pages"]
