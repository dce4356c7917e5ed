"""Warehouses: SQL databases (SQLite, PostgreSQL) that Conveyor loads source tables into.

Every source table becomes one data table, ``<source>__<table name in snake_case>``, with
Conveyor's columns ``__id`` (text primary key: the record id), ``__created_time``,
``__run_id`` (the run that last wrote the row) and ``__unfit`` (JSON: ``{field name: value}``
for every value that did not fit its column, kept whole), then one column per field.
Identifiers are always quoted; names are snake_case ASCII of at most 63 bytes.

The warehouse also holds Conveyor's catalog (on PostgreSQL in the same schema, ``raw`` by
default), which users may read:

``_conveyor_tables`` (source, table_id, table_name, sql_name, finished_run_id, updated_at)
    Where each source table lives. Keyed by (source, table_id), so a renamed table keeps
    its warehouse name; ``finished_run_id`` is the run that last finished loading it.
``_conveyor_columns`` (sql_table, field_key, field_name, column_name, kind, source_type,
position)
    Which column each field lands in. Keyed by (sql_table, field_key): a field keeps its
    column across runs even when renamed (``field_key`` is Airtable's field id).
``_conveyor_batches`` (run_id, table_id, batch_no, sql_table, loaded, rejected, loaded_at)
    One row per loaded batch, written in the same transaction as the batch's rows, so a
    redelivered batch is a no-op. ``rejected`` lists ``{record_id, reason}``.
``_conveyor_runs`` (run_id, workflow, state, options, started_at, finished_at, error, tables)
    Run history, written by ``Warehouse.record_run``.

Example:
    >>> warehouse = warehouse_for_url("sqlite:///data/warehouse.db")
    >>> warehouse.check()
"""

from __future__ import annotations

from app.errors import ConfigurationError
from app.settings import get_settings
from app.warehouses.base import Warehouse
from app.warehouses.failures import masked_url, parse_url
from app.warehouses.postgres import PostgresWarehouse
from app.warehouses.sqlite import SQLiteWarehouse

__all__ = ["PostgresWarehouse", "SQLiteWarehouse", "Warehouse", "warehouse_for_url"]

_CLASSES: dict[str, type[Warehouse]] = {
    backend: cls for cls in (SQLiteWarehouse, PostgresWarehouse) for backend in cls.backends
}


def warehouse_for_url(url: str | None = None, schema: str | None = None) -> Warehouse:
    """The warehouse for ``url``, of the class its scheme names.

    Args:
        url: A database URL; ``WAREHOUSE_URL`` when None.
        schema: The schema for PostgreSQL; ``WAREHOUSE_SCHEMA`` when None.

    Raises:
        ConfigurationError: the URL is invalid or names a database Conveyor does not support.
    """
    text = url if url is not None else get_settings().warehouse_url
    parsed = parse_url(text)
    cls = _CLASSES.get(parsed.get_backend_name())
    if cls is None:
        raise ConfigurationError(
            f"WAREHOUSE_URL {masked_url(parsed)} names an unsupported database"
            f" {parsed.get_backend_name()!r}: use sqlite:///path/to/file.db or"
            " postgresql://user:password@host:5432/database"
        )
    return cls(text, schema=schema)
