"""Change sources: what a table's listing reads in a run, and the sync state it leaves behind.

A **change source** turns the state stored with a table's data (its *cursor*, a small JSON
dict with a ``source`` key, kept in the warehouse catalog) into a ``ChangePlan``:

- a filtered listing of the records that changed (``formula``, phase ``records``);
- a set of deleted ids: either found by a listing of every live id (phase ``ids``, or the
  ``computed`` refresh, which lists every record too) — the rows such a listing did not see
  are deleted — or given directly (``ChangePlan.deleted_ids``);
- the new cursor, committed in the transaction that makes the run's data visible
  (``Warehouse.finish_table``), so a failed, cancelled or killed run never advances it.

The interface a source implements (``ChangeSource``): ``name``; ``usable(extractor)``
(whether it can serve this extractor, e.g. the token may manage webhooks); ``plan(...)``
(the listing, from the previous cursor; None means "no usable state: list everything",
and a source whose full listing needs a cursor taken first, like the change feed, returns a
``FULL`` plan of its own);
``full_cursor(previous)`` (the state a full listing leaves, taken before it starts);
``started(plan, server_time)`` (the cursor once the listing's first request was answered).
Which source a table uses is decided in one place, ``app.sync.webhook.candidates``: the
webhook change feed (``WebhookSource``) for an incremental table whose token may manage the
base's webhooks, else this module's modified-time window. The feed's plan updates the rows
of changed records from the payloads' values (a ``values`` phase of ``value_ids``, pages made
by ``app.sync.webhook.value_pages``), lists the other created or changed record ids
(``byid`` phases of ``record_ids``), carries the destroyed ids in
``deleted_ids``, leaves field events to the schema (keyed by field id,
``Warehouse.prepare_table``), and stores ``{"source": "webhook", "cursor": N, ...}`` beside
the window's cursor (the state is keyed by source identity, table id and source).

The **modified-time window** (``WindowSource``) lists the records whose
``LAST_MODIFIED_TIME()`` is at or after the previous window's end minus ``OVERLAP_SECONDS``;
the window's end is the *server's* time (its ``Date`` header) when the listing's first
request was answered, so a record modified while the listing pages falls into the next
window. Upserts are idempotent, so the overlap only re-reads a few records. Computed fields
(formula, rollup, lookup, count) change without moving a record's modified time: every
``computed_every``-th run lists them for every record (and that listing finds deletes too);
otherwise every ``deletes_every``-th run lists every id with one cheap field. The refresh
updates only those fields' columns of rows that exist (``Batch.fields``), and those fields'
entries in ``__unfit`` (a value that fits no column lands there, as in a whole-record write); a
record created since the records phase began waits for the next window.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

from app.contracts import FieldSpec, TableSchema
from app.extractors.base import Page, TabularExtractor
from app.extractors.by_id import CHUNK as ID_CHUNK
from app.extractors.by_id import ids_formula
from app.sync.plan import ChangePlan, RunOptions, TableSync
from app.sync.states import WriteMode

#: The change source that lists records by their modified time.
WINDOW: Final = "window"
#: A listing of every record (no change source could be used, or none is asked for).
FULL: Final = "full"
#: How far before the previous window's end the next window starts: the ``Date`` header has
#: one-second resolution, and a write may commit a little after the time it is stamped with.
OVERLAP_SECONDS: Final = 30
#: Airtable field types whose values change without the record's modified time changing:
#: computed ones, and links (a deleted record leaves the link cells pointing at it).
COMPUTED_TYPES: Final = frozenset({"formula", "rollup", "multipleLookupValues", "count",
                                   "multipleRecordLinks"})
#: Field types that are cheap to list (small or often empty), cheapest first: an ids-only
#: listing asks for one of them (Airtable has no listing without any field).
_CHEAP_TYPES: Final = ("checkbox", "rating", "number", "percent", "currency", "duration",
                       "autoNumber", "date")
_PHASE_SEP: Final = "|"

#: Which of some record ids have a live row in the warehouse (``Warehouse.live_ids``).
LiveRows = Callable[[Iterable[str]], set[str]]
#: The pages of a ``values`` phase from an offset (``app.sync.webhook.value_pages``).
ValuePages = Callable[[TabularExtractor, TableSync, str | None], Iterator[Page]]


class ChangeSource(Protocol):
    """One way of finding what changed in a table since its stored cursor."""

    name: str

    def usable(self, extractor: TabularExtractor) -> bool:
        """Whether this source can serve ``extractor``."""
        ...

    def plan(self, schema: TableSchema, previous: dict[str, Any] | None,
             options: RunOptions, live: LiveRows | None = None) -> ChangePlan | None:
        """The listing of a run from the ``previous`` cursor; None: list everything. ``live``
        tells which records have a row a field-by-field update can change."""
        ...

    def full_cursor(self, previous: dict[str, Any] | None) -> dict[str, Any]:
        """The state a full listing of the table leaves, taken before the listing starts."""
        ...


class WindowSource:
    """The modified-time window (see the module docstring)."""

    name = WINDOW

    def usable(self, extractor: TabularExtractor) -> bool:
        return extractor.filters_by_modified_time

    def plan(self, schema: TableSchema, previous: dict[str, Any] | None,
             options: RunOptions, live: LiveRows | None = None) -> ChangePlan | None:
        if not previous or previous.get("source") != WINDOW or not previous.get("until"):
            return None
        runs = int(previous.get("runs", 0)) + 1
        cursor = {**previous, "runs": runs, "until": None}
        phases = ["records"]
        computed = computed_fields(schema)
        if computed and runs - int(previous.get("computed_run", 0)) >= options.computed_every:
            phases.append("computed")
            cursor["computed_run"] = cursor["deletes_run"] = runs
        elif runs - int(previous.get("deletes_run", 0)) >= options.deletes_every:
            phases.append("ids")
            cursor["deletes_run"] = runs
        since = parse_time(str(previous["until"])) - timedelta(seconds=OVERLAP_SECONDS)
        return ChangePlan(source=WINDOW, formula=window_formula(since), phases=tuple(phases),
                          id_field=cheap_field(schema), computed_fields=computed,
                          cursor=cursor, previous=previous, hard_deletes=options.hard_deletes)

    def full_cursor(self, previous: dict[str, Any] | None) -> dict[str, Any]:
        # A full listing knows every live id and every computed value, so the window's
        # counters start again from here; ``started`` sets where its window ends.
        return {"source": WINDOW, "until": None, "runs": 0, "deletes_run": 0, "computed_run": 0}


#: The sources that serve any extractor that can filter by modified time, needing nothing else.
SOURCES: tuple[ChangeSource, ...] = (WindowSource(),)
_ANY: Any = object()


def plan_change(extractor: TabularExtractor, sync: TableSync,
                previous: dict[str, Any] | None, source: ChangeSource | None = _ANY,
                live: LiveRows | None = None) -> TableSync:
    """``sync`` with the listing its run reads: only what changed when the table is synced
    incrementally and has usable state, else everything (which also starts the state).

    Args:
        extractor: The run's extractor.
        sync: The table, with its schema.
        previous: The table's stored cursor (None: never synced, or by nothing that left one).
        source: The change source chosen for the table (``app.sync.webhook.candidates``);
            None: none (the listing leaves no state); by default the first usable of SOURCES.
        live: Which records have a live row in the warehouse (None: none is known).
    """
    options = sync.plan.options
    mode = options.mode_for(sync.table)
    schema = sync.schema or TableSchema(sync.table, ())
    if source is _ANY:
        source = next((s for s in SOURCES if s.usable(extractor)), None)
    if mode is WriteMode.INCREMENTAL and source is not None:
        change = source.plan(schema, previous, options, live)
        if change is not None:
            return sync.with_(change=_replace(change, identity=extractor.identity()))
    cursor = source.full_cursor(previous) if source is not None else {"source": FULL}
    return sync.with_(change=ChangePlan(source=FULL, identity=extractor.identity(), cursor=cursor,
                                        previous=previous, hard_deletes=options.hard_deletes))


def started(sync: TableSync, server_time: datetime | None) -> TableSync:
    """``sync`` once the listing's first request was answered at ``server_time`` (the
    source's clock): the window this run reads ends there. Set once: a listing that starts
    over keeps the earlier end, which only widens the next window."""
    change = sync.change
    if change is None or change.cursor.get("until") or change.cursor.get("source") != WINDOW:
        return sync
    if server_time is None:
        # Without the server's time the next run cannot know where this one's window ended:
        # leave no window, so it lists everything again rather than miss a change.
        cursor = {**change.cursor, "source": FULL}
    else:
        cursor = {**change.cursor, "until": iso(server_time)}
    return sync.with_(change=_replace(change, cursor=cursor))


def records_seen(sync: TableSync) -> bool:
    """Whether a listing of every record records the ids it saw (to find deletions after): a
    replacing load keeps only what it lists, so it needs no record of what it saw."""
    return not sync.plan.options.replace


def pages(extractor: TabularExtractor, sync: TableSync, cursor: str | None,
          values: ValuePages | None = None) -> Iterator[Page]:
    """The listing's pages from ``cursor``, phase after phase; ``values`` makes the pages of a
    ``values`` phase (records whose new values the change source carries).

    A cursor names the phase and the source's offset within it (``"1|itr…"``; ``"1|"`` is
    the start of phase 1), so a listing resumes in the right phase. Each page says which
    fields it lists (``Page.fields``) and whether its ids count as seen by a full listing.
    """
    change = sync.change
    if change is None:
        yield from extractor.iter_pages(sync.table, cursor)
        return
    index, offset = split_cursor(cursor)
    phases = change.phases
    if not phases:
        # Nothing changed (a change feed's empty read): one empty page, no request.
        yield Page([], None, requests=0)
        return
    for number in range(index, len(phases)):
        phase = phases[number]
        if phase == "values":
            if values is None:
                raise ValueError("a values phase needs its source's value pages")
            found, listed = values(extractor, sync, offset), None
        else:
            formula, fields, listed = _phase_query(change, phase, phases[:number].count("byid"))
            # Only extractors that ``filters_by_modified_time`` take these (a full plan has none).
            query: dict[str, Any] = {k: v for k, v in (("formula", formula), ("fields", fields))
                                     if v is not None}
            found = extractor.iter_pages(sync.table, offset, **query)
        for page in found:
            if page.next_cursor:
                following: str | None = f"{number}{_PHASE_SEP}{page.next_cursor}"
            elif number + 1 < len(phases):
                following = f"{number + 1}{_PHASE_SEP}"
            else:
                following = None
            every = phase in ("ids", "computed") or (phase == "records" and change.full)
            seen = every and records_seen(sync)
            yield Page(page.records, following, fields=page.fields if phase == "values" else listed,
                       seen=seen, server_time=page.server_time, requests=page.requests)
        offset = None


def _phase_query(change: ChangePlan, phase: str, chunk: int
                 ) -> tuple[str | None, list[str] | None, tuple[str, ...] | None]:
    """(filterByFormula, fields[] to request, fields the batch holds) of one phase; ``chunk``
    numbers the ``byid`` phases (each lists the next ``ID_CHUNK`` of ``record_ids``)."""
    if phase == "records":
        return change.formula, None, None
    if phase == "byid":
        ids = change.record_ids[chunk * ID_CHUNK:(chunk + 1) * ID_CHUNK]
        return ids_formula(ids), None, None
    if phase == "ids":
        return None, [change.id_field] if change.id_field else None, ()
    return None, list(change.computed_fields), tuple(change.computed_fields)


def split_cursor(cursor: str | None) -> tuple[int, str | None]:
    """(phase number, offset within the phase) of a phased listing cursor."""
    if not cursor:
        return 0, None
    phase, sep, offset = cursor.partition(_PHASE_SEP)
    if not sep or not phase.isdigit():
        return 0, cursor
    return int(phase), offset or None


def window_formula(since: datetime) -> str:
    """``filterByFormula`` keeping the records modified at or after ``since``."""
    return f"LAST_MODIFIED_TIME() >= DATETIME_PARSE('{iso(since)}')"


def computed_fields(schema: TableSchema) -> tuple[str, ...]:
    """The names of the fields whose values change without the record's modified time."""
    return tuple(f.name for f in schema.fields if f.type in COMPUTED_TYPES)


def cheap_field(schema: TableSchema) -> str | None:
    """The field an ids-only listing asks for: the cheapest type there is, else the first."""
    fields: list[FieldSpec] = list(schema.fields)
    for kind in _CHEAP_TYPES:
        found = next((f for f in fields if f.type == kind), None)
        if found is not None:
            return found.name
    return fields[0].name if fields else None


def iso(moment: datetime) -> str:
    """``moment`` as ISO 8601 UTC with milliseconds and ``Z``, as Airtable writes times."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """An aware UTC datetime from an ISO 8601 string (``Z`` accepted)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _replace(change: ChangePlan, **changes: Any) -> ChangePlan:
    from dataclasses import replace

    return replace(change, **changes)
