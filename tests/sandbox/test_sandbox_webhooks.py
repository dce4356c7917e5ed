"""The sandbox's change feed, schema writes, linked values and clock, driven through unmodified
pyairtable (and raw HTTP where pyairtable has no call), the way incremental sync will drive them.
"""

from __future__ import annotations

import datetime
import email.utils
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from pyairtable import Api
from pyairtable import formulas as F
from pyairtable.models.webhook import Webhook

from sandbox import (
    CLOCK,
    Sandbox,
    SandboxBase,
    SandboxConfig,
    build_base,
    rename_and_retype,
    run_sandbox,
)
from sandbox.fields import SANDBOX_USER

TOKEN = "sandbox-token"
EVERYTHING = {"options": {
    "filters": {"dataTypes": ["tableData", "tableFields"]},
    "includes": {"includePreviousCellValues": True, "includePreviousFieldDefinitions": True},
}}


@pytest.fixture(autouse=True)
def real_time() -> Iterator[None]:
    CLOCK.reset()
    yield
    CLOCK.reset()


@pytest.fixture
def base() -> SandboxBase:
    return build_base(tables={"Clients": 30, "Projects": 20}, hostile=False)


@pytest.fixture
def sandbox(base: SandboxBase) -> Iterator[Sandbox]:
    with run_sandbox([base], SandboxConfig(token=TOKEN, requests_per_second=None)) as running:
        yield running


@pytest.fixture
def api(sandbox: Sandbox) -> Api:
    return Api(TOKEN, endpoint_url=sandbox.url, retry_strategy=None)


def _hook(api: Api, base_id: str, spec: dict[str, Any] = EVERYTHING) -> Webhook:
    created = api.base(base_id).add_webhook(None, spec)  # type: ignore[arg-type]
    return api.base(base_id).webhook(created.id)


def _raw(sandbox: Sandbox, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, f"{sandbox.url}/v0/{path}",
                            headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10, **kwargs)


def _server_time(response: requests.Response) -> datetime.datetime:
    return email.utils.parsedate_to_datetime(response.headers["Date"])


def _ids(base: SandboxBase, table: str) -> dict[str, str]:
    found = base.table(table)
    assert found is not None
    return {f.name: f.id for f in found.fields}


# -- lifecycle ------------------------------------------------------------------------------------


def test_webhook_without_url_is_listed_refreshed_and_deleted(api: Api, base: SandboxBase,
                                                             sandbox: Sandbox) -> None:
    airtable = api.base(base.id)
    created = airtable.add_webhook(None, EVERYTHING)  # type: ignore[arg-type]
    assert created.id.startswith("ach") and len(created.id) == 17
    assert len(created.mac_secret_base64) == 44
    now = _server_time(_raw(sandbox, "GET", "meta/whoami"))
    assert created.expiration_time is not None
    assert abs(created.expiration_time - now - datetime.timedelta(days=7)).total_seconds() < 5

    [hook] = airtable.webhooks()
    assert (hook.id, hook.notification_url, hook.is_hook_enabled, hook.cursor_for_next_payload,
            hook.are_notifications_enabled) == (created.id, None, True, 1, False)
    assert hook.specification.options.filters.data_types == ["tableData", "tableFields"]

    CLOCK.advance(days=2)
    hook.extend_expiration()  # POST …/refresh
    [listed] = airtable.webhooks()
    assert listed.expiration_time is not None
    assert listed.expiration_time - created.expiration_time >= datetime.timedelta(days=2)

    listed.delete()
    assert airtable.webhooks() == []
    gone = _raw(sandbox, "POST", f"bases/{base.id}/webhooks/{created.id}/refresh")
    assert gone.status_code == 404


