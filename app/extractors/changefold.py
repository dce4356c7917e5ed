"""Folding Airtable webhook payloads into per-table changes: which records to re-read, which to
delete, which fields appeared, were renamed, retyped or destroyed.

Payloads are folded as the raw JSON the API returns (``payloadFormat`` ``v0``), in cursor order,
so a later payload wins over an earlier one:

- a record created or changed is *upserted*; the cells a record's changes carried
  (``current.cellValuesByFieldId``: the changed cells only, a cleared one as null) are merged
  per field, later over earlier, into ``changed_cells`` for a record only changed in the
  window (a created one is listed whole by id; ``app.sync.webhook`` decides which changed
  records the cells can stand in for, ``app.extractors.webhook_cells`` what they mean);
- a record destroyed is *destroyed* and leaves the upserted set, whatever happened to it before
  in the window (created then destroyed, changed then destroyed: only destroyed);
- a field created then renamed or retyped in the window is only *created*, with its last name
  and type; a field destroyed in the window is only *destroyed*.

Cells of computed fields (lookups, rollups, counts, formulas) that moved because a linked record
changed arrive in ``changedRecordsById`` of the linking table, so those records are upserted too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FieldState:
    """A field's name and type as the payloads last showed them (None: not shown)."""

    name: str | None
    type: str | None


@dataclass(frozen=True)
class TableChanges:
    """What changed in one table over a window of payloads.

    Attributes:
        table_id: the table (``tbl…``).
        upserted_ids: records created or changed (values included computed cells); re-read them.
        created_ids: the subset of ``upserted_ids`` created in the window (for the run report).
        destroyed_ids: records destroyed; never also in ``upserted_ids``.
        fields_created: new fields, by id, with their last name and type.
        fields_renamed: field id → new name, for fields that existed before the window.
        fields_changed_type: field id → new type, for fields that existed before the window.
        fields_destroyed: fields destroyed (their column is kept and retired by the sync).
        changed_cells: record id → {field id: webhook cell value} for records changed, not
            created, in the window whose every change carried its cells.
    """

    table_id: str
    upserted_ids: frozenset[str] = frozenset()
    created_ids: frozenset[str] = frozenset()
    destroyed_ids: frozenset[str] = frozenset()
    fields_created: Mapping[str, FieldState] = field(default_factory=dict)
    fields_renamed: Mapping[str, str] = field(default_factory=dict)
    fields_changed_type: Mapping[str, str] = field(default_factory=dict)
    fields_destroyed: frozenset[str] = frozenset()
    changed_cells: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """Whether nothing changed in this table."""
        return not (self.upserted_ids or self.destroyed_ids or self.schema_changed)

    @property
    def updated_ids(self) -> frozenset[str]:
        """Records changed but not created in the window (for the run report)."""
        return self.upserted_ids - self.created_ids

    @property
    def schema_changed(self) -> bool:
        """Whether any field was created, renamed, retyped or destroyed."""
        return bool(self.fields_created or self.fields_renamed or self.fields_changed_type
                    or self.fields_destroyed)

    @property
    def backfill_field_ids(self) -> frozenset[str]:
        """Fields whose every cell may have changed without a record change being reported:
        new fields (a new formula or lookup has values at once) and retyped ones (converted)."""
        return frozenset(self.fields_created) | frozenset(self.fields_changed_type)


