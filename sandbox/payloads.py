"""Webhook payloads: one transaction as one hook's specification asks to see it (format v0).

Cell values use Airtable's webhook ("V2") cell format where it differs from list-records
(https://airtable.com/developers/web/api/field-model): single and multiple selects are
``{id, name, color}`` objects, links ``[{id, name}]`` (the linked record's primary field as
text), lookups ``{valuesByLinkedRecordId, linkedRecordIds}``, and collaborators carry
``permissionLevel``, which Airtable includes only in webhooks responses. Every other type
(rollups, formulas, attachments, …) has the list-records shape. A changed record's
``current`` holds the changed cells only, a cleared one as null.
A ``previous`` lookup is rebuilt from the previous links and the linked records as they are now.
"""

from __future__ import annotations

from typing import Any

from sandbox.base import SandboxBase, TableChanges, Transaction
from sandbox.clock import iso_from_ms
from sandbox.computed import link_field_id, linked_field_id
from sandbox.fields import SANDBOX_USER, SandboxField
from sandbox.formula_functions import to_text
from sandbox.model import Record, SandboxTable

DATA_TYPES = frozenset({"tableData", "tableFields", "tableMetadata"})
CHANGE_TYPES = ("add", "remove", "update")


def _choice(field: SandboxField, name: Any) -> Any:
    for choice in (field.options or {}).get("choices", []):
        if choice.get("name") == name:
            return {k: choice[k] for k in ("id", "name", "color") if k in choice}
    return {"name": name}