def test_at_most_ten_hooks_per_base_and_a_specification_is_checked(api: Api, base: SandboxBase,
                                                                   sandbox: Sandbox) -> None:
    for _ in range(10):
        _hook(api, base.id)
    refused = _raw(sandbox, "POST", f"bases/{base.id}/webhooks",
                   json={"specification": EVERYTHING})
    assert refused.status_code == 422
    assert refused.json()["error"]["type"] == "TOO_MANY_WEBHOOKS"
    api.base(base.id).webhooks()[0].delete()
    bad = _raw(sandbox, "POST", f"bases/{base.id}/webhooks",
               json={"specification": {"options": {"filters": {"dataTypes": ["rows"]}}}})
    assert bad.status_code == 422
    assert "dataTypes" in bad.json()["error"]["message"]
    assert len(api.base(base.id).webhooks()) == 9


def test_a_token_without_the_webhook_scope_gets_403(base: SandboxBase) -> None:
    config = SandboxConfig(token=TOKEN, requests_per_second=None, webhooks_allowed=False)
    with run_sandbox([base], config) as running:
        api = Api(TOKEN, endpoint_url=running.url, retry_strategy=None)
        with pytest.raises(requests.HTTPError) as refused:
            api.base(base.id).add_webhook(None, EVERYTHING)  # type: ignore[arg-type]
        assert refused.value.response is not None
        assert refused.value.response.status_code == 403
        assert _raw(running, "GET", f"bases/{base.id}/webhooks").status_code == 403
        assert "webhook:manage" not in api.whoami()["scopes"]
        # Records stay readable and writable: only webhook management is refused.
        assert api.table(base.id, "Clients").first() is not None
        running.config.webhooks_allowed = True
        assert "webhook:manage" in api.whoami()["scopes"]
        assert api.base(base.id).add_webhook(None, EVERYTHING).id  # type: ignore[arg-type]


# -- payloads -------------------------------------------------------------------------------------


def test_record_writes_become_one_payload_per_transaction(api: Api, base: SandboxBase) -> None:
    hook = _hook(api, base.id)
    table = api.table(base.id, "Clients")
    clients, projects = base.table("Clients"), base.table("Projects")
    assert clients is not None and projects is not None
    ids = _ids(base, "Clients")
    project = projects.records[0]
    status = next(c for c in clients.field("Status").options["choices"]  # type: ignore
                  if c["name"] == "Done")

    created = table.create({"Name": "New client", "Status": "Done", "Related": [project["id"]],
                            "Tags": ["vip"], "Quantity": 3})
    table.update(created["id"], {"Quantity": 4, "Name": "Renamed client"})
    linked = {i for p in projects.records for i in p["fields"].get("Related") or []}
    doomed = next(c["id"] for c in clients.records if c["id"] not in linked)
    table.batch_delete([created["id"], doomed])

    payloads = list(hook.payloads())
    assert [p.cursor for p in payloads] == [1, 2, 3]
    numbers = [p.base_transaction_number for p in payloads]
    assert numbers == sorted(numbers) and len(set(numbers)) == 3
    for p in payloads:
        assert p.payload_format == "v0"
        assert p.action_metadata is not None and p.action_metadata.source == "publicApi"
        assert list(p.changed_tables_by_id) == [clients.id]

    made = payloads[0].changed_tables_by_id[clients.id].created_records_by_id[created["id"]]
    cells = made.cell_values_by_field_id
    assert cells[ids["Name"]] == "New client"
    assert cells[ids["Status"]] == {"id": status["id"], "name": "Done", "color": status["color"]}
    assert cells[ids["Tags"]][0]["name"] == "vip" and cells[ids["Tags"]][0]["id"].startswith("sel")
    assert cells[ids["Related"]] == [{"id": project["id"],
                                      "name": project["fields"].get("Name", "")}]
    assert cells[ids["Related count"]] == 1
    assert cells[ids["Related total"]] == project["fields"].get("Quantity", 0)
    lookup = cells.get(ids["Related names"])
    if "Name" in project["fields"]:
        assert lookup == {"valuesByLinkedRecordId": {project["id"]: [project["fields"]["Name"]]},
                          "linkedRecordIds": [project["id"]]}

    change = payloads[1].changed_tables_by_id[clients.id].changed_records_by_id[created["id"]]
    assert change.current.cell_values_by_field_id[ids["Quantity"]] == 4
    assert change.current.cell_values_by_field_id[ids["Name"]] == "Renamed client"
    assert ids["Last modified"] in change.current.cell_values_by_field_id
    assert change.previous is not None
    assert change.previous.cell_values_by_field_id[ids["Quantity"]] == 3
    assert ids["Status"] not in change.current.cell_values_by_field_id

    gone = payloads[2].changed_tables_by_id[clients.id].destroyed_record_ids
    assert sorted(gone) == sorted([created["id"], doomed])
    assert api.base(base.id).webhooks()[0].cursor_for_next_payload == 4
    assert list(hook.payloads(cursor=3))[0].base_transaction_number == numbers[2]


