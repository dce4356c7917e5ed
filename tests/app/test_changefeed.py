"""The webhook change feed against the real sandbox server, driven through unmodified pyairtable:
Conveyor's own hook found or created once and refreshed, payloads read and folded per table,
every way the feed gets lost, and what each read costs in requests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from pyairtable import Api

from app.extractors import AirtableExtractor
from app.extractors.changefeed import ChangeFeed, ChangeFeedUnavailable, FeedRead, is_conveyors
from sandbox import CLOCK, Sandbox, SandboxBase, SandboxConfig, build_base, run_sandbox
from sandbox.clock import datetime_from_ms

TOKEN = "feed-token"
BASE = "appFEEDBASE000001"
OTHER_SPEC = {"options": {"filters": {"dataTypes": ["tableData"]}}}


@pytest.fixture(autouse=True)
def real_time() -> Iterator[None]:
    CLOCK.reset()
    yield
    CLOCK.reset()


@pytest.fixture
def base() -> SandboxBase:
    return build_base(BASE, {"Clients": 40, "Projects": 30}, seed=3, hostile=False)


@pytest.fixture
def sandbox(base: SandboxBase) -> Iterator[Sandbox]:
    with run_sandbox([base], SandboxConfig(token=TOKEN, requests_per_second=None)) as running:
        yield running


@pytest.fixture
def extractor(sandbox: Sandbox) -> AirtableExtractor:
    return AirtableExtractor(api_key=TOKEN, base_id=BASE, api_url=sandbox.url,
                             requests_per_second=1000)


@pytest.fixture
def api(sandbox: Sandbox) -> Api:
    """A separate client playing the people and tools that change the base."""
    return Api(TOKEN, endpoint_url=sandbox.url, retry_strategy=None)


def sandbox_now() -> datetime:
    return datetime_from_ms(CLOCK.now_ms())


def feed_of(extractor: AirtableExtractor) -> ChangeFeed:
    return ChangeFeed(extractor, clock=sandbox_now)


def table_id(base: SandboxBase, name: str) -> str:
    found = base.table(name)
    assert found is not None
    return found.id


def linked_pairs(base: SandboxBase) -> tuple[str, list[str]]:
    """A Projects record and the Clients records linking to it."""
    clients, projects = base.table("Clients"), base.table("Projects")
    assert clients is not None and projects is not None
    for project in projects.records:
        linking = [c["id"] for c in clients.records
                   if project["id"] in (c["fields"].get("Related") or [])]
        if linking:
            return project["id"], linking
    raise AssertionError("no linked Projects record")


def count_requests(sandbox: Sandbox) -> dict[str, int]:
    return {k: v for k, v in sandbox.stats.by_kind.items() if v}


# -- finding, creating, refreshing ----------------------------------------------------------------


def test_ensure_creates_conveyors_hook_once_and_leaves_other_hooks_alone(
        extractor: AirtableExtractor, api: Api, sandbox: Sandbox) -> None:
    airtable = api.base(BASE)
    theirs = airtable.add_webhook(None, OTHER_SPEC)  # type: ignore[arg-type]
    feed = feed_of(extractor)
    assert feed.available()

    first = feed.ensure()
    assert first.created and first.cursor == 1 and first.webhook_id != theirs.id
    assert first.expires_at is not None
    assert abs(first.expires_at - sandbox_now() - timedelta(days=7)) < timedelta(seconds=5)
    second = feed.ensure()
    assert (second.webhook_id, second.created, second.refreshed) == (first.webhook_id, False, False)
    third = feed_of(extractor).ensure(prefer=first.webhook_id)  # another process, same answer
    assert third.webhook_id == first.webhook_id

    hooks = {h.id: h for h in airtable.webhooks()}
    assert set(hooks) == {theirs.id, first.webhook_id}
    assert is_conveyors(hooks[first.webhook_id]) and not is_conveyors(hooks[theirs.id])
    assert hooks[first.webhook_id].notification_url is None
    assert hooks[first.webhook_id].specification.options.filters.data_types == \
        ["tableData", "tableFields"]
    # available() lists the hooks and the first ensure() reuses that list: 4 lists, not 5.
    assert count_requests(sandbox) == {"webhook_create": 2, "webhooks": 4}


def test_a_hook_with_the_same_filters_but_a_notification_url_or_includes_is_not_ours(
        extractor: AirtableExtractor, api: Api) -> None:
    airtable = api.base(BASE)
    spec = {"options": {"filters": {"dataTypes": ["tableData", "tableFields"]}}}
    with_includes = {"options": {**spec["options"],
                                 "includes": {"includePreviousCellValues": True}}}
    scoped = {"options": {"filters": {"dataTypes": ["tableData", "tableFields"],
                                      "recordChangeScope": "tblXXXXXXXXXXXXXX"}}}
    for other in (with_includes, scoped):
        airtable.add_webhook(None, other)  # type: ignore[arg-type]
    assert not any(is_conveyors(h) for h in airtable.webhooks())
    handle = feed_of(extractor).ensure()
    assert handle.created and len(airtable.webhooks()) == 3


def test_ensure_refreshes_only_its_own_hook_and_only_near_expiry(
        extractor: AirtableExtractor, api: Api, sandbox: Sandbox) -> None:
    airtable = api.base(BASE)
    theirs = airtable.add_webhook(None, OTHER_SPEC)  # type: ignore[arg-type]
    feed = feed_of(extractor)
    created = feed.ensure()
    CLOCK.advance(days=3, hours=12)  # 3.5 days left: more than the 3-day margin
    assert not feed.ensure().refreshed
    CLOCK.advance(days=1)  # 2.5 days left
    sandbox.stats.reset()
    refreshed = feed.ensure()
    assert refreshed.refreshed and refreshed.webhook_id == created.webhook_id
    assert refreshed.expires_at is not None
    assert abs(refreshed.expires_at - sandbox_now() - timedelta(days=7)) < timedelta(seconds=5)
    assert count_requests(sandbox) == {"webhooks": 1, "webhook_refresh": 1}
    listed = {h.id: h for h in airtable.webhooks()}
    assert listed[theirs.id].expiration_time == theirs.expiration_time  # not touched
    assert listed[created.webhook_id].expiration_time == refreshed.expires_at


def test_read_refreshes_a_hook_about_to_expire(extractor: AirtableExtractor, api: Api,
                                               sandbox: Sandbox) -> None:
    feed = feed_of(extractor)
    handle = feed.ensure()
    CLOCK.advance(days=6)
    sandbox.stats.reset()
    read = feed.read(handle, handle.cursor)
    assert not read.lost and read.payloads == 0
    assert count_requests(sandbox) == {"webhooks": 1, "webhook_refresh": 1}
    CLOCK.advance(days=6)  # alive thanks to the refresh: 13 days after it was created
    [hook] = api.base(BASE).webhooks()
    assert hook.is_hook_enabled


# -- reading --------------------------------------------------------------------------------------


def test_read_folds_creates_updates_deletes_fields_and_rollups_into_exact_ids(
        extractor: AirtableExtractor, api: Api, base: SandboxBase, sandbox: Sandbox) -> None:
    feed = feed_of(extractor)
    handle = feed.ensure()
    clients, projects = api.table(BASE, "Clients"), api.table(BASE, "Projects")
    project_id, linking = linked_pairs(base)
    client_ids = [r["id"] for r in base.table("Clients").records]  # type: ignore[union-attr]
    unlinked = [i for i in client_ids if i not in linking]
    updated, deleted = unlinked[:3], unlinked[3:5]

    made = clients.batch_create([{"Name": "New one"}, {"Name": "New two"}])
    for record_id in updated:
        clients.update(record_id, {"Notes": "changed"})
    clients.batch_delete(deleted)
    flash = clients.create({"Name": "Created then deleted"})
    clients.update(updated[0], {"Quantity": 5})  # changed twice: one id
    clients.delete(flash["id"])
    region = clients.create_field("Region", "singleLineText")
    schema = clients.schema(force=True).field(region.id)
    notes = clients.schema().field("Notes")
    notes.name = "Remarks"
    notes.save()
    assert schema.name == "Region"
    projects.update(project_id, {"Quantity": 123_456})  # moves the linking clients' rollup

    read = feed.read(handle.webhook_id, handle.cursor)
    assert not read.lost and read.reason is None and not read.more
    [hook] = [h for h in api.base(BASE).webhooks() if h.id == handle.webhook_id]
    assert read.next_cursor == hook.cursor_for_next_payload == handle.cursor + read.payloads
    assert set(read.tables) == {table_id(base, "Clients"), table_id(base, "Projects")}
    got = read.table(table_id(base, "Clients"))
    assert got.upserted_ids == {r["id"] for r in made} | set(updated) | set(linking)
    assert got.created_ids == {r["id"] for r in made}
    assert got.destroyed_ids == set(deleted) | {flash["id"]}
    assert set(got.fields_created) == {region.id} and got.fields_created[region.id].name == "Region"
    assert got.fields_renamed == {notes.id: "Remarks"}
    assert not got.fields_destroyed and not got.fields_changed_type
    assert read.table(table_id(base, "Projects")).upserted_ids == {project_id}

    # Caught up: the next read costs one request and finds nothing.
    sandbox.stats.reset()
    again = feed.read(handle.webhook_id, read.next_cursor)
    assert (again.lost, again.tables, again.next_cursor, again.requests) == \
        (False, {}, read.next_cursor, 1)
    assert count_requests(sandbox) == {"webhooks": 1}


def test_many_payloads_are_read_page_by_page_and_a_bounded_read_resumes(
        extractor: AirtableExtractor, api: Api, base: SandboxBase, sandbox: Sandbox) -> None:
    feed = feed_of(extractor)
    handle = feed.ensure()
    projects = api.table(BASE, "Projects")
    ids = [r["id"] for r in base.table("Projects").records]  # type: ignore[union-attr]
    for i in range(120):  # 120 requests: 120 transactions, 120 payloads
        projects.update(ids[i % len(ids)], {"Quantity": i})
    sandbox.stats.reset()
    read = feed.read(handle, handle.cursor)
    assert (read.payloads, read.next_cursor, read.more, read.requests) == (120, 121, False, 4)
    assert count_requests(sandbox) == {"webhooks": 1, "webhook_payloads": 3}
    assert read.table(table_id(base, "Projects")).upserted_ids == set(ids)

    bounded = feed.read(handle, handle.cursor, max_pages=2)
    assert (bounded.payloads, bounded.next_cursor, bounded.more) == (100, 101, True)
    rest = feed.read(handle, bounded.next_cursor)
    assert (rest.payloads, rest.next_cursor, rest.more) == (20, 121, False)


def test_a_failing_read_leaves_nothing_behind_and_the_same_cursor_reads_it_all_again(
        extractor: AirtableExtractor, api: Api, base: SandboxBase) -> None:
    feed = feed_of(extractor)
    handle = feed.ensure()
    client = base.table("Clients").records[0]["id"]  # type: ignore[union-attr]
    api.table(BASE, "Clients").update(client, {"Notes": "x"})
    first = feed.read(handle, handle.cursor)
    second = feed.read(handle, handle.cursor)  # a run that failed re-reads from its stored cursor
    assert first == second and first.table(table_id(base, "Clients")).upserted_ids == {client}


# -- lost feeds -----------------------------------------------------------------------------------


def _assert_lost(read: FeedRead, since: int, *words: str) -> None:
    assert read.lost and read.next_cursor == since and read.tables == {}
    assert read.reason is not None and all(w in read.reason for w in words), read.reason


def test_an_expired_hook_is_lost_and_restart_makes_a_new_one(
        extractor: AirtableExtractor, api: Api, base: SandboxBase, sandbox: Sandbox) -> None:
    feed = feed_of(extractor)
    handle = feed.ensure()
    CLOCK.advance(days=7, seconds=5)  # nobody read or refreshed it for a week
    api.table(BASE, "Clients").update(base.table("Clients").records[0]["id"],  # type: ignore
                                      {"Notes": "not recorded"})
    sandbox.stats.reset()
    _assert_lost(feed.read(handle, handle.cursor), handle.cursor, "disabled", "expired")
    assert count_requests(sandbox) == {"webhooks": 1}

    fresh = feed.restart(handle.webhook_id)
    assert fresh.created and fresh.webhook_id != handle.webhook_id and fresh.cursor == 1
    assert [h.id for h in api.base(BASE).webhooks()] == [fresh.webhook_id]  # the dead one freed
    api.table(BASE, "Clients").update(base.table("Clients").records[1]["id"],  # type: ignore
                                      {"Notes": "recorded"})
    read = feed.read(fresh, fresh.cursor)
    assert not read.lost and read.payloads == 1


def test_a_deleted_hook_is_lost_and_restart_recreates_it(extractor: AirtableExtractor,
                                                        api: Api) -> None:
    feed = feed_of(extractor)
    handle = feed.ensure()
    api.base(BASE).webhook(handle.webhook_id).delete()
    _assert_lost(feed.read(handle, handle.cursor), handle.cursor, "gone")
    fresh = feed.restart(handle.webhook_id)
    assert fresh.created and fresh.webhook_id != handle.webhook_id


def test_a_cursor_older_than_retention_is_lost_then_the_feed_resumes_from_a_fresh_cursor(
        extractor: AirtableExtractor, api: Api, base: SandboxBase) -> None:
    feed = feed_of(extractor)
    handle = feed.ensure()
    clients = api.table(BASE, "Clients")
    ids = [r["id"] for r in base.table("Clients").records]  # type: ignore[union-attr]
    clients.update(ids[0], {"Notes": "payload 1"})
    CLOCK.advance(days=4)
    assert feed.ensure().refreshed
    clients.update(ids[1], {"Notes": "payload 2"})
    CLOCK.advance(days=4)  # payload 1 is 8 days old: dropped; payload 2 kept
    _assert_lost(feed.read(handle, 1), 1, "past retention")
    kept = feed.read(handle, 2)
    assert not kept.lost and kept.table(table_id(base, "Clients")).upserted_ids == {ids[1]}

    CLOCK.advance(days=4)  # payload 2 dropped too: no payload left to compare with
    _assert_lost(feed.read(handle, 2), 2, "past retention")
    resumed = feed.restart(handle.webhook_id)
    assert (resumed.webhook_id, resumed.created, resumed.cursor) == (handle.webhook_id, False, 3)
    clients.update(ids[2], {"Notes": "payload 3"})
    read = feed.read(resumed, resumed.cursor)
    assert not read.lost and read.table(table_id(base, "Clients")).upserted_ids == {ids[2]}


def test_a_cursor_from_another_hook_is_lost(extractor: AirtableExtractor) -> None:
    feed = feed_of(extractor)
    handle = feed.ensure()
    _assert_lost(feed.read(handle, 50), 50, "another webhook")
    with pytest.raises(ValueError):
        feed.read(handle, 0)


# -- a token without the scope --------------------------------------------------------------------


def test_a_token_without_the_webhook_scope_is_not_available(base: SandboxBase) -> None:
    config = SandboxConfig(token=TOKEN, requests_per_second=None, webhooks_allowed=False)
    with run_sandbox([base], config) as running:
        extractor = AirtableExtractor(api_key=TOKEN, base_id=BASE, api_url=running.url,
                                      requests_per_second=1000)
        feed = feed_of(extractor)
        availability = feed.available()
        assert not availability and availability.reason is not None
        assert "webhook:manage" in availability.reason
        with pytest.raises(ChangeFeedUnavailable, match="webhook:manage"):
            feed.ensure()
        with pytest.raises(ChangeFeedUnavailable):
            feed.read("achXXXXXXXXXXXXXX", 1)
        assert running.stats.by_kind["list"] == 0  # nothing else was tried
        running.config.webhooks_allowed = True  # the scope granted: the feed works
        assert feed.available() and feed.ensure().created


def test_a_feed_on_a_plain_pyairtable_api(sandbox: Sandbox) -> None:
    feed = ChangeFeed(Api(TOKEN, endpoint_url=sandbox.url), BASE, clock=sandbox_now)
    assert feed.ensure().created and not feed.ensure().created
    with pytest.raises(ValueError):
        ChangeFeed(Api(TOKEN, endpoint_url=sandbox.url))



# -- cost -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_acceptance_changes_on_a_20000_record_table_cost_a_few_requests(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 10's scenario: 50 updates, 20 creates, 10 deletes, a field renamed, one added, a
    linked record changed under a rollup; the feed's read and the re-read of what it names,
    against a full listing of the table."""
    from app.extractors.by_id import fetch_records

    big = build_base(BASE, {"Orders": 20_000, "Customers": 300}, seed=9, hostile=False)
    with run_sandbox([big], SandboxConfig(token=TOKEN, requests_per_second=None)) as running:
        extractor = AirtableExtractor(api_key=TOKEN, base_id=BASE, api_url=running.url,
                                      requests_per_second=1000)
        orders_id, customers_id = table_id(big, "Orders"), table_id(big, "Customers")
        feed = feed_of(extractor)
        handle = feed.ensure()  # taken before the full sync lists the table
        ref = next(t for t in extractor.list_tables() if t.table_id == orders_id)
        running.stats.reset()
        full = sum(len(p.records) for p in extractor.iter_pages(ref))
        full_requests = running.stats.requests
        assert full == 20_000 and full_requests == 200

        api = Api(TOKEN, endpoint_url=running.url, retry_strategy=None)
        orders = api.table(BASE, orders_id)
        ids = [r["id"] for r in big.table("Orders").records]  # type: ignore[union-attr]
        customer = big.table("Customers").records[0]  # type: ignore[union-attr]
        linking = {r["id"] for r in big.table("Orders").records  # type: ignore[union-attr]
                   if customer["id"] in (r["fields"].get("Related") or [])}
        updated = [i for i in ids[100:400] if i not in linking][:50]
        deleted = [i for i in ids[500:600] if i not in linking][:10]
        orders.batch_update([{"id": i, "fields": {"Notes": "changed"}} for i in updated])
        created = orders.batch_create([{"Name": f"new {n}"} for n in range(20)])
        orders.batch_delete(deleted)
        notes = orders.schema(force=True).field("Notes")
        notes.name = "Remarks"
        notes.save()
        added = orders.create_field("Region", "singleLineText")
        api.table(BASE, customers_id).update(customer["id"], {"Quantity": 999_999})

        running.stats.reset()
        read = feed.read(handle, handle.cursor)
        read_requests = running.stats.requests
        changes = read.table(orders_id)
        assert changes.upserted_ids == set(updated) | {r["id"] for r in created} | linking
        assert changes.destroyed_ids == set(deleted)
        assert changes.fields_renamed == {notes.id: "Remarks"}
        assert set(changes.fields_created) == {added.id}
        running.stats.reset()
        reread = [r for p in fetch_records(extractor, orders_id, changes.upserted_ids) for r in p]
        reread_requests = running.stats.requests
        assert {r["id"] for r in reread} == changes.upserted_ids
        assert read_requests == 1 + -(-read.payloads // 50)
        assert reread_requests == -(-len(changes.upserted_ids) // 100)
        assert read_requests + reread_requests <= 0.05 * full_requests
        with capsys.disabled():
            print(f"\nfull listing: {full_requests} requests; feed read: {read_requests} "
                  f"({read.payloads} payloads); re-read of {len(changes.upserted_ids)} upserted "
                  f"ids: {reread_requests}; {len(linking)} of them moved by the rollup")


def test_a_base_full_of_other_hooks_makes_the_feed_unavailable(extractor: AirtableExtractor,
                                                               api: Api) -> None:
    for _ in range(10):
        api.base(BASE).add_webhook(None, OTHER_SPEC)  # type: ignore[arg-type]
    feed = feed_of(extractor)
    assert feed.available()  # the token may manage hooks…
    with pytest.raises(ChangeFeedUnavailable, match="TOO_MANY_WEBHOOKS"):
        feed.ensure()  # …but the base has no room for Conveyor's
    assert len(api.base(BASE).webhooks()) == 10


def test_an_error_payload_makes_the_read_lost(extractor: AirtableExtractor, api: Api,
                                              base: SandboxBase,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Airtable appends ``{"error": true, "code": …}`` when it can no longer follow the hook's
    specification; the sandbox never does, so one is added to its real answer here."""
    feed = feed_of(extractor)
    handle = feed.ensure()
    api.table(BASE, "Clients").update(base.table("Clients").records[0]["id"],  # type: ignore
                                      {"Notes": "before the error"})
    real = feed.api.request

    def with_error(method: str, url: str, **kwargs: object) -> object:
        body = real(method, url, **kwargs)
        if str(url).endswith("/payloads"):
            body["payloads"].append({"timestamp": "2026-11-27T18:00:00.000Z",
                                     "baseTransactionNumber": 99, "payloadFormat": "v0",
                                     "error": True, "code": "INVALID_FILTERS"})
            body["cursor"] += 1
        return body

    monkeypatch.setattr(feed.api, "request", with_error)
    _assert_lost(feed.read(handle, handle.cursor), handle.cursor, "INVALID_FILTERS")


def test_a_handle_survives_json(extractor: AirtableExtractor) -> None:
    from app.extractors.changefeed import FeedHandle

    handle = feed_of(extractor).ensure()
    assert FeedHandle.from_json(handle.to_json()) == handle


def test_fields_deleted_and_retyped_in_the_ui_are_read_as_field_changes(
        extractor: AirtableExtractor, base: SandboxBase) -> None:
    from sandbox import rename_and_retype

    feed = feed_of(extractor)
    handle = feed.ensure()
    projects = base.table("Projects")
    assert projects is not None
    notes, quantity = projects.field("Notes"), projects.field("Quantity")
    assert notes is not None and quantity is not None
    base.delete_field(projects, notes.id)
    rename_and_retype(base, "Projects", "Quantity", name="Amount", type="singleLineText")
    changes = feed.read(handle, handle.cursor).table(projects.id)
    assert changes.fields_destroyed == {notes.id}
    assert changes.fields_renamed == {quantity.id: "Amount"}
    assert changes.fields_changed_type == {quantity.id: "singleLineText"}
    assert changes.backfill_field_ids == {quantity.id}
    assert not changes.fields_created


def test_the_feed_paces_its_requests_with_the_extractors_rate_limiter(base: SandboxBase) -> None:
    """Against Airtable's 5 requests per second per base, the feed and the extractor share one
    pace: no 429, however fast the feed is asked. (The pace is 4 a second: on a loaded machine
    requests paced at exactly 5 can arrive bunched; unpaced, these 9 would arrive at once.)"""
    config = SandboxConfig(token=TOKEN, requests_per_second=5)
    with run_sandbox([base], config) as running:
        extractor = AirtableExtractor(api_key=TOKEN, base_id=BASE, api_url=running.url,
                                      requests_per_second=4)
        feed = feed_of(extractor)
        handle = feed.ensure()
        started = datetime.now().timestamp()
        for _ in range(6):
            assert not feed.read(handle, handle.cursor).lost
            assert extractor.list_tables()  # the extractor's own requests, same limiter
        took = datetime.now().timestamp() - started
        assert running.stats.rate_limited == 0
        assert running.stats.requests == 2 + 6 + 1  # ensure: list + create; reads; one metadata
        assert took >= 1.2  # 7 requests at 4 a second after the first two
