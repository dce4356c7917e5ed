"""Webhook payload cells as list-records cells: the one rule that says when a payload's value can
stand in for listing the record again, and what it is then.

What Airtable documents (read 2026-11-27):

- ``changedRecordsById.{rec}.current.cellValuesByFieldId`` holds the cells that changed, and
  only those ("By default, the payloads only contain the data that changed"; ``previous`` and
  ``unchanged`` only when the specification's ``includes`` ask). Each value is a "Cell value V2
  or null": a cleared cell is present, as ``null``.
  https://airtable.com/developers/web/api/model/webhooks-changed-record ,
  https://airtable.com/developers/web/api/model/webhooks-table-changed ,
  https://airtable.com/developers/web/api/model/webhooks-specification
- ``createdRecordsById.{rec}`` holds ``createdTime`` and ``cellValuesByFieldId`` (Conveyor lists
  created records by id anyway: they have no row to update).
- The V2 ("webhooks") cell format differs from list-records (V1) for some types
  (https://airtable.com/developers/web/api/field-model): single select ``{id, name, color?}``
  (V1: the name), multiple selects a list of those, links ``[{id, name}]`` (V1: the ids), lookups
  ``{valuesByLinkedRecordId: {rec: [values]}, linkedRecordIds: [...]}`` (V1: the values, flat,
  in link order), sync source ``{id, name, color?}`` (V1: the name); collaborators add
  ``permissionLevel`` and ``profilePicUrl`` "only in a webhooks response". A rollup's V2 format
  is documented as ``any`` (V1: ``string | number | true``). Formulas, counts, numbers, text,
  dates, attachments, buttons, barcodes have one documented format for both.
- Whether computed cells (formula, rollup, lookup, count) that moved because another record
  changed are reported is not spelled out by Airtable's reference; third-party tools built on
  the payloads report them (https://docs.simplified-webhooks.com/field-types), and Conveyor's
  sandbox does. Conveyor reads whatever ``changedRecordsById`` carries.

So a payload value is used only where the V1 value follows from it without doubt; anything
else (an unknown type, a rollup or lookup holding objects, a shape the reference does not
give) is ``AMBIGUOUS``, and the record is listed by id as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from app.contracts import Column, TableSchema
from app.extractors.changefold import TableChanges

#: A payload value whose list-records value cannot be told for sure.
AMBIGUOUS: Final = object()

#: Types whose V2 cell is documented identical to the V1 (list-records) cell.
_SAME: Final = frozenset({
    "singleLineText", "multilineText", "richText", "email", "url", "phoneNumber", "number",
    "percent", "currency", "duration", "rating", "autoNumber", "count", "date", "dateTime",
    "createdTime", "lastModifiedTime", "checkbox", "formula", "barcode", "button",
    "multipleAttachments", "aiText"})
#: Types whose value is computed as it is (a formula may give "" or false): kept as given.
_COMPUTED_VALUES: Final = frozenset({"formula", "rollup"})
_COLLABORATORS: Final = frozenset({"singleCollaborator", "createdBy", "lastModifiedBy"})
#: Keys a collaborator carries only in a webhooks response.
_WEBHOOK_ONLY: Final = ("permissionLevel", "profilePicUrl")


def listed_value(field_type: str | None, cell: Any) -> Any:
    """The list-records value of a payload ``cell`` of a field of ``field_type``: None for a
    cleared cell (list-records omits empty cells: no text, no item, an unticked checkbox),
    ``AMBIGUOUS`` when it cannot be told."""
    value = _converted(field_type, cell)
    if value is AMBIGUOUS or field_type in _COMPUTED_VALUES:
        return value
    if value is False or (isinstance(value, str | list) and not value):
        return None
    return value


def _converted(field_type: str | None, cell: Any) -> Any:
    if cell is None:
        return None
    if field_type in _SAME:
        return cell
    if field_type in ("singleSelect", "externalSyncSource"):
        return _name(cell)
    if field_type == "multipleSelects":
        return _each(cell, _name)
    if field_type == "multipleRecordLinks":
        return _each(cell, _record_id)
    if field_type in _COLLABORATORS:
        return _collaborator(cell)
    if field_type == "multipleCollaborators":
        return _each(cell, _collaborator)
    if field_type == "multipleLookupValues":
        return _lookup(cell)
    if field_type == "rollup":
        # V2 is documented as ``any``: only the V1 shapes are taken at their word.
        return cell if isinstance(cell, str | int | float | bool) else AMBIGUOUS
    return AMBIGUOUS


def listed_fields(types: Mapping[str, tuple[str, str | None]],
                  cells: Mapping[str, Any]) -> dict[str, Any] | None:
    """A record's changed ``cells`` (field id → V2 value) as list-records fields (name → value,
    None for a cleared cell), or None when any cell is of a field ``types`` (field id →
    (name, type)) does not know or is ``AMBIGUOUS``."""
    fields: dict[str, Any] = {}
    for field_id, cell in cells.items():
        known = types.get(field_id)
        if known is None:
            return None
        value = listed_value(known[1], cell)
        if value is AMBIGUOUS:
            return None
        fields[known[0]] = value
    return fields


def _each(cell: Any, convert: Any) -> Any:
    if not isinstance(cell, list):
        return AMBIGUOUS
    values = [convert(item) for item in cell]
    return AMBIGUOUS if any(v is AMBIGUOUS for v in values) else values


def _name(cell: Any) -> Any:
    if isinstance(cell, Mapping) and isinstance(cell.get("name"), str):
        return cell["name"]
    return AMBIGUOUS


def _record_id(cell: Any) -> Any:
    if isinstance(cell, Mapping) and isinstance(cell.get("id"), str):
        return cell["id"]
    return AMBIGUOUS


def _collaborator(cell: Any) -> Any:
    if not isinstance(cell, Mapping) or not isinstance(cell.get("id"), str):
        return AMBIGUOUS
    return {k: v for k, v in cell.items() if k not in _WEBHOOK_ONLY}


def _lookup(cell: Any) -> Any:
    if not isinstance(cell, Mapping):
        return AMBIGUOUS
    ids, by_record = cell.get("linkedRecordIds"), cell.get("valuesByLinkedRecordId")
    if not isinstance(ids, list) or not isinstance(by_record, Mapping):
        return AMBIGUOUS
    values: list[Any] = []
    for record_id in ids:
        looked_up = by_record.get(record_id, [])
        if not isinstance(looked_up, list):
            return AMBIGUOUS
        # The looked-up cells' own V2 format is not given: plain values only.
        if not all(isinstance(v, str | int | float | bool) for v in looked_up):
            return AMBIGUOUS
        values.extend(looked_up)
    # List-records omits an empty cell: a lookup of nothing is no value.
    return values or None


def field_types(schema: TableSchema | None = None,
                columns: Iterable[Column] = ()) -> dict[str, tuple[str, str | None]]:
    """field id → (name, type) of a table, from its source schema or, where a step has only
    the warehouse target, from the target's columns (the catalog keys them by field id)."""
    if schema is not None:
        return {f.field_id: (f.name, f.type) for f in schema.fields if f.field_id}
    return {c.field_key: (c.field_name, c.source_type) for c in columns}


def payload_values(types: Mapping[str, tuple[str, str | None]],
                   changes: TableChanges) -> dict[str, dict[str, Any]]:
    """record id → its changed fields as list-records fields, for the records of ``changes``
    changed (not created) in the window whose every changed cell is of a field ``types``
    (``field_types``) knows (and that was not retyped in the window: its earlier cells have the
    old type's shape) and reads without doubt. The others are not keys: they must be listed
    by id."""
    retyped = set(changes.fields_changed_type)
    known = {k: v for k, v in types.items() if k not in retyped}
    values: dict[str, dict[str, Any]] = {}
    for record_id, cells in changes.changed_cells.items():
        if record_id not in changes.upserted_ids or record_id in changes.created_ids:
            continue
        fields = listed_fields(known, cells)
        if fields:  # no cell at all says nothing of what changed
            values[record_id] = fields
    return values
