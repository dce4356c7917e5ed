"""Record endpoints that write: create, update (PATCH merges, PUT replaces), upsert and delete."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sandbox import errors
from sandbox.listing import ListQuery, render
from sandbox.model import SandboxTable

MAX_RECORDS_PER_REQUEST = 10


def _shown(table: SandboxTable, record: dict[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
    query = ListQuery(by_field_id=bool(body.get("returnFieldsByFieldId")))
    return render(record, table, query)


def _batch(body: Mapping[str, Any], verb: str) -> list[Any]:
    items = body.get("records")
    if not isinstance(items, list):
        raise errors.typed(422, "INVALID_REQUEST_MISSING_FIELDS",
                           'Could not find field "records" in the request body')
    if len(items) > MAX_RECORDS_PER_REQUEST:
        raise errors.typed(422, "INVALID_RECORDS",
                           f"A maximum of {MAX_RECORDS_PER_REQUEST} records can be {verb} per "
                           f"request but you have provided {len(items)}.")
    for item in items:
        if not isinstance(item, Mapping) or not isinstance(item.get("fields"), Mapping):
            raise errors.typed(422, "INVALID_RECORDS",
                               'Each record needs a "fields" object')
    return items


def create(table: SandboxTable, body: Mapping[str, Any]) -> dict[str, Any]:
    """``POST /v0/{base}/{table}``: ``{"fields"}`` makes one record, ``{"records"}`` up to ten."""
    typecast = bool(body.get("typecast"))
    if "records" in body:
        items = _batch(body, "created")
        created = table.create_many([i["fields"] for i in items], typecast=typecast)
        return {"records": [_shown(table, r, body) for r in created]}
    if not isinstance(body.get("fields"), Mapping):
        raise errors.typed(422, "INVALID_REQUEST_MISSING_FIELDS",
                           'Could not find field "fields" in the request body')
    return _shown(table, table.create(body["fields"], typecast=typecast), body)


def update_one(table: SandboxTable, record_id: str, body: Mapping[str, Any], *,
               replace: bool) -> dict[str, Any]:
    """``PATCH``/``PUT /v0/{base}/{table}/{recordId}`` with ``{"fields"}``."""
    if not isinstance(body.get("fields"), Mapping):
        raise errors.typed(422, "INVALID_REQUEST_MISSING_FIELDS",
                           'Could not find field "fields" in the request body')
    record = table.update(record_id, body["fields"], replace=replace,
                          typecast=bool(body.get("typecast")))
    return _shown(table, record, body)


def _match(table: SandboxTable, keys: list[str], fields: Mapping[str, Any]) -> str | None:
    names = []
    for key in keys:
        target = table.field(key)
        if target is None:
            raise errors.unknown_field(key)
        names.append(target.name)
    wanted = {}
    for key, value in fields.items():
        target = table.field(key)
        if target is not None and target.name in names:
            wanted[target.name] = value
    if len(wanted) != len(names):
        raise errors.typed(422, "INVALID_REQUEST_UNKNOWN",
                           "Every record must have a value for each field in fieldsToMergeOn")
    found = [r["id"] for r in table.records
             if all(r["fields"].get(n) == v for n, v in wanted.items())]
    if len(found) > 1:
        raise errors.typed(422, "INVALID_RECORDS",
                           "Found more than one record matching fieldsToMergeOn")
    return found[0] if found else None


def update_many(table: SandboxTable, body: Mapping[str, Any], *, replace: bool) -> dict[str, Any]:
    """``PATCH``/``PUT /v0/{base}/{table}`` with ``{"records": [{"id", "fields"}]}``.

    With ``performUpsert.fieldsToMergeOn``, records without an id are matched on those fields
    and created when nothing matches; the answer then lists created and updated ids.
    """
    items = _batch(body, "updated")
    typecast = bool(body.get("typecast"))
    upsert = body.get("performUpsert")
    if not upsert:
        for item in items:
            if not isinstance(item.get("id"), str):
                raise errors.typed(422, "INVALID_RECORDS", 'Each record needs an "id"')
        updated = table.update_many([(i["id"], i["fields"]) for i in items], replace=replace,
                                    typecast=typecast)
        return {"records": [_shown(table, r, body) for r in updated]}
    keys = list(upsert.get("fieldsToMergeOn") or [])
    records, created_ids, updated_ids = [], [], []
    for item in items:
        record_id = item.get("id") or _match(table, keys, item["fields"])
        if record_id is None:
            record = table.create(item["fields"], typecast=typecast)
            created_ids.append(record["id"])
        else:
            record = table.update_many([(record_id, item["fields"])], replace=replace,
                                       typecast=typecast)[0]
            updated_ids.append(record_id)
        records.append(_shown(table, record, body))
    return {"records": records, "createdRecords": created_ids, "updatedRecords": updated_ids}


def delete_one(table: SandboxTable, record_id: str) -> dict[str, Any]:
    """``DELETE /v0/{base}/{table}/{recordId}``."""
    if not table.delete(record_id):
        raise errors.record_not_found()
    return {"id": record_id, "deleted": True}


def delete_many(table: SandboxTable, params: Mapping[str, list[str]]) -> dict[str, Any]:
    """``DELETE /v0/{base}/{table}?records[]=rec…&records[]=rec…`` (up to ten, all or none)."""
    ids = [v for key in ("records[]", "records") for v in params.get(key, [])]
    if not ids:
        raise errors.invalid_request("Invalid request: records[] is required")
    if len(ids) > MAX_RECORDS_PER_REQUEST:
        raise errors.typed(422, "INVALID_RECORDS",
                           f"A maximum of {MAX_RECORDS_PER_REQUEST} records can be deleted per "
                           f"request but you have provided {len(ids)}.")
    if any(table.get(record_id) is None for record_id in ids):
        raise errors.record_not_found()
    deleted = set(table.delete_many(ids))
    return {"records": [{"id": record_id, "deleted": record_id in deleted} for record_id in ids]}
