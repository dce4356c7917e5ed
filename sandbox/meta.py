"""Bodies of the metadata API: list bases, a base's schema, and whoami."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sandbox.listing import VIEW_NAME
from sandbox.model import SANDBOX_USER, SandboxBase, SandboxTable

SCOPES = ["data.records:read", "data.records:write", "schema.bases:read"]


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


def whoami_body() -> dict[str, Any]:
    """``GET /v0/meta/whoami`` for the sandbox token (a personal access token has scopes)."""
    return {"id": SANDBOX_USER["id"], "scopes": list(SCOPES)}