def _collaborator(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    return {**value, "permissionLevel": value.get("permissionLevel", "create")}


def _primary_text(base: SandboxBase, table_id: str | None, record_id: str) -> str:
    table = base.table(table_id or "")
    record = table.get(record_id) if table is not None else None
    if table is None or record is None:
        return ""
    return to_text(record["fields"].get(table.primary_field.name))


def cell_v2(base: SandboxBase, table: SandboxTable, field: SandboxField, value: Any,
            fields: dict[str, Any]) -> Any:
    """``value`` of ``field`` in the webhook cell format; ``fields`` is the whole record."""
    if value is None:
        return None
    kind, options = field.type, field.options or {}
    if kind == "singleSelect":
        return _choice(field, value)
    if kind == "multipleSelects":
        return [_choice(field, name) for name in value]
    if kind == "multipleRecordLinks":
        return [{"id": i, "name": _primary_text(base, options.get("linkedTableId"), i)}
                for i in value]
    if kind in ("singleCollaborator", "createdBy", "lastModifiedBy"):
        return _collaborator(value)
    if kind == "multipleCollaborators":
        return [_collaborator(v) for v in value]
    if kind == "multipleLookupValues":
        link = table.field(link_field_id(field) or "")
        if link is None:
            return value
        source = base.table((link.options or {}).get("linkedTableId") or "")
        read = source.field(linked_field_id(field) or "") if source is not None else None
        links = list(fields.get(link.name) or [])
        by_record: dict[str, list[Any]] = {}
        for record_id in links:
            linked = source.get(record_id) if source is not None else None
            cell = linked["fields"].get(read.name) if linked is not None and read else None
            by_record[record_id] = cell if isinstance(cell, list) else \
                ([] if cell is None else [cell])
        return {"valuesByLinkedRecordId": by_record, "linkedRecordIds": links}
    return value


def _cells(base: SandboxBase, table: SandboxTable, record: Record,
           only: set[str] | None = None) -> dict[str, Any]:
    cells = {}
    for field in table.fields:
        if field.name in record["fields"] and (only is None or field.id in only):
            cells[field.id] = cell_v2(base, table, field, record["fields"][field.name],
                                      record["fields"])
    return cells


def _changed_ids(table: SandboxTable, old: Record, new: Record) -> list[SandboxField]:
    return [f for f in table.fields
            if old["fields"].get(f.name) != new["fields"].get(f.name)]


class _Spec:
    """A hook's specification, read once."""

    def __init__(self, spec: dict[str, Any]) -> None:
        options = spec.get("options") or {}
        filters = options.get("filters") or {}
        includes = options.get("includes") or {}
        self.data_types = set(filters.get("dataTypes") or [])
        self.scope = filters.get("recordChangeScope")
        self.change_types = set(filters.get("changeTypes") or CHANGE_TYPES)
        self.sources = set(filters.get("fromSources") or [])
        self.watch_data = set(filters.get("watchDataInFieldIds") or [])
        self.watch_schema = set(filters.get("watchSchemasOfFieldIds") or [])
        self.values_in: Any = includes.get("includeCellValuesInFieldIds")
        self.previous_values = bool(includes.get("includePreviousCellValues"))
        self.previous_fields = bool(includes.get("includePreviousFieldDefinitions"))

    def in_scope(self, table: SandboxTable) -> bool:
        return self.scope in (None, table.id, table.view_id)

    def included(self, table: SandboxTable) -> set[str]:
        if self.values_in == "all":
            return {f.id for f in table.fields}
        return set(self.values_in or [])


def _records(base: SandboxBase, table: SandboxTable, changes: TableChanges,
             spec: _Spec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    watched = spec.watch_data
    if "add" in spec.change_types:
        created = {}
        for record_id, record in changes.created.items():
            cells = _cells(base, table, record)
            if not watched or watched & set(cells):
                created[record_id] = {"createdTime": record["createdTime"],
                                      "cellValuesByFieldId": cells}
        if created:
            out["createdRecordsById"] = created
    if "update" in spec.change_types:
        changed = {}
        for record_id, (old, new) in changes.changed.items():
            fields = _changed_ids(table, old, new)
            ids = {f.id for f in fields}
            if not fields or (watched and not watched & ids):
                continue
            entry: dict[str, Any] = {"current": {"cellValuesByFieldId": {
                f.id: cell_v2(base, table, f, new["fields"].get(f.name), new["fields"])
                for f in fields}}}
            if spec.previous_values:
                entry["previous"] = {"cellValuesByFieldId": {
                    f.id: cell_v2(base, table, f, old["fields"].get(f.name), old["fields"])
                    for f in fields}}
            unchanged = _cells(base, table, new, spec.included(table) - ids)
            if unchanged:
                entry["unchanged"] = {"cellValuesByFieldId": unchanged}
            changed[record_id] = entry
        if changed:
            out["changedRecordsById"] = changed
    if "remove" in spec.change_types and changes.destroyed and not watched:
        out["destroyedRecordIds"] = list(changes.destroyed)
    return out


def _fields(changes: TableChanges, spec: _Spec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    watched = spec.watch_schema
    if "add" in spec.change_types and changes.created_fields:
        out["createdFieldsById"] = {f.id: {"name": f.name, "type": f.type}
                                    for f in changes.created_fields}
    if "update" in spec.change_types:
        changed = {}
        for before, after in changes.changed_fields:
            if watched and after.id not in watched:
                continue
            current = {k: getattr(after, k) for k in ("name", "type")
                       if getattr(before, k) != getattr(after, k)}
            entry: dict[str, Any] = {"current": current}
            if spec.previous_fields:
                entry["previous"] = {k: getattr(before, k) for k in current}
            changed[after.id] = entry
        if changed:
            out["changedFieldsById"] = changed
    if "remove" in spec.change_types and changes.destroyed_field_ids:
        out["destroyedFieldIds"] = [i for i in changes.destroyed_field_ids
                                    if not watched or i in watched]
    return {k: v for k, v in out.items() if v}


def payload(base: SandboxBase, transaction: Transaction,
            spec: dict[str, Any]) -> dict[str, Any] | None:
    """The payload a hook with ``spec`` records for ``transaction``, or None if none."""
    wanted = _Spec(spec)
    if wanted.sources and transaction.source not in wanted.sources:
        return None
    tables: dict[str, Any] = {}
    for table_id, changes in transaction.tables.items():
        table = base.table(table_id)
        if table is None or not wanted.in_scope(table):
            continue
        out: dict[str, Any] = {}
        if "tableData" in wanted.data_types:
            out.update(_records(base, table, changes, wanted))
        if "tableFields" in wanted.data_types:
            out.update(_fields(changes, wanted))
        if out:
            tables[table_id] = out
    if not tables:
        return None
    user = {**SANDBOX_USER, "permissionLevel": "create"}
    return {
        "timestamp": iso_from_ms(transaction.timestamp_ms),
        "baseTransactionNumber": transaction.number,
        "actionMetadata": {"source": transaction.source, "sourceMetadata": {"user": user}},
        "payloadFormat": "v0",
        "changedTablesById": tables,
    }
