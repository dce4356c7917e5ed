"""Conveyor's webhook change feed of an Airtable base: its own polled webhook, read since a cursor.

Interface (no Celery; the incremental sync plugs it in)::

    feed = ChangeFeed(extractor)            # an AirtableExtractor (or a pyairtable Api + base id)
    if not feed.available():                # token without webhook:manage: use the modified-time
        ...                                 # window instead (feed.available().reason says why)
    handle = feed.ensure(known_id)          # find or create Conveyor's hook; refresh it if due
    # first sync of a table: keep handle.cursor (taken BEFORE the full listing starts), run a full
    # merge sync, then store (handle.webhook_id, handle.cursor) with the data
    read = feed.read(webhook_id, cursor)    # every payload since ``cursor``, folded per table
    if read.lost:                           # expired, deleted, disabled, payloads past retention
        handle = feed.restart(webhook_id)   # fresh cursor first, then one full merge sync
    else:
        changes = read.table(table_id)      # TableChanges: upserted_ids, destroyed_ids, fields…
        for page in fetch_records(extractor, table_id, changes.upserted_ids):  # app.extractors.by_id
            ...                             # upsert the page; then soft-delete destroyed_ids
        # store read.next_cursor with the data, in the same transaction

Conveyor's hook is the one with exactly ``SPECIFICATION`` (``dataTypes`` tableData and
tableFields, no scope, filter or include) and no notification URL; every other hook of the base
belongs to someone else and is never refreshed or deleted. Several consumers may share the hook:
reading payloads consumes nothing, each keeps its own cursor.

Cost: ``read`` makes 1 request (the hook list: is it alive, where does it end) plus one per 50
payloads (one payload per base transaction), plus 1 refresh when the hook expires within
``refresh_margin``. ``ensure`` makes 1, plus 1 to create or refresh. See docs/extractors.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from pyairtable import Api

from app.errors import SourceError
from app.extractors.airtable import AirtableExtractor, error_type, translate_http_error
from app.extractors.changefeed_model import (
    SPECIFICATION,
    Availability,
    FeedHandle,
    FeedRead,
    is_conveyors,
)
from app.extractors.changefold import Fold, TableChanges

__all__ = ["Availability", "ChangeFeed", "ChangeFeedUnavailable", "FeedHandle", "FeedRead",
           "SPECIFICATION", "TableChanges", "is_conveyors"]

log = logging.getLogger(__name__)

PAGE_LIMIT = 50  # the API's largest payloads page
MAX_PAGES = 200  # 10,000 payloads per read at most; ``FeedRead.more`` says when some are left
REFRESH_MARGIN = timedelta(days=3)


class ChangeFeedUnavailable(SourceError):
    """The token may not manage this base's webhooks (or the API has none): use the
    modified-time window instead."""


class ChangeFeed:
    """Conveyor's webhook on one base, through pyairtable and the extractor's rate-limited session.

    Args:
        source: an ``AirtableExtractor`` (its pyairtable ``Api``, session and shared rate limiter
            are reused) or a pyairtable ``Api``.
        base_id: the base; defaults to the extractor's.
        refresh_margin: refresh the hook when it expires sooner than this.
        clock: the current time, to tell when the hook is due for a refresh. The local clock is
            good enough (the margin is days); tests pass the sandbox's shifted clock.
    """

    def __init__(self, source: AirtableExtractor | Api, base_id: str | None = None, *,
                 refresh_margin: timedelta = REFRESH_MARGIN,
                 clock: Callable[[], datetime] | None = None) -> None:
        if isinstance(source, AirtableExtractor):
            self.api: Api = source.api
            base_id = base_id or source.base_id
        else:
            self.api = source
        if not base_id:
            raise ValueError("ChangeFeed needs a base id")
        self.base_id = base_id
        self.refresh_margin = refresh_margin
        self.clock = clock or (lambda: datetime.now(UTC))
        self.requests = 0  # every API request this feed made
        # The hook list ``available`` fetched, kept for the next call that lists the hooks (once):
        # a run that probes the feed and then reads it pays for one listing, not two.
        self._listed: list[Any] | None = None

    # -- availability and lifecycle ---------------------------------------------------------------

    def available(self) -> Availability:
        """Whether this token may manage the base's webhooks (one request: the hook list).

        Raises:
            ConfigurationError: the token itself is refused (401).
            SourceUnavailableError: Airtable kept failing.
        """
        try:
            self._listed = self._hooks()
        except ChangeFeedUnavailable as exc:
            return Availability(False, str(exc))
        return Availability(True)

    def ensure(self, prefer: str | None = None) -> FeedHandle:
        """Conveyor's hook on the base: found, created once if missing, refreshed if due.

        Args:
            prefer: the hook id the caller's cursor belongs to; kept when it is still ours and
                alive (two processes that raced to create one each keep their own).

        Raises:
            ChangeFeedUnavailable: the token may not manage webhooks.
        """
        ours = [h for h in self._hooks() if is_conveyors(h)]
        alive = sorted((h for h in ours if h.is_hook_enabled), key=lambda h: h.id)
        for dead in (h for h in ours if not h.is_hook_enabled):
            # Expired: it records nothing more and cannot be refreshed; free its place (10 a base).
            log.info("deleting expired change-feed webhook %s of base %s", dead.id, self.base_id)
            try:
                self._call(dead.delete)
            except _Gone:
                pass  # someone else deleted it first
        chosen = next((h for h in alive if h.id == prefer), alive[0] if alive else None)
        if chosen is None:
            try:
                created = self._call(self.api.base(self.base_id).add_webhook, None, SPECIFICATION)
            except SourceError as exc:
                if isinstance(exc, ChangeFeedUnavailable):
                    raise
                # 422: the base holds its 10 hooks already (or refuses the specification): no
                # feed for this base, which the window can stand in for.
                raise ChangeFeedUnavailable(f"Airtable would not create Conveyor's webhook on "
                                            f"base {self.base_id}: {exc}") from None
            log.info("created change-feed webhook %s on base %s", created.id, self.base_id)
            return FeedHandle(created.id, 1, _utc(created.expiration_time), created=True)
        expires, refreshed = self._refresh_if_due(chosen)
        return FeedHandle(chosen.id, int(chosen.cursor_for_next_payload), expires,
                          refreshed=refreshed)

    def restart(self, webhook_id: str | None = None) -> FeedHandle:
        """A fresh start after a lost feed: the hook (recreated if it died) and its current
        cursor. Call it BEFORE the full merge sync lists the table, store its cursor with that
        sync's data: changes made while the sync lists are then read again, never missed."""
        return self.ensure(prefer=webhook_id)

    def delete(self, webhook_id: str) -> None:
        """Delete Conveyor's hook (e.g. when a base stops being synced)."""
        self._delete(webhook_id)

    # -- reading ----------------------------------------------------------------------------------

    def read(self, webhook: FeedHandle | str, since: int, *, until: int | None = None,
             max_pages: int = MAX_PAGES) -> FeedRead:
        """Every payload of the hook from ``since`` on (up to, not including, ``until`` when
        given: a read repeated elsewhere folds exactly what an earlier one did), folded per table.

        Raises:
            ChangeFeedUnavailable: the token may not manage webhooks (any more).
            ValueError: ``since`` is below 1.
        """
        if since < 1:
            raise ValueError("a webhook cursor starts at 1")
        hook_id = webhook.webhook_id if isinstance(webhook, FeedHandle) else webhook
        start = self.requests

        def lost(reason: str) -> FeedRead:
            log.warning("change feed of base %s lost since cursor %d: %s", self.base_id, since, reason)
            return FeedRead(hook_id, since, since, lost=True, reason=reason,
                            requests=self.requests - start)

        hook = next((h for h in self._hooks() if h.id == hook_id), None)
        if hook is None:
            return lost(f"webhook {hook_id} is gone (deleted, or expired more than 7 days ago)")
        if not hook.is_hook_enabled:
            return lost(f"webhook {hook_id} is disabled (expired at {hook.expiration_time}): "
                        "changes since then were not recorded")
        end = int(hook.cursor_for_next_payload)
        if until is not None:
            end = min(end, until)
        if since > end:
            return lost(f"cursor {since} is past webhook {hook_id}'s last payload ({end - 1}): "
                        "it belongs to another webhook")
        self._refresh_if_due(hook)
        folded, cursor, more = Fold(), since, False
        url = str(self.api.base(self.base_id).urls.webhooks / hook_id / "payloads")
        for page in range(max_pages if since < end else 0):  # nothing new: no payload request
            try:
                body = self._call(self.api.request, "GET", url,
                                  params={"cursor": cursor, "limit": PAGE_LIMIT})
            except _Gone:
                return lost(f"webhook {hook_id} was deleted while its payloads were read")
            payloads = [p for p in body.get("payloads") or [] if isinstance(p, dict)]
            answered = int(body.get("cursor", cursor))
            first = answered - len(payloads)
            if payloads and first > cursor:
                return lost(f"payloads {cursor}…{first - 1} are past retention (7 days)")
            if page == 0 and not payloads and cursor < end:
                return lost(f"payloads {cursor}…{end - 1} are past retention (7 days)")
            for number, payload in enumerate(payloads, start=first):
                if number < cursor:
                    continue
                if until is not None and number >= until:
                    break
                if payload.get("error"):
                    return lost(f"webhook {hook_id} reported error {payload.get('code')}")
                folded.add(payload)
            cursor = max(cursor, answered if until is None else min(answered, until))
            if not (payloads and body.get("mightHaveMore")) or (until is not None and cursor >= end):
                break
        else:
            more = since < end
        return FeedRead(hook_id, since, cursor, folded.tables(),
                        frozenset(folded.tables_destroyed), more=more, payloads=folded.payloads,
                        requests=self.requests - start)

    # -- requests ---------------------------------------------------------------------------------

    def _hooks(self) -> list[Any]:
        listed, self._listed = self._listed, None
        if listed is not None:
            return listed
        try:
            hooks: list[Any] = self._call(self.api.base(self.base_id).webhooks)
        except _Gone:
            raise ChangeFeedUnavailable(
                f"Airtable has no webhooks API for base {self.base_id} (404)") from None
        return hooks

    def _delete(self, webhook_id: str) -> None:
        url = self.api.base(self.base_id).urls.webhooks / webhook_id
        try:
            self._call(self.api.request, "DELETE", str(url))
        except _Gone:
            pass  # already gone: what was asked

    def _refresh_if_due(self, hook: Any) -> tuple[datetime | None, bool]:
        expires = _utc(hook.expiration_time)
        if expires is None or expires - self.clock() > self.refresh_margin:
            return expires, False
        try:
            self._call(hook.extend_expiration)  # POST …/refresh
        except (_Gone, SourceError) as exc:
            # Expired or deleted since it was listed: the payload read (or the next one) says so.
            log.warning("could not refresh change-feed webhook %s: %s", hook.id, exc)
            return expires, False
        renewed = hook.expiration_time  # pyairtable stores the answer's ISO text as it is
        if isinstance(renewed, str):
            renewed = datetime.fromisoformat(renewed.replace("Z", "+00:00"))
        log.info("refreshed change-feed webhook %s of base %s until %s", hook.id, self.base_id,
                 renewed)
        return _utc(renewed) if isinstance(renewed, datetime) else expires, True

    def _call(self, send: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self.requests += 1
        try:
            return send(*args, **kwargs)
        except requests.HTTPError as exc:
            raise self._error(exc) from None

    def _error(self, exc: requests.HTTPError) -> Exception:
        response = exc.response
        status = response.status_code if response is not None else 0
        if status == 404:
            return _Gone()
        if status == 403:
            return ChangeFeedUnavailable(
                f"Airtable refused the webhooks of base {self.base_id} (403 {error_type(response)}):"
                " the token needs the webhook:manage scope (and access to the base) for the "
                "change feed")
        return translate_http_error(exc, f"the webhooks of base {self.base_id}", self.base_id)


class _Gone(Exception):
    """A 404 from a webhooks route: the hook (or the route) does not exist."""


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
