"""A base: its tables, one lock, values that follow links, and the transactions its writes make.

Every committed write (records created, updated or deleted; a field created or renamed) is one
transaction with the base's next ``baseTransactionNumber``; listeners (the webhooks) get it
while the base is still locked, so they see the base exactly as that transaction left it.
Counts, lookups and rollups of records linking to what changed are recomputed in the same
transaction without moving those records' modified time, as Airtable does.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sandbox import schema
from sandbox.clock import make_id, now_ms
from sandbox.computed import compute, link_field_id, linked_field_id
from sandbox.fields import LINKED_TYPES, SandboxField
from sandbox.model import Diff, Record, SandboxTable

# How many rounds of "a computed value changed, so what reads it changes" one write may cause.
_MAX_CASCADE = 5


@dataclass
class TableChanges:
    """What one transaction did to one table (records keyed by id, fields by id)."""

    created: dict[str, Record] = field(default_factory=dict)
    changed: dict[str, tuple[Record, Record]] = field(default_factory=dict)
    destroyed: dict[str, Record] = field(default_factory=dict)
    created_fields: list[SandboxField] = field(default_factory=list)
    # (before, after) of a renamed or retyped field
    changed_fields: list[tuple[SandboxField, SandboxField]] = field(default_factory=list)
    destroyed_field_ids: list[str] = field(default_factory=list)

    def merge(self, later: TableChanges) -> None:
        """Fold a later part of the same transaction in."""
        self.file([(None, r) for r in later.created.values()])
        self.file(later.changed.values())
        self.file([(r, None) for r in later.destroyed.values()])
        self.created_fields += later.created_fields
        self.changed_fields += later.changed_fields
        self.destroyed_field_ids += later.destroyed_field_ids

    def file(self, diffs: Iterable[Diff]) -> None:
        """Fold record diffs in, so a record appears once with its first and last state."""
        for old, new in diffs:
            if new is None:
                if old is None:
                    continue
                record_id = old["id"]
                first = self.changed.pop(record_id, (old, old))[0]
                if self.created.pop(record_id, None) is None:
                    self.destroyed[record_id] = first
            elif old is None:
                self.created[new["id"]] = new
            elif new["id"] in self.created:
                self.created[new["id"]] = new
            else:
                first = self.changed.get(new["id"], (old, old))[0]
                self.changed[new["id"]] = (first, new)


@dataclass
class Transaction:
    """One committed change of a base."""

    number: int
    timestamp_ms: int
    source: str  # actionMetadata.source: "publicApi" for API writes
    tables: dict[str, TableChanges]


Listener = Callable[["SandboxBase", Transaction], None]
#: Table id -> record id -> names of the fields that changed (None: created or deleted).
Touched = dict[str, dict[str, set[str] | None]]


@dataclass(eq=False)
class SandboxBase:
    """One base: an id (``app…``), a name and its tables."""

    id: str
    name: str
    tables: list[SandboxTable] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self.listeners: list[Listener] = []
        self.transaction_number = 0
        self._pending: dict[str, TableChanges] | None = None
        self._rng = random.Random(f"{self.id}:schema")
        for table in self.tables:
            self._adopt(table)

    def table(self, id_or_name: str) -> SandboxTable | None:
        """The table with this id, else the one with exactly this name, else None."""
        for candidate in self.tables:
            if candidate.id == id_or_name:
                return candidate
        for candidate in self.tables:
            if candidate.name == id_or_name:
                return candidate
        return None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Make every write inside one transaction (one API request is one transaction)."""
        with self.lock:
            if self._pending is not None:  # already inside one
                yield
                return
            self._pending = {}
            try:
                yield
            finally:
                pending, self._pending = self._pending, None
                self._commit("publicApi", pending)

    # -- schema changes --------------------------------------------------------------------------

    def add_field(self, table: SandboxTable, name: str, type: str,
                  options: dict[str, Any] | None = None,
                  description: str | None = None) -> SandboxField:
        """Create a field (``POST …/fields``); one transaction."""
        with self.lock:
            taken = {f.id for f in table.fields}
            field_id = make_id("fld", self._rng)
            while field_id in taken:
                field_id = make_id("fld", self._rng)
            new = SandboxField(name, type, field_id, options, description)
            schema.add_field(table, new)
            self._commit("publicApi", {table.id: TableChanges(created_fields=[new])})
            return new

    def rename_field(self, table: SandboxTable, field_id: str, name: str) -> SandboxField:
        """Rename a field (``PATCH …/fields/{id}``), keeping its values; one transaction."""
        with self.lock:
            before = schema.rename_field(table, field_id, name)
            after = table.field(field_id)
            assert after is not None
            if before.name != after.name:
                self._commit("publicApi",
                             {table.id: TableChanges(changed_fields=[(before, after)])})
            return after

    def delete_field(self, table: SandboxTable, field_id: str) -> SandboxField:
        """Delete a field as a person would in Airtable's UI (the API has no such call); one
        transaction reporting ``destroyedFieldIds``."""
        with self.lock:
            removed = schema.remove_field(table, field_id)
            self._commit("client", {table.id: TableChanges(destroyed_field_ids=[field_id])})
            return removed

    def replace_table(self, old: SandboxTable, new: SandboxTable) -> None:
        """Swap in a rebuilt table (a retyped field); fields whose name or type changed are
        reported as changed fields."""
        with self.lock:
            self.tables[self.tables.index(old)] = new
            self._adopt(new)
            was = {f.id: f for f in old.fields}
            changed = [(was[f.id], f) for f in new.fields
                       if f.id in was and (was[f.id].name, was[f.id].type) != (f.name, f.type)]
            gone = [f.id for f in old.fields if new.field(f.id) is None]
            added = [f for f in new.fields if f.id not in was]
            if changed or gone or added:
                self._commit("client", {new.id: TableChanges(
                    created_fields=added, changed_fields=changed, destroyed_field_ids=gone)})

    # -- values that follow links ------------------------------------------------------------

    def recompute_all(self) -> None:
        """Bring every count, lookup and rollup in line with its links (generated data);
        no transaction, no modified time moves."""
        with self.lock:
            for table in self.tables:
                everything: Touched = {table.id: {r["id"]: None for r in table.records}}
                self._recompute(table, everything, TableChanges())

    def _adopt(self, table: SandboxTable) -> None:
        table.lock = self.lock
        table.on_write = self._written

    def _written(self, table: SandboxTable, diffs: Sequence[Diff]) -> None:
        with self.lock:
            changes = {table.id: TableChanges()}
            changes[table.id].file(diffs)
            touched: Touched = {table.id: {}}
            for old, new in diffs:
                record = new or old
                if record is not None:
                    touched[table.id][record["id"]] = _changed_names(old, new)
            dead = {old["id"] for old, new in diffs if new is None and old is not None}
            if dead:
                self._unlink(table.id, dead, changes, touched)
            for _ in range(_MAX_CASCADE):
                following: Touched = {}
                for candidate in self.tables:
                    found = self._recompute(candidate, touched,
                                            changes.setdefault(candidate.id, TableChanges()))
                    if found:
                        following[candidate.id] = found
                if not following:
                    break
                touched = following
            self._commit("publicApi", changes)

    def _unlink(self, table_id: str, dead: set[str], changes: dict[str, TableChanges],
                touched: Touched) -> None:
        """Drop deleted records from the link cells that pointed at them."""
        for table in self.tables:
            for link in table.fields:
                if link.type != "multipleRecordLinks" or \
                        (link.options or {}).get("linkedTableId") != table_id:
                    continue
                for record in table.records:
                    links = record["fields"].get(link.name) or []
                    if any(i in dead for i in links):
                        diff = table.set_system_values(
                            record["id"], {link.name: [i for i in links if i not in dead]})
                        if diff is not None:
                            changes.setdefault(table.id, TableChanges()).file([diff])
                            names = touched.setdefault(table.id, {}).get(record["id"], set())
                            if names is not None:
                                touched[table.id][record["id"]] = names | {link.name}

    def _recompute(self, table: SandboxTable, touched: Touched,
                   changes: TableChanges) -> dict[str, set[str] | None]:
        """Recompute the linked values of ``table``'s records that read a changed cell (or
        whose own link changed); returns the ids whose values changed, with the field names."""
        plans = []
        for computed in table.fields:
            if computed.type not in LINKED_TYPES:
                continue
            link = table.field(link_field_id(computed) or "")
            if link is None or link.type != "multipleRecordLinks":
                continue
            source = self.table((link.options or {}).get("linkedTableId") or "")
            if source is None:
                continue
            read = source.field(linked_field_id(computed) or "")
            read_name = read.name if read is not None else None
            # A count reads only whether linked records exist; lookups and rollups one field.
            watched = None if computed.type == "count" else read_name
            hit_source = {i for i, names in touched.get(source.id, {}).items()
                          if names is None or (watched is not None and watched in names)}
            hit_own = {i for i, names in touched.get(table.id, {}).items()
                       if names is None or link.name in names}
            if hit_source or hit_own:
                plans.append((computed, link.name, source, read_name, hit_source, hit_own))
        if not plans:
            return {}
        if any(plan[4] for plan in plans):  # a linked record changed: who links to it?
            candidates = table.records
        else:  # only the table's own links changed: no need to scan the rest
            own = sorted(set().union(*(plan[5] for plan in plans)))
            candidates = [r for r in map(table.get, own) if r is not None]
        changed: dict[str, set[str] | None] = {}
        for record in candidates:
            values: dict[str, Any] = {}
            for computed, link_name, source, read_name, hit_source, hit_own in plans:
                links = record["fields"].get(link_name) or []
                if record["id"] in hit_own or any(i in hit_source for i in links):
                    values[computed.name] = compute(computed, links, _reader(source), read_name)
            if values:
                diff = table.set_system_values(record["id"], values)
                if diff is not None:
                    changes.file([diff])
                    changed[record["id"]] = _changed_names(*diff)
        return changed

    def _commit(self, source: str, changes: dict[str, TableChanges]) -> None:
        if self._pending is not None:
            for table_id, part in changes.items():
                self._pending.setdefault(table_id, TableChanges()).merge(part)
            return
        kept = {table_id: c for table_id, c in changes.items()
                if c.created or c.changed or c.destroyed or c.created_fields
                or c.changed_fields or c.destroyed_field_ids}
        if not kept:
            return
        self.transaction_number += 1
        transaction = Transaction(self.transaction_number, now_ms(), source, kept)
        for listener in list(self.listeners):
            listener(self, transaction)


def _reader(table: SandboxTable) -> Callable[[str], Mapping[str, Any] | None]:
    def fetch(record_id: str) -> Mapping[str, Any] | None:
        found = table.get(record_id)
        return None if found is None else found["fields"]
    return fetch


def _changed_names(old: Record | None, new: Record | None) -> set[str] | None:
    if old is None or new is None:
        return None
    before, after = old["fields"], new["fields"]
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