def test_a_cleared_cell_is_null_and_collaborators_say_their_permission_level(
        api: Api, base: SandboxBase) -> None:
    """Airtable's "Cell value V2 or null by fieldId": a changed record's ``current`` holds its
    changed cells only, a cleared one as null; collaborators carry ``permissionLevel`` only in
    webhooks responses."""
    hook = _hook(api, base.id)
    table = api.table(base.id, "Clients")
    ids = _ids(base, "Clients")
    record = table.create({"Name": "Someone", "Notes": "to be cleared", "Quantity": 1})
    table.update(record["id"], {"Notes": None, "Owner": {"id": SANDBOX_USER["id"]}})
    listed = table.get(record["id"])["fields"]
    change = list(hook.payloads())[1].changed_tables_by_id[base.table("Clients").id]  # type: ignore[union-attr]
    cells = change.changed_records_by_id[record["id"]].current.cell_values_by_field_id
    assert ids["Notes"] in cells and cells[ids["Notes"]] is None and "Notes" not in listed
    assert ids["Quantity"] not in cells and ids["Name"] not in cells
    owner = cells[ids["Owner"]]
    assert owner["permissionLevel"] == "create"
    assert {k: v for k, v in owner.items() if k != "permissionLevel"} == listed["Owner"]


def test_an_upsert_that_creates_and_updates_is_one_transaction(api: Api,
                                                              base: SandboxBase) -> None:
    hook = _hook(api, base.id)
    table = api.table(base.id, "Projects")
    existing = table.first(formula=F.NOT(F.EQ(F.Field("Name"), "")))
    assert existing is not None
    answer = table.batch_upsert([{"fields": {"Name": existing["fields"]["Name"], "Quantity": 5}},
                                 {"fields": {"Name": "Upserted project", "Quantity": 6}}],
                                key_fields=["Name"])
    [payload] = list(hook.payloads())
    projects = payload.changed_tables_by_id[base.table("Projects").id]  # type: ignore[union-attr]
    assert set(projects.created_records_by_id) == set(answer["createdRecords"])
    assert set(projects.changed_records_by_id) == {existing["id"]} == set(answer["updatedRecords"])


def test_payload_pages_hold_at_most_fifty_and_say_might_have_more(api: Api, base: SandboxBase,
                                                                  sandbox: Sandbox) -> None:
    hook = _hook(api, base.id)
    table = api.table(base.id, "Projects")
    target = table.first()
    assert target is not None
    for i in range(55):
        table.update(target["id"], {"Quantity": i + 1000})
    path = f"bases/{base.id}/webhooks/{hook.id}/payloads"
    first = _raw(sandbox, "GET", path).json()
    assert (len(first["payloads"]), first["cursor"], first["mightHaveMore"]) == (50, 51, True)
    second = _raw(sandbox, "GET", path, params={"cursor": 51}).json()
    assert (len(second["payloads"]), second["cursor"], second["mightHaveMore"]) == (5, 56, False)
    small = _raw(sandbox, "GET", path, params={"cursor": 10, "limit": 3}).json()
    assert (len(small["payloads"]), small["cursor"], small["mightHaveMore"]) == (3, 13, True)
    caught_up = _raw(sandbox, "GET", path, params={"cursor": 56}).json()
    assert caught_up == {"payloads": [], "cursor": 56, "mightHaveMore": False}
    assert _raw(sandbox, "GET", path, params={"limit": 51}).status_code == 422
    assert _raw(sandbox, "GET", path, params={"cursor": 0}).status_code == 422
    assert [p.cursor for p in hook.payloads()] == list(range(1, 56))
    values = [next(iter(p.changed_tables_by_id.values())).changed_records_by_id[target["id"]]
              .current.cell_values_by_field_id[_ids(base, "Projects")["Quantity"]]
              for p in hook.payloads(cursor=50)]
    assert values == [1049, 1050, 1051, 1052, 1053, 1054]