@dataclass
class _Table:
    """The mutable fold of one table, frozen into ``TableChanges`` at the end."""

    upserted: set[str] = field(default_factory=set)
    created: set[str] = field(default_factory=set)
    destroyed: set[str] = field(default_factory=set)
    fields_created: dict[str, FieldState] = field(default_factory=dict)
    renamed: dict[str, str] = field(default_factory=dict)
    retyped: dict[str, str] = field(default_factory=dict)
    fields_destroyed: set[str] = field(default_factory=set)
    cells: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Changed records one of whose changes came without readable cells.
    cellless: set[str] = field(default_factory=set)

    def upsert(self, record_id: str, *, created: bool = False) -> None:
        self.destroyed.discard(record_id)  # ids are never reused; kept for a consistent fold
        self.upserted.add(record_id)
        if created:
            self.created.add(record_id)

    def change(self, record_id: str, cells: Any) -> None:
        self.upsert(record_id)
        if isinstance(cells, Mapping):
            self.cells.setdefault(record_id, {}).update(cells)
        else:
            self.cellless.add(record_id)

    def destroy(self, record_id: str) -> None:
        self.upserted.discard(record_id)
        self.created.discard(record_id)
        self.cells.pop(record_id, None)
        self.cellless.discard(record_id)
        self.destroyed.add(record_id)

    def create_field(self, field_id: str, info: Mapping[str, Any]) -> None:
        self.fields_destroyed.discard(field_id)
        self.fields_created[field_id] = FieldState(_text(info.get("name")), _text(info.get("type")))

    def change_field(self, field_id: str, current: Mapping[str, Any]) -> None:
        name, kind = _text(current.get("name")), _text(current.get("type"))
        if field_id in self.fields_created:
            before = self.fields_created[field_id]
            self.fields_created[field_id] = FieldState(name or before.name, kind or before.type)
            return
        if name is not None:
            self.renamed[field_id] = name
        if kind is not None:
            self.retyped[field_id] = kind

    def destroy_field(self, field_id: str) -> None:
        self.fields_created.pop(field_id, None)
        self.renamed.pop(field_id, None)
        self.retyped.pop(field_id, None)
        self.fields_destroyed.add(field_id)

    def freeze(self, table_id: str) -> TableChanges:
        return TableChanges(
            table_id=table_id,
            upserted_ids=frozenset(self.upserted),
            created_ids=frozenset(self.created),
            destroyed_ids=frozenset(self.destroyed),
            fields_created=dict(self.fields_created),
            fields_renamed=dict(self.renamed),
            fields_changed_type=dict(self.retyped),
            fields_destroyed=frozenset(self.fields_destroyed),
            changed_cells={record_id: dict(cells) for record_id, cells in self.cells.items()
                           if record_id not in self.created and record_id not in self.cellless},
        )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _ids(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


class Fold:
    """Payloads folded so far; ``add`` them in cursor order, then ``tables()``."""

    def __init__(self) -> None:
        self._tables: dict[str, _Table] = {}
        self.tables_destroyed: set[str] = set()
        self.payloads = 0

    def _table(self, table_id: str) -> _Table:
        return self._tables.setdefault(table_id, _Table())

    def add(self, payload: Mapping[str, Any]) -> None:
        """Fold one payload (one base transaction) in."""
        self.payloads += 1
        for table_id, changes in _mapping(payload.get("changedTablesById")).items():
            self._table_changes(self._table(table_id), _mapping(changes))
        for table_id, created in _mapping(payload.get("createdTablesById")).items():
            table = self._table(table_id)
            self.tables_destroyed.discard(table_id)
            created = _mapping(created)
            for field_id, info in _mapping(created.get("fieldsById")).items():
                table.create_field(field_id, _mapping(info))
            for record_id in _mapping(created.get("recordsById")):
                table.upsert(record_id, created=True)
        for table_id in _ids(payload.get("destroyedTableIds")):
            self._tables.pop(table_id, None)
            self.tables_destroyed.add(table_id)

    @staticmethod
    def _table_changes(table: _Table, changes: Mapping[str, Any]) -> None:
        # Within one transaction the API reports each record in one list only; the order below
        # (creates, changes, then destroys) is what a destroy in the same payload must win over.
        for record_id in _mapping(changes.get("createdRecordsById")):
            table.upsert(record_id, created=True)
        for record_id, change in _mapping(changes.get("changedRecordsById")).items():
            current = _mapping(_mapping(change).get("current"))
            table.change(record_id, current.get("cellValuesByFieldId"))
        for record_id in _ids(changes.get("destroyedRecordIds")):
            table.destroy(record_id)
        for field_id, info in _mapping(changes.get("createdFieldsById")).items():
            table.create_field(field_id, _mapping(info))
        for field_id, change in _mapping(changes.get("changedFieldsById")).items():
            table.change_field(field_id, _mapping(_mapping(change).get("current")))
        for field_id in _ids(changes.get("destroyedFieldIds")):
            table.destroy_field(field_id)

    def tables(self) -> dict[str, TableChanges]:
        """The changes so far, per table id."""
        return {table_id: table.freeze(table_id) for table_id, table in self._tables.items()}


def fold(payloads: Iterable[Mapping[str, Any]]) -> dict[str, TableChanges]:
    """Fold ``payloads`` (raw API JSON, in cursor order) into changes per table id."""
    folded = Fold()
    for payload in payloads:
        folded.add(payload)
    return folded.tables()
