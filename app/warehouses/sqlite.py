"""SQLiteWarehouse: a local file, in WAL mode so several loader processes can write to it."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeEngine

from app.warehouses import codec, ddl, kinds
from app.warehouses.base import READ_ONLY_OPTION, Warehouse
from app.warehouses.failures import one_line

#: How long a writer waits for another process's write transaction before "database is locked".
BUSY_TIMEOUT_SECONDS: Final = 30.0


class UTCDateTime(sa.TypeDecorator[datetime]):
    """An aware datetime stored as naive UTC text: SQLite has no time zones.

    SQLAlchemy's SQLite DateTime drops the offset, so a value is converted to UTC before it
    is stored and gets ``tzinfo=UTC`` back when read.
    """

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else kinds.as_utc(value).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)

    def bind_processor(self, dialect: sa.Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        # The text SQLAlchemy's SQLite DateTime writes (its default storage format) in one
        # call, instead of this type's conversion and then that formatting: a tenth of a
        # load's time when every record has a timestamp or two.
        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is not UTC:
                value = kinds.as_utc(value)
            return value.isoformat(" ", "microseconds")[:_STORED_LENGTH]  # without "+00:00"

        return process


#: "YYYY-MM-DD HH:MM:SS.ffffff"
_STORED_LENGTH: Final = 26


_TYPES: Final[dict[str, TypeEngine[Any]]] = {
    kinds.TEXT: sa.Text(),
    kinds.NUMBER: sa.Double(),
    kinds.INTEGER: sa.BigInteger(),
    kinds.BOOLEAN: sa.Boolean(),
    kinds.DATE: sa.Date(),
    kinds.TIMESTAMP: UTCDateTime(),
    kinds.JSON: sa.JSON(none_as_null=True),
}


class SQLiteWarehouse(Warehouse):
    """A warehouse in one SQLite file (default ``sqlite:///data/warehouse.db``).

    SQLite has no schemas, so ``schema`` is ignored. Timestamps are stored as naive UTC.
    A NaN or -0.0 in a number field is kept in ``__unfit`` (a REAL column loses both).
    A writer waits up to 30 s for another one (``?timeout=SECONDS`` in the URL changes it).
    """

    backends = ("sqlite",)
    # A REAL column makes NaN NULL and -0.0 zero: those go to __unfit. Text keeps NUL.
    exact_floats = False
    allows_nul = True

    @property
    def binds_json_text(self) -> bool:
        # the default write path binds through the engine; a subclass writing rows its own
        # way gets the values themselves
        return type(self).write_rows is Warehouse.write_rows

    def _create_engine(self) -> sa.Engine:
        in_memory = self.url.database in (None, "", ":memory:")
        # connect_args would override the URL's own ``?timeout=`` (seconds), so only default it.
        timeout = {} if "timeout" in self.url.query else {"timeout": BUSY_TIMEOUT_SECONDS}
        engine = sa.create_engine(
            self.url,
            connect_args=timeout,
            json_serializer=kinds.to_json_text,
            json_deserializer=codec.from_json_text,
            # One shared connection, or each connection would get its own empty database.
            poolclass=StaticPool if in_memory else None,
        )
        sa.event.listen(engine, "connect", _on_connect)
        sa.event.listen(engine, "begin", _on_begin)
        return engine

    def type_for(self, kind: str) -> TypeEngine[Any]:
        return _TYPES[kind]

    def upsert(self, table: sa.Table, keys: Sequence[str], update: Sequence[str]) -> sa.Insert:
        return ddl.on_conflict_upsert(sqlite.insert, table, keys, update)

    def _prepare_location(self) -> None:
        database = self.url.database
        if not database or database == ":memory:" or self.url.query.get("uri"):
            return
        self._make_directory_of(database)

    def _is_transient(self, exc: sa.exc.DBAPIError) -> bool:
        message = str(exc.orig).lower()
        return super()._is_transient(exc) or "locked" in message or "busy" in message

    def _diagnose(self, exc: sa.exc.DBAPIError) -> str:
        reason = one_line(str(exc.orig))
        lowered = reason.lower()
        if any(s in lowered for s in ("readonly", "read-only", "unable to open", "permission")):
            return (
                f"is not writable: {reason}; point it at a file in a writable directory"
                " (sqlite:////absolute/path.db)"
            )
        return f"cannot be used: {reason}"


def _on_connect(dbapi_connection: sqlite3.Connection, connection_record: Any) -> None:
    # The driver's own transaction handling would commit before DDL and never BEGIN before
    # it; BEGIN is emitted in _on_begin instead, so a table swap is one transaction.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets readers run while one process writes; NORMAL sync is safe under WAL.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _on_begin(conn: sa.Connection) -> None:
    # A deferred write transaction that started as a reader cannot wait for the lock: it
    # fails at once with "database is locked". Writers take the lock up front and wait.
    read_only = conn.get_execution_options().get(READ_ONLY_OPTION, False)
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")
