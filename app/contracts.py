"""JSON-serialisable contracts that cross step (and task) boundaries.

Each contract is a frozen dataclass with ``to_json``/``from_json``. None carries a secret,
and none carries more than one batch of records.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, TypedDict


class _RecordRequired(TypedDict):
    id: str
    fields: dict[str, Any]


class Record(_RecordRequired, total=False):
    """One source record, shaped like Airtable's: empty fields are simply absent."""

    createdTime: str


@dataclass(frozen=True)
class TableRef:
    """A source table: ``table_id`` is the stable key (Airtable's ``tbl…``), ``name`` is for people."""

    source: str
    table_id: str
    name: str
    v: int = 1

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TableRef:
        return cls(**data)


@dataclass(frozen=True)
class FieldSpec:
    """A source field. ``type`` is the source's type name (Airtable's), or None to infer from data.

    ``result_type`` is the type of a computed field's value (formula, rollup, lookup), when known.
    ``kind`` is the warehouse column kind, filled in by schema detection (see app.warehouses.kinds).
    """

    name: str
    type: str | None = None
    field_id: str | None = None
    result_type: str | None = None
    kind: str | None = None

    @property
    def key(self) -> str:
        """The stable identity of the field: its id when the source has one, else its name."""
        return self.field_id or self.name


@dataclass(frozen=True)
class TableSchema:
    """A source table and its fields, in source order."""

    table: TableRef
    fields: tuple[FieldSpec, ...]
    v: int = 1

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table.to_json(), "fields": [asdict(f) for f in self.fields], "v": self.v}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TableSchema:
        return cls(
            table=TableRef.from_json(data["table"]),
            fields=tuple(FieldSpec(**f) for f in data["fields"]),
            v=data.get("v", 1),
        )


@dataclass(frozen=True)
class Column:
    """Where one source field lands: its SQL column name and Conveyor's column kind.

    ``source_type`` is the field's source type (``FieldSpec.type``): a ``checkbox`` column
    stores False for an absent value, because Airtable omits unticked checkboxes.
    """

    field_key: str
    field_name: str
    column: str
    kind: str
    source_type: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TableTarget:
    """The warehouse side of one table in one run: where rows go and how fields map to columns.

    ``staging`` is set for a replacing load: rows go there and are swapped into ``name`` at the end.
    """

    run_id: str
    table: TableRef
    name: str
    columns: tuple[Column, ...]
    staging: str | None = None
    v: int = 1

    @property
    def write_to(self) -> str:
        """The table the batches of this run are written into."""
        return self.staging or self.name

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "table": self.table.to_json(),
            "name": self.name,
            "columns": [c.to_json() for c in self.columns],
            "staging": self.staging,
            "v": self.v,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TableTarget:
        return cls(
            run_id=data["run_id"],
            table=TableRef.from_json(data["table"]),
            name=data["name"],
            columns=tuple(Column(**c) for c in data["columns"]),
            staging=data.get("staging"),
            v=data.get("v", 1),
        )


@dataclass(frozen=True)
class Batch:
    """One bounded batch of records of one table, numbered from 0 within a run."""

    run_id: str
    table: TableRef
    batch_no: int
    records: list[Record]
    #: The field names the listing asked for (None: every field). ``()`` lists ids only: the
    #: batch says which records exist; a non-empty tuple updates only those fields' columns.
    fields: tuple[str, ...] | None = None
    #: The batch is part of a listing of every live record: its ids count as seen, and the
    #: rows no such batch saw are deleted at the end (``app.sync.changes``).
    seen: bool = False
    v: int = 1

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "run_id": self.run_id,
            "table": self.table.to_json(),
            "batch_no": self.batch_no,
            "records": list(self.records),
            "v": self.v,
        }
        if self.fields is not None:
            data["fields"] = list(self.fields)
        if self.seen:
            data["seen"] = True
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Batch:
        fields = data.get("fields")
        return cls(
            run_id=data["run_id"],
            table=TableRef.from_json(data["table"]),
            batch_no=data["batch_no"],
            records=data["records"],
            fields=tuple(fields) if fields is not None else None,
            seen=bool(data.get("seen", False)),
            v=data.get("v", 1),
        )


@dataclass(frozen=True)
class RejectedRecord:
    """A record that could not be stored, with the reason: reported, never silently dropped."""

    record_id: str
    reason: str


@dataclass(frozen=True)
class BatchResult:
    """What loading one batch did. ``replayed`` is True when the batch had already been loaded."""

    run_id: str
    table_id: str
    batch_no: int
    loaded: int
    rejected: tuple[RejectedRecord, ...] = field(default=())
    replayed: bool = False
    #: Of ``loaded``, the records the table did not have before (the others were updated).
    created: int = 0
    v: int = 1

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["rejected"] = [asdict(r) for r in self.rejected]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BatchResult:
        return cls(
            run_id=data["run_id"],
            table_id=data["table_id"],
            batch_no=data["batch_no"],
            loaded=data["loaded"],
            rejected=tuple(RejectedRecord(**r) for r in data.get("rejected", ())),
            replayed=data.get("replayed", False),
            created=data.get("created", 0),
            v=data.get("v", 1),
        )


@dataclass(frozen=True)
class SyncCommit:
    """What finishing a table commits with its data besides the swap: deletes and sync state.

    ``source`` is the source's identity (``airtable:app…``); ``cursor`` the table's new
    state (a dict with a ``source`` key naming the change source), None to store none.
    ``full_listing``: a listing of every live record ran, so rows it did not see were deleted
    at the source; ``deleted_ids`` are records the source itself said were deleted.
    """

    source: str
    cursor: dict[str, Any] | None
    full_listing: bool = False
    hard_deletes: bool = False
    deleted_ids: tuple[str, ...] = ()
