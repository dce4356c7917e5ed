"""Re-reading records by id (what the change feed's upserted ids become) against the sandbox."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pyairtable import Api

from app.extractors import AirtableExtractor
from app.extractors.by_id import fetch_records, ids_formula
from app.extractors.changefeed import ChangeFeed
from sandbox import Sandbox, SandboxBase, SandboxConfig, build_base, run_sandbox

TOKEN = "ids-token"
BASE = "appBYIDBASE000001"


@pytest.fixture
def base() -> SandboxBase:
    return build_base(BASE, {"Clients": 1500, "Projects": 60}, seed=11, hostile=False)


@pytest.fixture
def sandbox(base: SandboxBase) -> Iterator[Sandbox]:
    with run_sandbox([base], SandboxConfig(token=TOKEN, requests_per_second=None)) as running:
        yield running


@pytest.fixture
def extractor(sandbox: Sandbox) -> AirtableExtractor:
    return AirtableExtractor(api_key=TOKEN, base_id=BASE, api_url=sandbox.url,
                             requests_per_second=1000)


def _kinds(sandbox: Sandbox) -> dict[str, int]:
    return {k: v for k, v in sandbox.stats.by_kind.items() if v}


def test_exactly_the_ids_asked_for_one_request_per_hundred(
        extractor: AirtableExtractor, base: SandboxBase, sandbox: Sandbox) -> None:
    clients = base.table("Clients")
    assert clients is not None
    everything = {r["id"]: r for r in Api(TOKEN, endpoint_url=sandbox.url)
                  .table(BASE, clients.id).all()}
    wanted = [r["id"] for r in clients.records[::6]][:250]
    deleted = wanted[10:12]
    Api(TOKEN, endpoint_url=sandbox.url).table(BASE, clients.id).batch_delete(deleted)
    sandbox.stats.reset()
    pages = list(fetch_records(extractor, clients.id, wanted + wanted[:5]))  # duplicates too
    assert len(pages) == 3 and sum(len(p) for p in pages) == 248
    got = {r["id"]: r for page in pages for r in page}
    assert set(got) == set(wanted) - set(deleted)
    assert all(got[i] == everything[i] for i in got)
    assert _kinds(sandbox) == {"list": 3}


def test_only_some_fields_and_long_chunks_move_to_post(extractor: AirtableExtractor,
                                                      base: SandboxBase, sandbox: Sandbox) -> None:
    clients = base.table("Clients")
    assert clients is not None
    wanted = [r["id"] for r in clients.records[:450]]
    sandbox.stats.reset()
    [page] = list(fetch_records(extractor, clients.id, wanted, fields=["Related total"],
                                chunk=450))
    assert sorted(r["id"] for r in page) == sorted(wanted)
    assert all(set(r["fields"]) <= {"Related total"} for r in page)
    # 450 ids make a URL over 16,000 characters: pyairtable posts them, paging by offset.
    assert _kinds(sandbox) == {"list_post": 5}
    with pytest.raises(ValueError):
        ids_formula(["recOK000000000001", "x') OR TRUE() OR ('"])


def test_records_upserted_by_a_rollup_change_are_reread_with_the_new_rollup(
        extractor: AirtableExtractor, base: SandboxBase, sandbox: Sandbox) -> None:
    clients, projects = base.table("Clients"), base.table("Projects")
    assert clients is not None and projects is not None
    project = next(p for p in projects.records
                   if any(p["id"] in (c["fields"].get("Related") or []) for c in clients.records))
    linking = {c["id"] for c in clients.records if project["id"] in (c["fields"].get("Related") or [])}
    feed = ChangeFeed(extractor)
    handle = feed.ensure()
    Api(TOKEN, endpoint_url=sandbox.url).table(BASE, projects.id).update(
        project["id"], {"Quantity": 777_777})
    read = feed.read(handle, handle.cursor)
    upserted = read.table(clients.id).upserted_ids
    assert upserted == linking
    sandbox.stats.reset()
    reread = [r for page in fetch_records(extractor, clients.id, upserted) for r in page]
    assert {r["id"] for r in reread} == linking
    assert all(r["fields"]["Related total"] >= 777_777 for r in reread)
    assert _kinds(sandbox) == {"list": -(-len(linking) // 100)}
