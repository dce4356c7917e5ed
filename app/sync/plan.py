"""The contracts of the sync model: what a run is asked to do, and where each table of it is.

Every contract is a frozen dataclass with a version ``v`` and ``to_json``/``from_json``. They
cross task boundaries as plain JSON, carry no secret (a run names a *connection*; workers
resolve its secrets from their own environment) and never more than one batch of records.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from app.contracts import Batch, TableRef, TableSchema, TableTarget
from app.errors import ConfigurationError
from app.extractors.partitions import CreatedWindow
from app.sync.states import WriteMode

#: Options a run of an ETLWorkflow accepts, in-process and on workers alike.
RUN_OPTIONS = ("drop_tables", "tables", "incremental", "hard_deletes", "deletes_every",
               "computed_every")
#: Default cadences of an incremental run's full listings (see ``app.sync.changes``).
DELETES_EVERY = 1
COMPUTED_EVERY = 6


@dataclass(frozen=True)
class RunOptions:
    """What the user asked of a run, validated once for both drivers."""

    mode: WriteMode = WriteMode.MERGE
    #: Table names or ids to sync; empty means every table of the source.
    tables: tuple[str, ...] = ()
    #: With ``mode`` MERGE: the tables (names or ids) synced incrementally, the others merged.
    incremental_tables: tuple[str, ...] = ()
    #: A record deleted at the source is deleted from the warehouse (else ``__deleted_at`` is set).
    hard_deletes: bool = False
    #: An incremental run lists every live id (to find deletes) on every N-th run of a table.
    deletes_every: int = DELETES_EVERY
    #: An incremental run re-lists computed fields (formula, lookup, rollup, count) every N-th run.
    computed_every: int = COMPUTED_EVERY

    @classmethod
    def parse(cls, **options: Any) -> RunOptions:
        """Validate run options as a user spells them (``drop_tables=True, tables=[...]``).

        Raises:
            ConfigurationError: an unknown option (a typo such as ``drop_table``) or a bad value.
        """
        unknown = sorted(set(options) - set(RUN_OPTIONS))
        if unknown:
            raise ConfigurationError(
                f"unknown run option {', '.join(map(repr, unknown))}: valid options are "
                f"{', '.join(RUN_OPTIONS)}")
        drop = options.get("drop_tables", False)
        if not isinstance(drop, bool):
            raise ConfigurationError(f"drop_tables must be True or False, not {drop!r}")
        tables = options.get("tables") or ()
        if isinstance(tables, str):
            tables = [t for t in tables.split(",")]
        names = tuple(str(t).strip() for t in tables if str(t).strip())
        incremental = options.get("incremental", False)
        chosen: tuple[str, ...] = ()
        if isinstance(incremental, str | list | tuple) and not isinstance(incremental, bool):
            chosen = tuple(_names(incremental))
            incremental = False
        elif not isinstance(incremental, bool):
            raise ConfigurationError(
                f"incremental must be True, False or a list of tables, not {incremental!r}")
        if drop and (incremental or chosen):
            raise ConfigurationError("drop_tables and incremental exclude each other: "
                                     "a replacing run reads every record anyway")
        hard = options.get("hard_deletes", False)
        if not isinstance(hard, bool):
            raise ConfigurationError(f"hard_deletes must be True or False, not {hard!r}")
        mode = WriteMode.REPLACE if drop else WriteMode.INCREMENTAL if incremental else WriteMode.MERGE
        return cls(mode=mode, tables=names, incremental_tables=chosen, hard_deletes=hard,
                   deletes_every=_every(options, "deletes_every", DELETES_EVERY),
                   computed_every=_every(options, "computed_every", COMPUTED_EVERY))

    @property
    def replace(self) -> bool:
        return self.mode is WriteMode.REPLACE

    def mode_for(self, table: TableRef) -> WriteMode:
        """How ``table`` is written: ``incremental_tables`` turns a merge incremental per table."""
        if self.mode is WriteMode.MERGE and (
                table.table_id in self.incremental_tables or table.name in self.incremental_tables):
            return WriteMode.INCREMENTAL
        return self.mode

    def to_user(self) -> dict[str, Any]:
        """The options as the user spells them (for status and run history)."""
        data: dict[str, Any] = {"drop_tables": self.replace}
        if self.tables:
            data["tables"] = list(self.tables)
        if self.mode is WriteMode.INCREMENTAL:
            data["incremental"] = True
        elif self.incremental_tables:
            data["incremental"] = list(self.incremental_tables)
        return data | self._changed_deletes_and_cadences()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"mode": self.mode.value, "tables": list(self.tables)}
        # Only what differs from the defaults: older plans and workers read the same shape.
        if self.incremental_tables:
            data["incremental_tables"] = list(self.incremental_tables)
        return data | self._changed_deletes_and_cadences()

    def _changed_deletes_and_cadences(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.hard_deletes:
            data["hard_deletes"] = True
        if self.deletes_every != DELETES_EVERY:
            data["deletes_every"] = self.deletes_every
        if self.computed_every != COMPUTED_EVERY:
            data["computed_every"] = self.computed_every
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunOptions:
        return cls(mode=WriteMode(data["mode"]), tables=tuple(data.get("tables", ())),
                   incremental_tables=tuple(data.get("incremental_tables", ())),
                   hard_deletes=bool(data.get("hard_deletes", False)),
                   deletes_every=int(data.get("deletes_every", DELETES_EVERY)),
                   computed_every=int(data.get("computed_every", COMPUTED_EVERY)))


def _names(value: str | list[Any] | tuple[Any, ...]) -> list[str]:
    items = value.split(",") if isinstance(value, str) else value
    return [str(t).strip() for t in items if str(t).strip()]


def _every(options: dict[str, Any], name: str, default: int) -> int:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be a whole number of runs, at least 1, not {value!r}")
    return value


@dataclass(frozen=True)
class ChangePlan:
    """What one table's listing reads in a run, decided from its stored sync state
    (``app.sync.changes``): a full listing, or only what changed, plus full listings of ids
    (to find deletes) or of computed fields when they are due.

    ``phases`` are listed one after the other: ``records`` (with ``formula`` as
    ``filterByFormula``; None lists every record), ``values`` (the new values of
    ``value_ids`` as the change source carries them, no request), ``byid`` (the next chunk of
    ``record_ids``, one request each), ``ids`` (each record with the one field ``id_field``), ``computed``
    (each record with ``computed_fields`` only). ``cursor`` is the state the table will have
    once the run's data is visible; it is committed with it.
    """

    source: str
    #: The source's identity (``airtable:app…``): the sync state is kept under it.
    identity: str = ""
    formula: str | None = None
    phases: tuple[str, ...] = ("records",)
    id_field: str | None = None
    computed_fields: tuple[str, ...] = ()
    cursor: dict[str, Any] = field(default_factory=dict)
    #: The state the run started from (None: the table had none: a full sync).
    previous: dict[str, Any] | None = None
    hard_deletes: bool = False
    #: Records the source says were deleted (a change feed's destroyed ids).
    deleted_ids: tuple[str, ...] = ()
    v: int = 1
    #: Records the source says were created or changed, listed by id (``byid`` phases).
    record_ids: tuple[str, ...] = ()
    #: Why a change source's state could not be used and the table is listed whole (a lost
    #: change feed); None when nothing was lost.
    resync: str | None = None
    #: Requests the change source made while planning (a change feed's hook list and payloads).
    requests: int = 0
    #: Records whose new values the change source carries itself (a change feed's payloads):
    #: their rows are updated field by field, without a request (``values`` phase).
    value_ids: tuple[str, ...] = ()

    @property
    def full(self) -> bool:
        """Whether the records phase lists every record (it then knows every live id)."""
        return self.formula is None and "records" in self.phases

    @property
    def finds_deletes(self) -> bool:
        """Whether some phase lists every live record, so the others are deleted."""
        return self.full or "ids" in self.phases or "computed" in self.phases

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "identity": self.identity, "formula": self.formula,
                "phases": list(self.phases),
                "id_field": self.id_field, "computed_fields": list(self.computed_fields),
                "cursor": dict(self.cursor), "previous": self.previous,
                "hard_deletes": self.hard_deletes, "deleted_ids": list(self.deleted_ids),
                "v": self.v,
                # Only when set: plans of the window source keep their shape.
                **({"record_ids": list(self.record_ids)} if self.record_ids else {}),
                **({"resync": self.resync} if self.resync else {}),
                **({"requests": self.requests} if self.requests else {}),
                **({"value_ids": list(self.value_ids)} if self.value_ids else {})}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChangePlan:
        return cls(source=data["source"], identity=data.get("identity", ""),
                   formula=data.get("formula"),
                   phases=tuple(data.get("phases", ("records",))), id_field=data.get("id_field"),
                   computed_fields=tuple(data.get("computed_fields", ())),
                   cursor=dict(data.get("cursor") or {}), previous=data.get("previous"),
                   hard_deletes=bool(data.get("hard_deletes", False)),
                   deleted_ids=tuple(data.get("deleted_ids", ())), v=data.get("v", 1),
                   record_ids=tuple(data.get("record_ids", ())), resync=data.get("resync"),
                   requests=int(data.get("requests", 0)),
                   value_ids=tuple(data.get("value_ids", ())))


@dataclass(frozen=True)
class ComponentConfig:
    """How a worker builds an extractor or a warehouse: a registered name, its non-secret
    constructor arguments, and the connection whose secrets the worker supplies.

    ``kind`` None means "the worker's own default" (``WAREHOUSE_URL`` for a warehouse).
    """

    kind: str | None
    params: dict[str, Any] = field(default_factory=dict)
    connection: str = "default"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "params": dict(self.params), "connection": self.connection}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ComponentConfig:
        return cls(kind=data["kind"], params=dict(data.get("params", {})),
                   connection=data.get("connection", "default"))


@dataclass(frozen=True)
class RunPlan:
    """Everything a run needs, decided when it is enqueued (or started in-process)."""

    run_id: str
    workflow: str
    extractor: ComponentConfig
    warehouse: ComponentConfig
    options: RunOptions
    batch_max_records: int
    batch_max_bytes: int
    trigger: str = "manual"
    #: While another run writes the same tables: ``skip`` this run, ``queue`` it, or ``allow``.
    overlap: str = "skip"
    v: int = 1
    #: Most creation-time partitions a large table is split into (1: never split). Plans
    #: written before partitions existed lack it and read as 1.
    partitions: int = 1

    def to_json(self) -> dict[str, Any]:
        data = {
            "run_id": self.run_id, "workflow": self.workflow,
            "extractor": self.extractor.to_json(), "warehouse": self.warehouse.to_json(),
            "options": self.options.to_json(), "batch_max_records": self.batch_max_records,
            "batch_max_bytes": self.batch_max_bytes, "trigger": self.trigger,
            "overlap": self.overlap, "v": self.v,
        }
        if self.partitions != 1:
            data["partitions"] = self.partitions
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunPlan:
        return cls(
            run_id=data["run_id"], workflow=data["workflow"],
            extractor=ComponentConfig.from_json(data["extractor"]),
            warehouse=ComponentConfig.from_json(data["warehouse"]),
            options=RunOptions.from_json(data["options"]),
            batch_max_records=int(data["batch_max_records"]),
            batch_max_bytes=int(data["batch_max_bytes"]),
            trigger=data.get("trigger", "manual"), overlap=data.get("overlap", "skip"),
            v=data.get("v", 1), partitions=int(data.get("partitions", 1)),
        )


@dataclass(frozen=True)
class Listing:
    """How far a table's listing got: the point it can resume from and the next batch number.

    A listing that starts again from scratch (its cursor expired) numbers its batches from a
    new ``epoch``, so they can never be mistaken for the abandoned listing's.

    A partitioned table has one listing per creation-time window (``partition``); each numbers
    its batches from its own range (``rules.first_batch``), so numbers stay unique per table.
    """

    cursor: str | None = None
    next_batch: int = 0
    epoch: int = 0
    #: Consecutive task slices that ended without the listing moving (a penalised source).
    stalls: int = 0
    #: Sent again by the recovery sweep: the requests it makes are the recovery's cost.
    resumed: bool = False
    v: int = 1
    #: The creation-time window this listing covers; None: the whole table.
    partition: CreatedWindow | None = None

    @property
    def partition_index(self) -> int:
        """The listing's partition number (0 for a whole-table listing)."""
        return self.partition.index if self.partition else 0

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"cursor": self.cursor, "next_batch": self.next_batch, "epoch": self.epoch,
                "stalls": self.stalls, "resumed": self.resumed, "v": self.v}
        if self.partition is not None:
            data["partition"] = self.partition.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Listing:
        window = data.get("partition")
        return cls(cursor=data.get("cursor"), next_batch=int(data.get("next_batch", 0)),
                   epoch=int(data.get("epoch", 0)), stalls=int(data.get("stalls", 0)),
                   resumed=bool(data.get("resumed", False)), v=data.get("v", 1),
                   partition=CreatedWindow.from_json(window) if window else None)


