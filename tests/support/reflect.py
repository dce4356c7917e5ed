"""Reading a warehouse's tables as the database has them, on every dialect.

duckdb-engine's inspector runs PostgreSQL catalog queries DuckDB cannot answer, so on DuckDB
the tables and columns are read from DuckDB's own ``duckdb_tables()``/``duckdb_columns()``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

_DUCKDB_TYPES: dict[str, Any] = {
    "VARCHAR": sa.Text,
    "DOUBLE": sa.Double,
    "BIGINT": sa.BigInteger,
    "INTEGER": sa.Integer,
    "BOOLEAN": sa.Boolean,
    "DATE": sa.Date,
    "TIMESTAMP WITH TIME ZONE": lambda: sa.DateTime(timezone=True),
    "TIMESTAMP": sa.DateTime,
    "JSON": sa.JSON,
}


def _is_duckdb(bind: Any) -> bool:
    return bind.dialect.name == "duckdb"


def column_types(bind: Any, name: str, schema: str | None = None) -> dict[str, Any]:
    """column name → SQLAlchemy type instance, in table order."""
    if not _is_duckdb(bind):
        return {c["name"]: c["type"] for c in sa.inspect(bind).get_columns(name, schema=schema)}
    query = sa.text(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = :name"
        " AND schema_name = coalesce(:schema, current_schema()) ORDER BY column_index"
    )
    with _connection(bind) as conn:
        found = conn.execute(query, {"name": name, "schema": schema}).all()
    return {column: _DUCKDB_TYPES[data_type]() for column, data_type in found}


def table_names(bind: Any, schema: str | None = None) -> set[str]:
    """Every table of the schema."""
    if not _is_duckdb(bind):
        return set(sa.inspect(bind).get_table_names(schema=schema))
    query = sa.text(
        "SELECT table_name FROM duckdb_tables()"
        " WHERE schema_name = coalesce(:schema, current_schema())"
    )
    with _connection(bind) as conn:
        return set(conn.execute(query, {"schema": schema}).scalars())


def reflect(bind: Any, name: str, schema: str | None = None) -> sa.Table:
    """The ``sa.Table`` of ``name`` as the database has it."""
    if not _is_duckdb(bind):
        return sa.Table(name, sa.MetaData(schema=schema), autoload_with=bind)
    columns = [sa.Column(c, t, quote=True) for c, t in column_types(bind, name, schema).items()]
    return sa.Table(name, sa.MetaData(schema=schema), *columns, quote=True)


class _connection:
    """``bind`` itself if it is a connection, else a connection of the engine."""

    def __init__(self, bind: Any) -> None:
        self.bind = bind
        self.owned: sa.Connection | None = None

    def __enter__(self) -> sa.Connection:
        if isinstance(self.bind, sa.Connection):
            return self.bind
        self.owned = self.bind.connect()
        return self.owned

    def __exit__(self, *exc: object) -> None:
        if self.owned is not None:
            self.owned.close()