def test_specification_filters_scope_change_types_and_watched_fields(api: Api,
                                                                     base: SandboxBase) -> None:
    clients, projects = base.table("Clients"), base.table("Projects")
    assert clients is not None and projects is not None
    ids = _ids(base, "Projects")
    scoped = _hook(api, base.id, {"options": {"filters": {
        "dataTypes": ["tableData"], "recordChangeScope": projects.id,
        "changeTypes": ["update"], "watchDataInFieldIds": [ids["Notes"]]}}})
    schema_only = _hook(api, base.id, {"options": {"filters": {"dataTypes": ["tableFields"]}}})
    target = projects.records[0]["id"]
    table = api.table(base.id, "Projects")
    table.update(target, {"Quantity": 77})  # not watched
    table.update(target, {"Notes": "watched"})
    table.create({"Name": "not an update"})
    api.table(base.id, "Clients").update(clients.records[0]["id"], {"Notes": "other table"})
    [only] = list(scoped.payloads())
    change = only.changed_tables_by_id[projects.id].changed_records_by_id[target]
    assert change.current.cell_values_by_field_id[ids["Notes"]] == "watched"
    assert change.previous is None and change.unchanged is None
    assert list(schema_only.payloads()) == []


# -- linked values --------------------------------------------------------------------------------


def test_lookups_rollups_and_counts_follow_linked_records_without_moving_modified_time(
        api: Api, base: SandboxBase) -> None:
    clients, projects = base.table("Clients"), base.table("Projects")
    assert clients is not None and projects is not None
    project = next(p for p in projects.records
                   if sum(p["id"] in (c["fields"].get("Related") or []) for c in clients.records) >= 1)
    linking = [c["id"] for c in clients.records if project["id"] in (c["fields"].get("Related") or [])]
    before = {r["id"]: r["fields"] for r in api.table(base.id, "Clients").all()}
    hook = _hook(api, base.id)
    newest = max(r["fields"]["Last modified"] for t in (clients, projects) for r in t.records)

    api.table(base.id, "Projects").update(project["id"], {"Quantity": 100_000, "Name": "Zeta"})

    after = {r["id"]: r["fields"] for r in api.table(base.id, "Clients").all()}
    for client_id in linking:
        links = after[client_id]["Related"]
        expected = sum((projects.get(i) or {"fields": {}})["fields"].get("Quantity", 0)
                       for i in links)
        assert after[client_id]["Related total"] == expected >= 100_000
        assert "Zeta" in after[client_id]["Related names"]
        assert after[client_id]["Last modified"] == before[client_id]["Last modified"]
    assert {k: v for k, v in after.items() if k not in linking} == \
        {k: v for k, v in before.items() if k not in linking}
    # LAST_MODIFIED_TIME() in filterByFormula moves for the written record only.
    since = F.IS_AFTER(F.LAST_MODIFIED_TIME(), F.DATETIME_PARSE(newest))
    assert api.table(base.id, "Clients").all(formula=since) == []
    assert [r["id"] for r in api.table(base.id, "Projects").all(formula=since)] == [project["id"]]

    [payload] = list(hook.payloads())
    changed = payload.changed_tables_by_id
    assert set(changed[projects.id].changed_records_by_id) == {project["id"]}
    followed = changed[clients.id].changed_records_by_id
    assert set(followed) == set(linking)
    ids = _ids(base, "Clients")
    for client_id in linking:
        cells = followed[client_id].current.cell_values_by_field_id
        assert ids["Related total"] in cells and ids["Last modified"] not in cells

    api.table(base.id, "Projects").delete(project["id"])
    again = {r["id"]: r["fields"] for r in api.table(base.id, "Clients").all()}
    for client_id in linking:
        assert project["id"] not in again[client_id].get("Related", [])
        assert again[client_id]["Related count"] == len(again[client_id].get("Related", []))
        assert "Zeta" not in again[client_id].get("Related names", [])
        assert again[client_id]["Last modified"] == before[client_id]["Last modified"]