@dataclass(frozen=True)
class TableSync:
    """One table of one run: its source schema, its warehouse target once created, and its
    listing's progress."""

    plan: RunPlan
    table: TableRef
    schema: TableSchema | None = None
    target: TableTarget | None = None
    listing: Listing = field(default_factory=Listing)
    #: What the listing reads (None: every record, as merge and replace runs do).
    change: ChangePlan | None = None
    v: int = 1
    #: Every creation-time window of a partitioned table (empty: one listing), so the step
    #: that creates the target can start the listings of the windows after the first.
    partitions: tuple[CreatedWindow, ...] = ()

    @property
    def run_id(self) -> str:
        return self.plan.run_id

    def with_(self, **changes: Any) -> TableSync:
        """A copy with ``changes`` (contracts are immutable)."""
        return replace(self, **changes)

    def batch(self, batch_no: int, records: list[Any], fields: tuple[str, ...] | None = None,
              seen: bool = False) -> Batch:
        return Batch(self.run_id, self.table, batch_no, records, fields=fields, seen=seen)

    def to_json(self) -> dict[str, Any]:
        return {
            "plan": self.plan.to_json(), "table": self.table.to_json(),
            "schema": self.schema.to_json() if self.schema else None,
            "target": self.target.to_json() if self.target else None,
            "listing": self.listing.to_json(), "v": self.v,
            **({"change": self.change.to_json()} if self.change else {}),
            **({"partitions": [w.to_json() for w in self.partitions]} if self.partitions else {}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TableSync:
        return cls(
            plan=RunPlan.from_json(data["plan"]),
            table=TableRef.from_json(data["table"]),
            schema=TableSchema.from_json(data["schema"]) if data.get("schema") else None,
            target=TableTarget.from_json(data["target"]) if data.get("target") else None,
            listing=Listing.from_json(data.get("listing") or {}),
            change=ChangePlan.from_json(data["change"]) if data.get("change") else None,
            v=data.get("v", 1),
            partitions=tuple(CreatedWindow.from_json(w) for w in data.get("partitions") or ()),
        )
