"""Table definitions and DDL shared by every dialect; identifiers always go through quoting."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.schema import CreateColumn
from sqlalchemy.types import TypeEngine

from app.contracts import Column, Record, RejectedRecord, TableTarget
from app.warehouses import kinds, naming


class Flavor(Protocol):
    """What the shared code needs from a dialect; ``Warehouse`` subclasses provide it."""

    @property
    def schema(self) -> str | None:
        """The schema tables live in (None: the database's default)."""
        ...

    def type_for(self, kind: str) -> TypeEngine[Any]:
        """The SQL type of a column of ``kind``."""
        ...

    def upsert(self, table: sa.Table, keys: Sequence[str], update: Sequence[str]) -> sa.Insert:
        """An INSERT that updates ``update`` on a ``keys`` conflict (does nothing if empty)."""
        ...

    def lock_catalog(self, conn: sa.Connection) -> None:
        """Serialise catalog changes (name allocation, DDL) until the transaction ends."""
        ...

    def change_column_types(
        self, conn: sa.Connection, name: str, layout: Sequence[Column], retyped: Sequence[Column]
    ) -> None:
        """Give the ``retyped`` columns of table ``name`` their kinds' SQL types, NULL in every row."""
        ...

    @property
    def exact_floats(self) -> bool:
        """Whether a number column gives NaN and -0.0 back (else they go to ``__unfit``)."""
        ...

    @property
    def allows_nul(self) -> bool:
        """Whether text and JSON values may hold NUL characters."""
        ...

    @property
    def binds_json_text(self) -> bool:
        """Whether rows may carry JSON values as their stored text (``codec.JSONText``)."""
        ...

    def refuses_row(self, exc: sa.exc.DBAPIError) -> bool:
        """Whether ``exc`` is about one row's data, not the connection, table or statement."""
        ...

    def row_too_large(self, exc: sa.exc.DBAPIError) -> bool:
        """Whether ``exc`` says a row is too large for the database as it was laid out."""
        ...

    def write_rows(
        self,
        conn: sa.Connection,
        target: TableTarget,
        pending: list[tuple[Record, dict[str, Any]]],
        run_id: str,
    ) -> list[RejectedRecord]:
        """Upsert the rows of one batch; the records the database refused, with why."""
        ...


def on_conflict_upsert(
    insert: Callable[[sa.Table], Any], table: sa.Table, keys: Sequence[str], update: Sequence[str]
) -> sa.Insert:
    """``INSERT … ON CONFLICT (keys) DO UPDATE SET update = excluded.update`` with the dialect's
    ``insert`` construct (SQLite's and PostgreSQL's share this form)."""
    stmt = insert(table)
    if not update:
        result: sa.Insert = stmt.on_conflict_do_nothing(index_elements=list(keys))
        return result
    excluded = stmt.excluded
    result = stmt.on_conflict_do_update(
        index_elements=list(keys), set_={name: excluded[name] for name in update}
    )
    return result


def data_table(flavor: Flavor, name: str, columns: Iterable[Column]) -> sa.Table:
    """The ``sa.Table`` of a data table: Conveyor's five columns, then one per field."""
    return sa.Table(
        name,
        sa.MetaData(schema=flavor.schema),
        sa.Column(naming.ID, sa.Text, primary_key=True, quote=True),
        sa.Column(naming.CREATED_TIME, flavor.type_for(kinds.TIMESTAMP), quote=True),
        sa.Column(naming.RUN_ID, sa.Text, quote=True),
        sa.Column(naming.UNFIT, flavor.type_for(kinds.JSON), quote=True),
        sa.Column(naming.DELETED_AT, flavor.type_for(kinds.TIMESTAMP), quote=True),
        *(sa.Column(c.column, flavor.type_for(c.kind), quote=True) for c in columns),
        quote=True,
        quote_schema=True,
    )


def bare_table(flavor: Flavor, name: str) -> sa.Table:
    """A column-less ``sa.Table``, enough to quote, rename, drop or count a table."""
    return sa.Table(name, sa.MetaData(schema=flavor.schema), quote=True, quote_schema=True)


def table_exists(conn: sa.Connection, flavor: Flavor, name: str) -> bool:
    """Whether ``name`` exists in the warehouse's schema (seen from this transaction)."""
    if _catalog_reflection(conn):
        return name in _duckdb_tables(conn, flavor, name)
    return sa.inspect(conn).has_table(name, schema=flavor.schema)


def table_names(conn: sa.Connection, flavor: Flavor) -> set[str]:
    """Every table in the warehouse's schema, Conveyor's or not."""
    if _catalog_reflection(conn):
        return _duckdb_tables(conn, flavor)
    return set(sa.inspect(conn).get_table_names(schema=flavor.schema))


def column_names(conn: sa.Connection, flavor: Flavor, name: str) -> set[str]:
    """The columns ``name`` physically has."""
    if _catalog_reflection(conn):
        query = sa.text(
            "SELECT column_name FROM duckdb_columns()"
            " WHERE schema_name = coalesce(:schema, current_schema()) AND table_name = :name"
            " AND database_name = current_database()"
        )
        return set(conn.execute(query, {"schema": flavor.schema, "name": name}).scalars())
    return {c["name"] for c in sa.inspect(conn).get_columns(name, schema=flavor.schema)}


def _catalog_reflection(conn: sa.Connection) -> bool:
    """Whether to read DuckDB's own catalog: duckdb-engine's inspector emulates PostgreSQL's
    ``pg_catalog`` with queries (collations) that DuckDB cannot run."""
    return conn.dialect.name == "duckdb"


def _duckdb_tables(conn: sa.Connection, flavor: Flavor, name: str | None = None) -> set[str]:
    query = (
        "SELECT table_name FROM duckdb_tables() WHERE NOT temporary"
        " AND schema_name = coalesce(:schema, current_schema())"
        " AND database_name = current_database()"
    )
    params: dict[str, Any] = {"schema": flavor.schema}
    if name is not None:
        query += " AND table_name = :name"
        params["name"] = name
    return set(conn.execute(sa.text(query), params).scalars())


def add_columns(conn: sa.Connection, table: sa.Table, names: Iterable[str]) -> None:
    """``ALTER TABLE … ADD COLUMN`` for each of ``names`` (columns of ``table``)."""
    target = conn.dialect.identifier_preparer.format_table(table)
    for name in names:
        column_sql = CreateColumn(table.c[name]).compile(dialect=conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE {target} ADD COLUMN {column_sql}")


def rename_table(conn: sa.Connection, flavor: Flavor, old: str, new: str) -> None:
    """Rename a table within its schema (SQLite and PostgreSQL share this syntax)."""
    preparer = conn.dialect.identifier_preparer
    source = preparer.format_table(bare_table(flavor, old))
    conn.exec_driver_sql(f"ALTER TABLE {source} RENAME TO {preparer.quote_identifier(new)}")


def drop_table(conn: sa.Connection, flavor: Flavor, name: str) -> None:
    """Drop ``name`` if it exists."""
    bare_table(flavor, name).drop(conn, checkfirst=True)


def count_rows(conn: sa.Connection, flavor: Flavor, name: str) -> int:
    """The number of rows of ``name``."""
    query = sa.select(sa.func.count()).select_from(bare_table(flavor, name))
    return int(conn.execute(query).scalar_one())
