"""Tables, fields and records held by the sandbox, with Airtable's write semantics."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sandbox import errors
from sandbox.clock import iso_from_ms, make_id, ms_from_iso, now_ms
from sandbox.fields import COMPUTED_TYPES, SANDBOX_USER, SandboxField, is_empty
from sandbox.values import coerce_value

Record = dict[str, Any]
#: One record's change: (before, after); None before a creation and after a deletion.
Diff = tuple[Record | None, Record | None]
#: Told of every committed write (create, update, delete) with the table and its record diffs.
WriteObserver = Callable[["SandboxTable", Sequence[Diff]], None]

__all__ = ["COMPUTED_TYPES", "SANDBOX_USER", "Diff", "Record", "SandboxField", "SandboxTable",
           "WriteObserver", "is_empty"]


class SandboxTable:
    """One table: its fields and its records (``{"id", "createdTime", "fields"}``), oldest first.

    Stored record dicts are replaced, never changed in place, so a reader holding one (a page
    being serialised) never sees half a write. Treat them, and their values, as read-only.
    """

    def __init__(
        self,
        id: str,
        name: str,
        fields: list[SandboxField],
        records: list[Record],
        *,
        description: str | None = None,
        modified_ms: Mapping[str, int] | None = None,
    ) -> None:
        self.id = id
        self.name = name
        self.fields = list(fields)
        self.description = description
        self.view_id = "viw" + id[3:]
        # A base replaces this with its own lock: one transaction at a time per base, as in
        # Airtable, and no lock-order deadlock when a write recomputes another table.
        self.lock = threading.RLock()
        # Set by the base holding the table (webhook payloads, computed fields).
        self.on_write: WriteObserver | None = None
        self._rng = random.Random(id)
        self._records: dict[str, Record] = {r["id"]: r for r in records}
        self._modified: dict[str, int] = dict(modified_ms or {})
        self._created: dict[str, int] = {}
        self._autonumbers: dict[str, int] = {}
        for record in records:
            if record["id"] not in self._modified:
                self._modified[record["id"]] = self._stored_modified(record)

    # -- reading -------------------------------------------------------------------------------

    @property
    def primary_field(self) -> SandboxField:
        """The first field, which Airtable calls the primary field."""
        return self.fields[0]

    @property
    def records(self) -> list[Record]:
        """The current records, in creation order (a new list; the records are shared)."""
        with self.lock:
            return list(self._records.values())

    def __len__(self) -> int:
        return len(self._records)

    def record_ids(self) -> list[str]:
        """The current records' ids, in creation order."""
        with self.lock:
            return list(self._records)

    def field(self, key: str) -> SandboxField | None:
        """The field named ``key`` (exactly, case included), else the field whose id is ``key``."""
        for candidate in self.fields:
            if candidate.name == key:
                return candidate
        for candidate in self.fields:
            if candidate.id == key:
                return candidate
        return None

    def get(self, record_id: str) -> Record | None:
        """The record with this id, or None."""
        return self._records.get(record_id)

    def modified_ms(self, record_id: str) -> int:
        """When the record was last written, in epoch milliseconds (``LAST_MODIFIED_TIME()``)."""
        return self._modified[record_id]

    def created_ms(self, record_id: str) -> int:
        """When the record was created, in epoch milliseconds (``CREATED_TIME()``)."""
        cached = self._created.get(record_id)
        if cached is None:
            cached = ms_from_iso(self._records[record_id]["createdTime"])
            self._created[record_id] = cached
        return cached

    # -- writing -------------------------------------------------------------------------------

    def create(self, fields: Mapping[str, Any], *, typecast: bool = False) -> Record:
        """Create one record from fields keyed by name or id; returns the stored record."""
        return self.create_many([fields], typecast=typecast)[0]

    def create_many(self, batch: Iterable[Mapping[str, Any]], *,
                    typecast: bool = False) -> list[Record]:
        """Create records atomically: every one is validated before any is stored.

        Raises:
            ApiError: 422 for an unknown field or a value the field cannot hold.
        """
        with self.lock:
            cleaned = [self._clean(fields, typecast) for fields in batch]
            stamp = now_ms()
            created = []
            for values in cleaned:
                record_id = self._new_record_id()
                values.update(self._creation_values(stamp))
                record = {"id": record_id, "createdTime": iso_from_ms(stamp),
                          "fields": self._finish(values, stamp)}
                self._records[record_id] = record
                self._modified[record_id] = stamp
                self._created[record_id] = stamp
                created.append(record)
            self._notify([(None, record) for record in created])
            # The base may have filled lookups and rollups in since: answer with what is stored.
            return [self._records.get(str(r["id"]), r) for r in created]

    def update(
        self, record_id: str, fields: Mapping[str, Any], *, replace: bool = False,
        typecast: bool = False,
    ) -> Record:
        """PATCH (merge) or PUT (``replace=True``) one record; returns the stored record.

        Raises:
            ApiError: 404 for an unknown record, 422 for a field or value it refuses.
        """
        if record_id not in self._records:
            raise errors.record_not_found()
        return self.update_many([(record_id, fields)], replace=replace, typecast=typecast)[0]

    def update_many(
        self, batch: Iterable[tuple[str, Mapping[str, Any]]], *, replace: bool = False,
        typecast: bool = False,
    ) -> list[Record]:
        """Update records atomically: every id and value is checked before any is written.

        Raises:
            ApiError: 422 ``ROW_DOES_NOT_EXIST`` for an unknown id, or a field or value error.
        """
        with self.lock:
            cleaned = [(record_id, self._clean(fields, typecast)) for record_id, fields in batch]
            for record_id, _ in cleaned:
                if record_id not in self._records:
                    raise errors.typed(422, "ROW_DOES_NOT_EXIST",
                                       f"Record ID {record_id} does not exist in this table")
            stamp = now_ms()
            updated, diffs = [], []
            for record_id, values in cleaned:
                old = self._records[record_id]
                kept = self._computed_values(old["fields"]) if replace else dict(old["fields"])
                kept.update(values)
                record = {"id": record_id, "createdTime": old["createdTime"],
                          "fields": self._finish(kept, stamp)}
                self._records[record_id] = record
                self._modified[record_id] = stamp
                updated.append(record)
                diffs.append((old, record))
            self._notify(diffs)
            return [self._records.get(str(r["id"]), r) for r in updated]

    def delete(self, record_id: str) -> bool:
        """Delete one record; False if there was no such record."""
        return bool(self.delete_many([record_id]))

    def delete_many(self, record_ids: Iterable[str]) -> list[str]:
        """Delete records in one transaction; returns the ids that existed."""
        with self.lock:
            diffs: list[Diff] = []
            for record_id in record_ids:
                old = self._records.pop(record_id, None)
                if old is not None:
                    self._modified.pop(record_id, None)
                    self._created.pop(record_id, None)
                    diffs.append((old, None))
            self._notify(diffs)
            return [old["id"] for old, _ in diffs if old is not None]

    def set_system_values(self, record_id: str, values: Mapping[str, Any]) -> Diff | None:
        """Store values the sandbox itself derives (lookups, rollups, counts, links to deleted
        records) without moving the record's modified time, as Airtable does; None if unchanged.

        Returns:
            The (before, after) pair; the caller reports it (this does not call ``on_write``).
        """
        with self.lock:
            old = self._records.get(record_id)
            if old is None:
                return None
            merged = dict(old["fields"])
            for name, value in values.items():
                if is_empty(value):
                    merged.pop(name, None)
                else:
                    merged[name] = value
            if merged == old["fields"]:
                return None
            record = {"id": record_id, "createdTime": old["createdTime"], "fields": merged}
            self._records[record_id] = record
            return (old, record)

    # -- schema --------------------------------------------------------------------------------

    def map_records(self, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """Replace each record's fields by ``change(fields)`` (a field renamed or deleted);
        modified times stay, and no write is reported (``sandbox.schema`` reports the change)."""
        with self.lock:
            for record_id, record in list(self._records.items()):
                values = change(record["fields"])
                if values is not record["fields"]:
                    self._records[record_id] = {**record, "fields": values}

    # -- helpers -------------------------------------------------------------------------------

    def _notify(self, diffs: Sequence[Diff]) -> None:
        if diffs and self.on_write is not None:
            self.on_write(self, diffs)

    def _stored_modified(self, record: Record) -> int:
        for candidate in self.fields:
            if candidate.type == "lastModifiedTime" and candidate.name in record["fields"]:
                return ms_from_iso(record["fields"][candidate.name])
        return ms_from_iso(record["createdTime"])

    def _new_record_id(self) -> str:
        while True:
            record_id = make_id("rec", self._rng)
            if record_id not in self._records:
                return record_id

    def _clean(self, fields: Mapping[str, Any], typecast: bool) -> dict[str, Any]:
        if not isinstance(fields, Mapping):
            raise errors.invalid_request("Invalid request: fields must be an object")
        cleaned: dict[str, Any] = {}
        for key, value in fields.items():
            target = self.field(key)
            if target is None:
                raise errors.unknown_field(key)
            if target.type in COMPUTED_TYPES:
                raise errors.invalid_value(target.name, "cannot accept a value because the field "
                                                        "is computed")
            cleaned[target.name] = coerce_value(target, value, typecast, self._rng)
        return cleaned

    def _computed_values(self, values: Mapping[str, Any]) -> dict[str, Any]:
        computed = {f.name for f in self.fields if f.type in COMPUTED_TYPES}
        return {k: v for k, v in values.items() if k in computed}

    def _creation_values(self, stamp: int) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for target in self.fields:
            if target.type == "createdTime":
                values[target.name] = iso_from_ms(stamp)
            elif target.type == "createdBy":
                values[target.name] = SANDBOX_USER
            elif target.type == "autoNumber":
                values[target.name] = self._next_autonumber(target.name)
        return values

    def _next_autonumber(self, name: str) -> int:
        last = self._autonumbers.get(name)
        if last is None:
            last = max((r["fields"].get(name, 0) for r in self._records.values()), default=0)
        self._autonumbers[name] = last + 1
        return last + 1

    def _finish(self, values: dict[str, Any], stamp: int) -> dict[str, Any]:
        """Stamp last-modified fields, recount links and drop empty values."""
        for target in self.fields:
            if target.type == "lastModifiedTime":
                values[target.name] = iso_from_ms(stamp)
            elif target.type == "lastModifiedBy":
                values[target.name] = SANDBOX_USER
            elif target.type == "count":
                link = self._field_by_id((target.options or {}).get("recordLinkFieldId"))
                if link is not None:
                    values[target.name] = len(values.get(link.name) or ())
        return {k: v for k, v in values.items() if not is_empty(v)}

    def _field_by_id(self, field_id: Any) -> SandboxField | None:
        return next((f for f in self.fields if f.id == field_id), None)
