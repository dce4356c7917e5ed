"""PostgresWarehouse: PostgreSQL through psycopg 3, tables in their own schema (``raw``)."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any, Final

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import TypeEngine

from app.contracts import Column, Record, RejectedRecord, TableTarget
from app.errors import ConfigurationError
from app.settings import get_settings
from app.warehouses import codec, ddl, kinds, loader, naming
from app.warehouses.base import Warehouse
from app.warehouses.failures import masked_url, one_line

#: Drivers accepted in WAREHOUSE_URL; all of them mean psycopg 3, the one installed.
_DRIVERS: Final = frozenset({"postgresql", "postgres", "postgresql+psycopg"})
CONNECT_TIMEOUT_SECONDS: Final = 10
#: SQLSTATE class "program limit exceeded": a row, value or statement too large or too deep.
#: Retrying cannot help, so it is never transient; for a row it rejects only that row.
_LIMIT_CLASS: Final = "54"
#: "row is too big": more than a page even after TOAST, as a row of hundreds of short
#: values gets (each would need an 18-byte pointer to move out of line).
_ROW_TOO_BIG: Final = "54000"

_TYPES: Final[dict[str, TypeEngine[Any]]] = {
    kinds.TEXT: sa.Text(),
    kinds.NUMBER: sa.Double(),
    kinds.INTEGER: sa.BigInteger(),
    kinds.BOOLEAN: sa.Boolean(),
    kinds.DATE: sa.Date(),
    kinds.TIMESTAMP: sa.DateTime(timezone=True),
    kinds.JSON: postgresql.JSONB(none_as_null=True),
}


class PostgresWarehouse(Warehouse):
    """A warehouse in a PostgreSQL database; every table lives in ``schema`` (default ``raw``)."""

    backends = ("postgresql", "postgres")
    exact_floats = True
    allows_nul = False  # text, and JSONB strings, refuse U+0000

    def _normalise_url(self, url: sa.URL) -> sa.URL:
        if url.drivername not in _DRIVERS:
            raise ConfigurationError(
                f"WAREHOUSE_URL {masked_url(url)} uses driver {url.drivername!r}:"
                " use postgresql:// (Conveyor connects through psycopg 3)"
            )
        return url.set(drivername="postgresql+psycopg")

    def _pick_schema(self, schema: str | None) -> str | None:
        name = schema if schema is not None else get_settings().warehouse_schema
        if not name or len(name.encode("utf-8")) > naming.MAX_NAME_BYTES:
            raise ConfigurationError(
                f"WAREHOUSE_SCHEMA {name!r} must be a name of 1 to {naming.MAX_NAME_BYTES} bytes"
            )
        return name

    def _create_engine(self) -> sa.Engine:
        return sa.create_engine(
            self.url,
            # A server restart leaves dead pooled connections: test each one before use.
            pool_pre_ping=True,
            connect_args={
                "connect_timeout": CONNECT_TIMEOUT_SECONDS,
                "application_name": "conveyor",
            },
            json_serializer=kinds.to_json_text,
            json_deserializer=codec.from_json_text,
        )

    def type_for(self, kind: str) -> TypeEngine[Any]:
        return _TYPES[kind]

    def upsert(self, table: sa.Table, keys: Sequence[str], update: Sequence[str]) -> sa.Insert:
        return ddl.on_conflict_upsert(postgresql.insert, table, keys, update)

    def write_rows(
        self,
        conn: sa.Connection,
        target: TableTarget,
        pending: list[tuple[Record, dict[str, Any]]],
        run_id: str,
    ) -> list[RejectedRecord]:
        """The batch through ``COPY`` into a temporary table and one ``INSERT … SELECT … ON
        CONFLICT`` into the target: one round trip for the rows instead of one statement per
        row. If the database refuses a row, the savepoint drops the whole attempt and the
        batch goes row by row (``loader.write_rows``), so exactly the refused records are set
        aside, with the database's reason, as before."""
        if not pending:
            return []
        try:
            with conn.begin_nested():
                _copy_merge(conn, ddl.data_table(self, target.write_to, target.columns),
                            [row for _, row in pending])
            return []
        except sa.exc.DBAPIError as exc:
            if not self.refuses_row(exc):
                raise
        return loader.write_rows(conn, self, target, pending, run_id)

    def change_column_types(
        self, conn: sa.Connection, name: str, layout: Sequence[Column], retyped: Sequence[Column]
    ) -> None:
        # In place, one rewrite for all columns: the table keeps its grants, comments and
        # column order. The values were saved by the caller, who writes them back converted.
        table = ddl.data_table(self, name, retyped)
        preparer = conn.dialect.identifier_preparer
        clauses = ", ".join(
            f"ALTER COLUMN {preparer.format_column(table.c[col.column])}"
            f" TYPE {self.type_for(col.kind).compile(dialect=conn.dialect)} USING NULL"
            for col in retyped
        )
        conn.exec_driver_sql(f"ALTER TABLE {preparer.format_table(table)} {clauses}")

    def lock_catalog(self, conn: sa.Connection) -> None:
        # Two processes preparing tables at once would both pick the same free name, and
        # concurrent CREATE … IF NOT EXISTS can fail; one transaction-scoped lock per schema.
        key = zlib.crc32(f"conveyor:{self.schema}".encode())
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))

    def _prepare_database(self, conn: sa.Connection) -> None:
        assert self.schema is not None
        conn.execute(sa.schema.CreateSchema(self.schema, if_not_exists=True))

    def _is_transient(self, exc: sa.exc.DBAPIError) -> bool:
        # psycopg raises OperationalError for lost connections, server shutdowns,
        # deadlocks and serialisation failures: all worth a retry. Also for program limits
        # (a row too big, too many columns): never worth one.
        if _sqlstate(exc).startswith(_LIMIT_CLASS):
            return False
        return super()._is_transient(exc) or isinstance(exc, sa.exc.OperationalError)

    def refuses_row(self, exc: sa.exc.DBAPIError) -> bool:
        return super().refuses_row(exc) or _sqlstate(exc).startswith(_LIMIT_CLASS)

    def row_too_large(self, exc: sa.exc.DBAPIError) -> bool:
        # Also raised for an over-long index entry (a huge id), where packing fails again
        # and the row is rejected with the database's reason.
        return _sqlstate(exc) == _ROW_TOO_BIG

    def _diagnose(self, exc: sa.exc.DBAPIError) -> str:
        reason = one_line(str(exc.orig))
        lowered = reason.lower()
        if "does not exist" in lowered and "database" in lowered:
            return f"names a database that does not exist: {reason}; create it or fix the name"
        if "authentication failed" in lowered or "password" in lowered:
            return f"was refused: {reason}; fix the user or password"
        if "permission denied" in lowered or "read-only" in lowered:
            return (
                f"is not writable: {reason}; grant the user CREATE on the database"
                f" and schema {self.schema!r}"
            )
        if isinstance(exc, sa.exc.OperationalError):
            return f"is unreachable: {reason}; check the host and port and that PostgreSQL runs"
        return f"cannot be used: {reason}"