# -- schema writes --------------------------------------------------------------------------------


def test_fields_created_and_renamed_through_the_metadata_api(api: Api, base: SandboxBase,
                                                             sandbox: Sandbox) -> None:
    hook = _hook(api, base.id)
    table = api.table(base.id, "Clients")
    region = table.create_field("Region", "singleSelect",
                                options={"choices": [{"name": "EMEA"}, {"name": "APAC"}]})
    assert region.id.startswith("fld") and region.name == "Region"
    target = table.first()
    assert target is not None
    table.update(target["id"], {"Region": "EMEA"})

    field = table.schema(force=True).field(region.id)
    field.name = "Sales region"
    field.save()  # PATCH /v0/meta/bases/{base}/tables/{table}/fields/{field}
    assert [f.name for f in table.schema(force=True).fields].count("Sales region") == 1
    assert table.get(target["id"])["fields"]["Sales region"] == "EMEA"
    assert "Region" not in table.get(target["id"])["fields"]

    duplicate = _raw(sandbox, "POST", f"meta/bases/{base.id}/tables/Clients/fields",
                     json={"name": "name", "type": "singleLineText"})
    assert duplicate.status_code == 422
    computed = _raw(sandbox, "POST", f"meta/bases/{base.id}/tables/Clients/fields",
                    json={"name": "Sum", "type": "rollup"})
    assert computed.status_code == 422

    created, written, renamed = list(hook.payloads())
    clients_id = base.table("Clients").id  # type: ignore[union-attr]
    assert created.changed_tables_by_id[clients_id].created_fields_by_id[region.id].model_dump() \
        == {"name": "Region", "type": "singleSelect"}
    cell = written.changed_tables_by_id[clients_id].changed_records_by_id[target["id"]] \
        .current.cell_values_by_field_id[region.id]
    assert cell["name"] == "EMEA" and cell["id"].startswith("sel")
    change = renamed.changed_tables_by_id[clients_id].changed_fields_by_id[region.id]
    assert change.current.name == "Sales region"
    assert change.previous is not None and change.previous.name == "Region"


def test_a_field_deleted_in_the_ui_and_one_retyped_show_up_as_field_changes(
        api: Api, base: SandboxBase) -> None:
    hook = _hook(api, base.id)
    projects = base.table("Projects")
    assert projects is not None
    ids = _ids(base, "Projects")
    base.delete_field(projects, ids["Notes"])
    rename_and_retype(base, "Projects", "Quantity", name="Amount", type="singleLineText")
    deleted, retyped = list(hook.payloads())
    assert deleted.changed_tables_by_id[projects.id].destroyed_field_ids == [ids["Notes"]]
    assert deleted.action_metadata is not None and deleted.action_metadata.source == "client"
    change = retyped.changed_tables_by_id[projects.id].changed_fields_by_id[ids["Quantity"]]
    assert change.current.model_dump() == {"name": "Amount", "type": "singleLineText"}
    assert change.previous is not None and change.previous.name == "Quantity"
    assert all("Notes" not in r["fields"] for r in api.table(base.id, "Projects").all())
    assert {f.name for f in api.table(base.id, "Projects").schema().fields} >= {"Amount"}


