"""Bodies of the metadata API: list bases, a base's schema, whoami; create and rename fields."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from typing import Any

from sandbox import errors
from sandbox.base import SandboxBase
from sandbox.clock import make_id
from sandbox.listing import VIEW_NAME
from sandbox.model import COMPUTED_TYPES, SANDBOX_USER, SandboxTable

SCOPES = ["data.records:read", "data.records:write", "schema.bases:read", "schema.bases:write"]
WEBHOOK_SCOPE = "webhook:manage"
# Types whose values Airtable computes: the metadata API does not create them.
_NOT_CREATABLE = COMPUTED_TYPES | {"externalSyncSource", "aiText"}


def bases_body(bases: Iterable[SandboxBase]) -> dict[str, Any]:
    """``GET /v0/meta/bases``: every base the token sees (one page: there is no offset)."""
    return {"bases": [{"id": b.id, "name": b.name, "permissionLevel": "create"} for b in bases]}


def table_body(table: SandboxTable, *, visible_field_ids: bool) -> dict[str, Any]:
    """One table of ``GET /v0/meta/bases/{baseId}/tables``."""
    view: dict[str, Any] = {"id": table.view_id, "name": VIEW_NAME, "type": "grid"}
    if visible_field_ids:
        view["visibleFieldIds"] = [f.id for f in table.fields]
    body: dict[str, Any] = {"id": table.id, "name": table.name,
                            "primaryFieldId": table.primary_field.id}
    if table.description:
        body["description"] = table.description
    body["fields"] = [f.to_json() for f in table.fields]
    body["views"] = [view]
    return body


def tables_body(base: SandboxBase, include: list[str]) -> dict[str, Any]:
    """``GET /v0/meta/bases/{baseId}/tables``, honouring ``include[]=visibleFieldIds``."""
    visible = "visibleFieldIds" in include
    return {"tables": [table_body(t, visible_field_ids=visible) for t in base.tables]}


def whoami_body(*, webhooks: bool = True) -> dict[str, Any]:
    """``GET /v0/meta/whoami`` for the sandbox token (a personal access token has scopes)."""
    return {"id": SANDBOX_USER["id"], "scopes": SCOPES + ([WEBHOOK_SCOPE] if webhooks else [])}


def _text(body: Mapping[str, Any], key: str, *, required: bool) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise errors.typed(422, "INVALID_REQUEST_UNKNOWN", f"Invalid request: {key} must be a "
                                                           "non-empty string")
    return value


def create_field(base: SandboxBase, table: SandboxTable, body: Mapping[str, Any]) -> dict[str, Any]:
    """``POST /v0/meta/bases/{baseId}/tables/{tableId}/fields``: ``{name, type, options?,
    description?}``; answers the new field as the schema lists it.

    Raises:
        ApiError: 422 for a missing name or type, a taken name, or a computed type.
    """
    name = _text(body, "name", required=True) or ""
    kind = _text(body, "type", required=True) or ""
    if kind in _NOT_CREATABLE:
        raise errors.typed(422, "UNSUPPORTED_FIELD_TYPE_FOR_CREATE",
                           f"Field type {kind} cannot be created through the API")
    options = body.get("options")
    if options is not None and not isinstance(options, Mapping):
        raise errors.invalid_request("Invalid request: options must be an object")
    options = dict(options) if options is not None else None
    if options and isinstance(options.get("choices"), list):
        rng = random.Random(f"{table.id}:{name}")
        options["choices"] = [{"id": make_id("sel", rng), **c} if "id" not in c else dict(c)
                              for c in options["choices"] if isinstance(c, Mapping)]
    if kind == "multipleRecordLinks" and base.table((options or {}).get("linkedTableId", "")) \
            is None:
        raise errors.invalid_request("Invalid request: options.linkedTableId names no table")
    created = base.add_field(table, name, kind, options, _text(body, "description",
                                                                 required=False))
    return created.to_json()


def update_field(base: SandboxBase, table: SandboxTable, field_id: str,
                 body: Mapping[str, Any]) -> dict[str, Any]:
    """``PATCH /v0/meta/bases/{baseId}/tables/{tableId}/fields/{fieldId}``: ``{name?,
    description?}``; a rename keeps the field's id and values.

    Raises:
        ApiError: 422 for an unknown field or a taken name.
    """
    target = table.field(field_id)
    if target is None or target.id != field_id:
        raise errors.typed(422, "INVALID_FIELD_ID", f"Unknown field id {field_id}")
    name = _text(body, "name", required=False)
    if name is not None:
        target = base.rename_field(table, field_id, name)
    if "description" in body:
        target.description = _text(body, "description", required=False)
    return target.to_json()