def _copy_merge(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """``rows`` copied into a temporary twin of ``table`` (dropped at commit, or with the
    caller's savepoint), then upserted by ``__id`` in one statement, as ``upsert`` does."""
    preparer = conn.dialect.identifier_preparer
    target = preparer.format_table(table)
    staging = f"_conveyor_copy_{zlib.crc32(table.name.encode()):08x}"
    names = [column.name for column in table.columns]
    quoted = ", ".join(preparer.quote(name) for name in names)
    # JSONB values are written as SQLAlchemy would bind them (the codec's text, NaN markers
    # and all); every other value as psycopg dumps it.
    as_json = [isinstance(column.type, postgresql.JSONB) for column in table.columns]
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS pg_temp.{staging}")
    conn.exec_driver_sql(
        f"CREATE TEMPORARY TABLE {staging} (LIKE {target} INCLUDING DEFAULTS) ON COMMIT DROP")
    statement = f"COPY {staging} ({quoted}) FROM STDIN"
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row([
                    None if (value := row.get(name)) is None
                    else kinds.to_json_text(value) if json else value
                    for name, json in zip(names, as_json, strict=True)])
    except psycopg.Error as exc:  # as SQLAlchemy wraps it, so refusals are told apart the same way
        raise sa.exc.DBAPIError.instance(statement, None, exc, psycopg.Error) from exc
    updates = ", ".join(f"{preparer.quote(n)} = EXCLUDED.{preparer.quote(n)}"
                        for n in names if n != naming.ID)
    conflict = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
    conn.exec_driver_sql(
        f"INSERT INTO {target} ({quoted}) SELECT {quoted} FROM {staging} "
        f"ON CONFLICT ({preparer.quote(naming.ID)}) {conflict}")
    conn.exec_driver_sql(f"DROP TABLE {staging}")


def _sqlstate(exc: sa.exc.DBAPIError) -> str:
    return str(getattr(exc.orig, "sqlstate", None) or "")
