"""DuckDBWarehouse: one DuckDB file, native types, Arrow bulk loads, one writer process at a time."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.pool import NullPool, StaticPool
from sqlalchemy.types import TypeEngine

from app.contracts import Batch, BatchResult, Record, RejectedRecord, TableTarget
from app.errors import ConfigurationError, WarehouseError
from app.warehouses import codec, ddl, duck_bulk, kinds
from app.warehouses.base import Warehouse
from app.warehouses.duck_lock import LOCK_TIMEOUT_SECONDS, connect_locked
from app.warehouses.failures import one_line

_TYPES: Final[dict[str, TypeEngine[Any]]] = {
    kinds.TEXT: sa.Text(),
    # Airtable sends IEEE doubles: DOUBLE keeps each one exactly (NaN, ±Infinity and -0.0
    # too), where a DECIMAL would round them to its scale.
    kinds.NUMBER: sa.Double(),
    kinds.INTEGER: sa.BigInteger(),
    kinds.BOOLEAN: sa.Boolean(),
    kinds.DATE: sa.Date(),
    kinds.TIMESTAMP: sa.DateTime(timezone=True),  # TIMESTAMP WITH TIME ZONE
    kinds.JSON: sa.JSON(none_as_null=True),  # DuckDB's JSON type (validated text)
}


class DuckDBWarehouse(Warehouse):
    """A warehouse in one DuckDB file (``duckdb:///path/to/warehouse.duckdb``).

    DuckDB has schemas, but tables go to its default one (``main``), where notebooks and
    dbt look first; ``schema`` is ignored. Every value type is native: ``DOUBLE``,
    ``BIGINT``, ``BOOLEAN``, ``DATE``, ``TIMESTAMP WITH TIME ZONE`` (sessions run in UTC),
    ``JSON``. A batch is upserted in one ``INSERT … SELECT`` from an Arrow table.

    Only one process may have a DuckDB file open for writing, so every connection holds a
    lock on ``<file>.lock`` from open to close (see ``duck_lock``): load workers take turns
    per transaction instead of failing. ``?lock_timeout=SECONDS`` in the URL sets how long
    one waits (120 s by default) before the wait counts as a transient failure.
    """

    backends = ("duckdb",)
    exact_floats = True  # DOUBLE keeps NaN and -0.0
    allows_nul = True  # VARCHAR and JSON hold U+0000

    def _normalise_url(self, url: sa.URL) -> sa.URL:
        if url.drivername not in ("duckdb", "duckdb+duckdb_engine"):
            raise ConfigurationError(
                f"WAREHOUSE_URL {url.drivername}:// is not a DuckDB URL: use duckdb:///path.duckdb"
            )
        raw = url.query.get("lock_timeout", str(LOCK_TIMEOUT_SECONDS))
        try:
            self.lock_timeout = float(raw if isinstance(raw, str) else raw[0])
        except ValueError:
            raise ConfigurationError(
                f"WAREHOUSE_URL ?lock_timeout={raw!r} must be a number of seconds"
            ) from None
        # DuckDB would take every other query key as a database setting.
        return url.difference_update_query(["lock_timeout"])

    @property
    def in_memory(self) -> bool:
        """Whether the database lives only in this process (``duckdb:///:memory:``)."""
        return self.url.database in (None, "", ":memory:")

    def _create_engine(self) -> sa.Engine:
        engine = sa.create_engine(
            self.url,
            # A file is opened per transaction (so other processes get their turn); an
            # in-memory database is one shared connection, or each would be a new database.
            poolclass=StaticPool if self.in_memory else NullPool,
            json_serializer=kinds.to_json_text,
            json_deserializer=codec.from_json_text,
        )
        if not self.in_memory:
            sa.event.listen(engine, "do_connect", self._connect)
        sa.event.listen(engine, "connect", _on_connect)
        return engine

    def _connect(
        self, dialect: sa.Dialect, record: Any, cargs: tuple[Any, ...], cparams: dict[str, Any]
    ) -> Any:
        database = str(self.url.database)
        connect = partial(dialect.connect, *cargs, **cparams)
        return connect_locked(database, connect, self.lock_timeout, self.display_url)

    def type_for(self, kind: str) -> TypeEngine[Any]:
        return _TYPES[kind]

    def upsert(self, table: sa.Table, keys: Sequence[str], update: Sequence[str]) -> sa.Insert:
        # duckdb-engine compiles PostgreSQL's constructs, and DuckDB runs its ON CONFLICT.
        return ddl.on_conflict_upsert(postgresql.insert, table, keys, update)

    def write_rows(
        self,
        conn: sa.Connection,
        target: TableTarget,
        pending: list[tuple[Record, dict[str, Any]]],
        run_id: str,
    ) -> list[RejectedRecord]:
        return duck_bulk.write_rows(conn, self, target, pending)

    def load_batch(self, target: TableTarget, batch: Batch) -> BatchResult:
        # DuckDB has no savepoints and aborts a transaction on any error, so a row it
        # refuses cannot be set aside inside the batch's transaction: the refused rows are
        # found one by one (each in a transaction rolled back), then the batch loads again
        # without them.
        try:
            return super().load_batch(target, batch)
        except duck_bulk.RowsRefused:
            pass
        with self._writing(f"testing the rows of batch {batch.batch_no}") as conn:
            refused = duck_bulk.probe_rows(conn, self, target, batch)
        try:
            with duck_bulk.refusing(refused):
                return super().load_batch(target, batch)
        except duck_bulk.RowsRefused as exc:  # refused only together with other rows
            raise WarehouseError(
                f"warehouse {self.display_url} refused batch {batch.batch_no} of table"
                f" {target.table.name!r} although each row alone fits: {exc}"
            ) from None

    def _prepare_location(self) -> None:
        if self.in_memory:
            return
        self._make_directory_of(str(self.url.database))

    def _is_transient(self, exc: sa.exc.DBAPIError) -> bool:
        message = str(exc.orig).lower()
        held = "could not set lock" in message or "conflicting lock" in message
        # Two transactions of one process touching the same rows: the loser may retry.
        conflict = "transaction" in message and "conflict" in message
        return super()._is_transient(exc) or held or conflict

    def _diagnose(self, exc: sa.exc.DBAPIError) -> str:
        reason = one_line(str(exc.orig))
        lowered = reason.lower()
        if "lock" in lowered:
            return (
                f"is held open by another program: {reason}; close it (a notebook or"
                " dbt session) or let it read a copy"
            )
        if any(s in lowered for s in ("read-only", "readonly", "permission", "cannot open")):
            return (
                f"is not writable: {reason}; point it at a file in a writable directory"
                " (duckdb:////absolute/path.duckdb)"
            )
        return f"cannot be used: {reason}"


def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    # TIMESTAMP WITH TIME ZONE values come back in the session's zone: make it UTC, as
    # read_records promises, whatever the machine's zone is.
    dbapi_connection.execute("SET TimeZone = 'UTC'")