# -- time -----------------------------------------------------------------------------------------


def test_date_header_comes_from_the_sandbox_clock(sandbox: Sandbox, base: SandboxBase) -> None:
    first = _server_time(_raw(sandbox, "GET", f"{base.id}/Clients", params={"pageSize": 1}))
    assert abs((first - datetime.datetime.now(datetime.UTC)).total_seconds()) < 5
    sandbox.clock.advance(days=2)
    for response in (_raw(sandbox, "GET", f"{base.id}/Clients", params={"pageSize": 1}),
                     _raw(sandbox, "GET", "meta/whoami"), _raw(sandbox, "GET", "v1/nothing"),
                     requests.get(f"{sandbox.url}/v0/meta/whoami", timeout=10)):
        moved = _server_time(response) - first
        assert datetime.timedelta(days=2) <= moved < datetime.timedelta(days=2, seconds=5)


def test_hooks_expire_after_seven_days_unless_refreshed_or_read(api: Api, base: SandboxBase,
                                                                sandbox: Sandbox) -> None:
    hook = _hook(api, base.id)
    table = api.table(base.id, "Projects")
    target = table.first()
    assert target is not None
    CLOCK.advance(days=6)
    table.update(target["id"], {"Quantity": 1})  # payload 1, day 6
    assert len(list(hook.payloads())) == 1  # reading payloads extends the life to day 13
    CLOCK.advance(days=5)
    table.update(target["id"], {"Quantity": 2})  # payload 2, day 11
    CLOCK.advance(days=1)
    [alive] = api.base(base.id).webhooks()
    assert alive.is_hook_enabled
    CLOCK.advance(days=1, seconds=1)
    [expired] = api.base(base.id).webhooks()
    assert not expired.is_hook_enabled and expired.cursor_for_next_payload == 3
    table.update(target["id"], {"Quantity": 3})
    assert api.base(base.id).webhooks()[0].cursor_for_next_payload == 3  # records nothing
    refused = _raw(sandbox, "POST", f"bases/{base.id}/webhooks/{hook.id}/refresh")
    assert refused.status_code == 422
    # Still readable for 7 more days (payload 1, 7 days old, is past retention already).
    [kept] = list(hook.payloads(cursor=2))
    quantity = _ids(base, "Projects")["Quantity"]
    assert next(iter(kept.changed_tables_by_id.values())).changed_records_by_id[target["id"]] \
        .current.cell_values_by_field_id[quantity] == 2
    assert not api.base(base.id).webhooks()[0].is_hook_enabled  # reading did not revive it
    CLOCK.advance(days=7)
    assert api.base(base.id).webhooks() == []


def test_payloads_past_retention_are_dropped_and_a_client_can_tell(api: Api, base: SandboxBase,
                                                                   sandbox: Sandbox) -> None:
    hook = _hook(api, base.id)
    table = api.table(base.id, "Projects")
    target = table.first()
    assert target is not None
    table.update(target["id"], {"Quantity": 1})  # payload 1
    CLOCK.advance(days=4)
    hook.extend_expiration()
    table.update(target["id"], {"Quantity": 2})  # payload 2
    CLOCK.advance(days=4)  # payload 1 is 8 days old now, the hook lives until day 11
    path = f"bases/{base.id}/webhooks/{hook.id}/payloads"
    answer = _raw(sandbox, "GET", path, params={"cursor": 1}).json()
    assert len(answer["payloads"]) == 1 and answer["cursor"] == 3
    first_returned = answer["cursor"] - len(answer["payloads"])
    assert first_returned == 2 > 1  # the client asked for 1: payload 1 is lost
    CLOCK.advance(days=4)
    empty = _raw(sandbox, "GET", path, params={"cursor": 2}).json()
    assert empty == {"payloads": [], "cursor": 2, "mightHaveMore": False}
    assert api.base(base.id).webhooks()[0].cursor_for_next_payload == 3 > 2  # lost again
