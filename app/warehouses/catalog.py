"""Conveyor's catalog tables: name mappings, loaded batches and run history, in the warehouse."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa

from app.contracts import Batch, BatchResult, Column, RejectedRecord, TableRef
from app.warehouses import kinds
from app.warehouses.ddl import Flavor

#: The keys of a run row, as ``record_run`` takes them and ``list_runs`` returns them.
RUN_KEYS: Final = (
    "run_id",
    "workflow",
    "state",
    "options",
    "started_at",
    "finished_at",
    "error",
    "tables",
)
_RUN_TIMES: Final = frozenset({"started_at", "finished_at"})


@dataclass(frozen=True)
class TableEntry:
    """One row of ``_conveyor_tables``: where a source table lives."""

    sql_name: str
    table_name: str
    finished_run_id: str | None


def _now() -> datetime:
    return datetime.now(UTC)


class Catalog:
    """The four catalog tables of one warehouse schema and the queries on them."""

    def __init__(self, flavor: Flavor) -> None:
        self._flavor = flavor
        self.metadata = sa.MetaData(schema=flavor.schema)
        timestamp = flavor.type_for(kinds.TIMESTAMP)
        json = flavor.type_for(kinds.JSON)
        self.tables = sa.Table(
            "_conveyor_tables",
            self.metadata,
            sa.Column("source", sa.Text, primary_key=True),
            sa.Column("table_id", sa.Text, primary_key=True),
            sa.Column("table_name", sa.Text, nullable=False),
            sa.Column("sql_name", sa.Text, nullable=False, unique=True),
            # Lets a redelivered prepare/finish of an already swapped-in table be a no-op.
            sa.Column("finished_run_id", sa.Text),
            sa.Column("updated_at", timestamp, nullable=False),
        )
        self.columns = sa.Table(
            "_conveyor_columns",
            self.metadata,
            sa.Column("sql_table", sa.Text, primary_key=True),
            sa.Column("field_key", sa.Text, primary_key=True),
            sa.Column("field_name", sa.Text, nullable=False),
            sa.Column("column_name", sa.Text, nullable=False),
            sa.Column("kind", sa.Text, nullable=False),
            sa.Column("source_type", sa.Text),
            sa.Column("position", sa.Integer, nullable=False),
            sa.UniqueConstraint("sql_table", "column_name"),
        )
        self.batches = sa.Table(
            "_conveyor_batches",
            self.metadata,
            sa.Column("run_id", sa.Text, primary_key=True),
            sa.Column("table_id", sa.Text, primary_key=True),
            sa.Column("batch_no", sa.Integer, primary_key=True),
            sa.Column("sql_table", sa.Text, nullable=False),
            sa.Column("loaded", sa.Integer, nullable=False),
            sa.Column("rejected", json),
            sa.Column("loaded_at", timestamp, nullable=False),
        )
        # The sync state of each source table, committed with its data (``app.sync.changes``):
        # one cursor per change source, so a window and a change feed keep theirs side by side.
        self.sync_state = sa.Table(
            "_conveyor_sync_state",
            self.metadata,
            sa.Column("source", sa.Text, primary_key=True),
            sa.Column("table_id", sa.Text, primary_key=True),
            sa.Column("change_source", sa.Text, primary_key=True),
            sa.Column("cursor", json, nullable=False),
            sa.Column("run_id", sa.Text, nullable=False),
            sa.Column("updated_at", timestamp, nullable=False),
        )
        # The ids a run's listing of every live record saw; the table's other rows were
        # deleted at the source. Emptied when the run finishes the table.
        self.seen = sa.Table(
            "_conveyor_seen",
            self.metadata,
            sa.Column("run_id", sa.Text, primary_key=True),
            sa.Column("table_id", sa.Text, primary_key=True),
            sa.Column("record_id", sa.Text, primary_key=True),
        )
        # Columns whose field the source no longer has: kept with their values.
        self.retired = sa.Table(
            "_conveyor_retired_columns",
            self.metadata,
            sa.Column("sql_table", sa.Text, primary_key=True),
            sa.Column("field_key", sa.Text, primary_key=True),
            sa.Column("column_name", sa.Text, nullable=False),
            sa.Column("retired_at", timestamp, nullable=False),
        )
        self.runs = sa.Table(
            "_conveyor_runs",
            self.metadata,
            sa.Column("run_id", sa.Text, primary_key=True),
            sa.Column("workflow", sa.Text),
            sa.Column("state", sa.Text),
            sa.Column("options", json),
            sa.Column("started_at", timestamp),
            sa.Column("finished_at", timestamp),
            sa.Column("error", sa.Text),
            sa.Column("tables", json),
        )

    def create(self, conn: sa.Connection) -> None:
        """Create the catalog tables that are missing."""
        self.metadata.create_all(conn, checkfirst=True)

    # -- tables ---------------------------------------------------------------------------

    def table_entry(self, conn: sa.Connection, table: TableRef) -> TableEntry | None:
        """Where ``table`` lives, or None if it has never been prepared."""
        t = self.tables.c
        query = sa.select(t.sql_name, t.table_name, t.finished_run_id).where(
            t.source == table.source, t.table_id == table.table_id
        )
        row = conn.execute(query).first()
        return None if row is None else TableEntry(row[0], row[1], row[2])

    def sql_names(self, conn: sa.Connection) -> list[str]:
        """Every data table name the catalog has handed out."""
        return list(conn.execute(sa.select(self.tables.c.sql_name)).scalars())

    def add_table(self, conn: sa.Connection, table: TableRef, sql_name: str) -> None:
        """Reserve ``sql_name`` for ``table``."""
        conn.execute(
            sa.insert(self.tables).values(
                source=table.source,
                table_id=table.table_id,
                table_name=table.name,
                sql_name=sql_name,
                updated_at=_now(),
            )
        )

    def touch_table(
        self, conn: sa.Connection, table: TableRef, finished_run_id: str | None = None
    ) -> None:
        """Record ``table``'s current name and the time (and the run that just finished it)."""
        values: dict[str, Any] = {"table_name": table.name, "updated_at": _now()}
        if finished_run_id is not None:
            values["finished_run_id"] = finished_run_id
        t = self.tables.c
        conn.execute(
            sa.update(self.tables)
            .where(t.source == table.source, t.table_id == table.table_id)
            .values(**values)
        )

    # -- columns --------------------------------------------------------------------------

    def column_map(self, conn: sa.Connection, sql_table: str) -> list[Column]:
        """The field→column mapping of ``sql_table``, in field order."""
        c = self.columns.c
        query = (
            sa.select(c.field_key, c.field_name, c.column_name, c.kind, c.source_type)
            .where(c.sql_table == sql_table)
            .order_by(c.position, c.column_name)
        )
        return [Column(*row[:4], source_type=row[4]) for row in conn.execute(query)]

    def save_columns(self, conn: sa.Connection, sql_table: str, columns: Sequence[Column]) -> None:
        """Store the mapping of ``columns`` (in that order) for ``sql_table``."""
        if not columns:
            return
        rows = [
            {
                "sql_table": sql_table,
                "field_key": col.field_key,
                "field_name": col.field_name,
                "column_name": col.column,
                "kind": col.kind,
                "source_type": col.source_type,
                "position": position,
            }
            for position, col in enumerate(columns)
        ]
        update = ["field_name", "column_name", "kind", "source_type", "position"]
        conn.execute(self._flavor.upsert(self.columns, ["sql_table", "field_key"], update), rows)

    def drop_columns(self, conn: sa.Connection, sql_table: str) -> None:
        """Forget the mapping of ``sql_table``."""
        conn.execute(sa.delete(self.columns).where(self.columns.c.sql_table == sql_table))

    def move_columns(self, conn: sa.Connection, source: str, dest: str) -> None:
        """Make ``source``'s mapping (a staging table's) the mapping of ``dest``."""
        self.drop_columns(conn, dest)
        c = self.columns.c
        conn.execute(sa.update(self.columns).where(c.sql_table == source).values(sql_table=dest))

    # -- batches --------------------------------------------------------------------------

    def claim_batch(self, conn: sa.Connection, batch: Batch, sql_table: str) -> bool:
        """Insert the batch's key; False if it is already there (the batch was loaded).

        On PostgreSQL a concurrent delivery of the same batch waits here for the first one's
        transaction, then finds the key taken.
        """
        keys = ["run_id", "table_id", "batch_no"]
        # RETURNING, not rowcount: psycopg reports -1 for an INSERT … ON CONFLICT DO NOTHING.
        stmt = self._flavor.upsert(self.batches, keys, []).returning(self.batches.c.batch_no)
        values = {
            "run_id": batch.run_id,
            "table_id": batch.table.table_id,
            "batch_no": batch.batch_no,
            "sql_table": sql_table,
            "loaded": 0,
            "rejected": [],
            "loaded_at": _now(),
        }
        return conn.execute(stmt, values).first() is not None

    def settle_batch(self, conn: sa.Connection, result: BatchResult) -> None:
        """Store what loading a claimed batch did."""
        b = self.batches.c
        rejected = [{"record_id": r.record_id, "reason": r.reason} for r in result.rejected]
        conn.execute(
            sa.update(self.batches)
            .where(
                b.run_id == result.run_id,
                b.table_id == result.table_id,
                b.batch_no == result.batch_no,
            )
            .values(loaded=result.loaded, rejected=rejected, loaded_at=_now())
        )

    def stored_batch(self, conn: sa.Connection, batch: Batch) -> BatchResult:
        """The stored result of an already loaded batch, marked ``replayed``."""
        b = self.batches.c
        query = sa.select(b.loaded, b.rejected).where(
            b.run_id == batch.run_id,
            b.table_id == batch.table.table_id,
            b.batch_no == batch.batch_no,
        )
        loaded, rejected = conn.execute(query).one()
        return BatchResult(
            run_id=batch.run_id,
            table_id=batch.table.table_id,
            batch_no=batch.batch_no,
            loaded=loaded,
            rejected=tuple(RejectedRecord(**r) for r in rejected or ()),
            replayed=True,
        )

    def loaded_batches(
        self, conn: sa.Connection, run_id: str, table_id: str, sql_table: str | None = None
    ) -> dict[int, int]:
        """batch_no → rows loaded, for one run's table (optionally only into ``sql_table``)."""
        b = self.batches.c
        query = sa.select(b.batch_no, b.loaded).where(b.run_id == run_id, b.table_id == table_id)
        if sql_table is not None:
            query = query.where(b.sql_table == sql_table)
        return {row[0]: row[1] for row in conn.execute(query.order_by(b.batch_no))}

    # -- sync state and deletes ------------------------------------------------------------

    def state(self, conn: sa.Connection, source: str, table_id: str,
              change_source: str) -> dict[str, Any] | None:
        """The cursor stored for one source table and change source, or None."""
        s = self.sync_state.c
        query = sa.select(s.cursor).where(s.source == source, s.table_id == table_id,
                                          s.change_source == change_source)
        value = conn.execute(query).scalar_one_or_none()
        return dict(value) if isinstance(value, dict) else None

    def save_state(self, conn: sa.Connection, source: str, table_id: str,
                   cursor: dict[str, Any], run_id: str) -> None:
        """Store ``cursor`` (its ``source`` key names the change source) for one table."""
        stmt = self._flavor.upsert(self.sync_state, ["source", "table_id", "change_source"],
                                   ["cursor", "run_id", "updated_at"])
        conn.execute(stmt, {"source": source, "table_id": table_id,
                            "change_source": str(cursor.get("source", "")), "cursor": cursor,
                            "run_id": run_id, "updated_at": _now()})

    def add_seen(self, conn: sa.Connection, run_id: str, table_id: str, ids: Sequence[str]) -> None:
        """Remember that a full listing of run ``run_id`` saw ``ids``."""
        if ids:
            stmt = self._flavor.upsert(self.seen, ["run_id", "table_id", "record_id"], [])
            conn.execute(stmt, [{"run_id": run_id, "table_id": table_id, "record_id": i}
                                for i in dict.fromkeys(ids)])

    def forget_seen(self, conn: sa.Connection, run_id: str, table_id: str) -> None:
        """Drop what run ``run_id`` saw of ``table_id``."""
        s = self.seen.c
        conn.execute(sa.delete(self.seen).where(s.run_id == run_id, s.table_id == table_id))

    def seen_clause(self, record_id: sa.ColumnElement[Any], run_id: str,
                    table_id: str) -> sa.ColumnElement[bool]:
        """SQL: the run's full listing saw ``record_id``."""
        s = self.seen.c
        return sa.exists().where(s.run_id == run_id, s.table_id == table_id,
                                 s.record_id == record_id)

    def retire_columns(self, conn: sa.Connection, sql_table: str, columns: Sequence[Column],
                       current: set[str]) -> None:
        """Mark the ``columns`` whose field key is not in ``current`` retired (once), and
        un-retire those whose field came back."""
        r = self.retired.c
        back = [c.field_key for c in columns if c.field_key in current]
        if back:
            conn.execute(sa.delete(self.retired).where(r.sql_table == sql_table,
                                                       r.field_key.in_(back)))
        gone = [c for c in columns if c.field_key not in current]
        if gone:
            stmt = self._flavor.upsert(self.retired, ["sql_table", "field_key"], [])
            conn.execute(stmt, [{"sql_table": sql_table, "field_key": c.field_key,
                                 "column_name": c.column, "retired_at": _now()} for c in gone])

    def retired_columns(self, conn: sa.Connection, sql_table: str) -> dict[str, str]:
        """field key → column of the retired columns of ``sql_table``."""
        r = self.retired.c
        query = sa.select(r.field_key, r.column_name).where(r.sql_table == sql_table)
        return {row[0]: row[1] for row in conn.execute(query)}

    # -- runs -----------------------------------------------------------------------------

    def record_run(self, conn: sa.Connection, run: dict[str, Any]) -> None:
        """Insert or update one run; keys left out of ``run`` keep their stored value.

        Raises:
            ValueError: ``run`` has no ``run_id``, an unknown key or an unparseable time.
        """
        unknown = sorted(set(run) - set(RUN_KEYS))
        if unknown or not run.get("run_id"):
            raise ValueError(f"a run needs a run_id and only the keys {RUN_KEYS}; got {unknown}")
        values = {key: _run_time(key, value) for key, value in run.items()}
        update = [key for key in values if key != "run_id"]
        conn.execute(self._flavor.upsert(self.runs, ["run_id"], update), values)

    def list_runs(self, conn: sa.Connection, limit: int) -> list[dict[str, Any]]:
        """The latest ``limit`` runs, newest first; times are aware UTC datetimes."""
        r = self.runs.c
        query = (
            sa.select(*(r[key] for key in RUN_KEYS))
            .order_by(r.started_at.desc().nulls_last(), r.run_id.desc())
            .limit(limit)
        )
        runs = []
        for row in conn.execute(query):
            run = dict(row._mapping)
            for key in _RUN_TIMES:
                run[key] = kinds.from_column(kinds.TIMESTAMP, run[key])
            runs.append(run)
        return runs


def _run_time(key: str, value: Any) -> Any:
    if key not in _RUN_TIMES or value is None:
        return value
    converted = kinds.to_column(kinds.TIMESTAMP, value)
    if converted is kinds.MISFIT:
        raise ValueError(f"run {key} must be a datetime or an ISO 8601 string, not {value!r}")
    return converted
