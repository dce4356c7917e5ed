"""Warehouses: SQL databases (SQLite, PostgreSQL, DuckDB) that Conveyor loads source tables into.

Every source table becomes one data table, ``<source>__<table name in snake_case>``, with
Conveyor's columns ``__id`` (text primary key: the record id), ``__created_time``,
``__run_id`` (the run that last wrote the row) and ``__unfit`` (JSON: ``{field name: value}``
for every value its column cannot hold, every formula error, and the original of every value
its column holds converted; see ``rows.place``), then one column per field.
Identifiers are always quoted; names are snake_case ASCII of at most 63 bytes.

What "lossless" means: ``read_records`` gives back each record the source sent, field by
field, as follows; anything that cannot be stored so is rejected by record id instead.

text
    The same string, code point for code point and of any length (1 MB cells included):
    emoji and ZWJ sequences, right-to-left text and bidi controls, combining marks (nothing
    is normalised). NUL (U+0000): SQLite stores it; PostgreSQL cannot, in text or in JSONB,
    so there a record holding NUL anywhere is rejected with a reason naming the field.
number
    The same float (NaN as NaN, -0.0 with its sign). ±Infinity is stored in the column on
    both databases, NaN and -0.0 in the column on PostgreSQL and in ``__unfit`` on SQLite
    (whose REAL makes NaN NULL and -0.0 zero). An int only if the float equals it exactly
    (an int beyond 2**53 goes to ``__unfit``).
integer
    Ints within bigint; a whole float (``4.0``) is stored as its int, since JSON does not
    tell them apart (but ``-0.0`` goes to ``__unfit``).
boolean, date, timestamp
    The same value; a timestamp as the same instant, read back in UTC.
json (and ``__unfit``)
    The same JSON value: structure, strings, and numbers by their decimal value. JSONB keeps
    numbers as decimals, so on PostgreSQL a float of 1e16 or more may come back as the int
    with the same digits (``float()`` of it is the original float). The floats JSON has no
    number for (NaN, ±Infinity) and -0.0 are stored as ``{"__conveyor_float__": "NaN"}``
    (``"Infinity"``, ``"-Infinity"``, ``"-0.0"``) and read back as floats; a source object
    that looks like such a marker is stored escaped (see ``codec``). Any nesting depth the
    source's JSON had (50 levels is routine).

Every value lands in its own column when the column holds it exactly or converted (a number
in a text column as its canonical text, a numeric string in a number column: see
``convert``), the original of a converted value kept in ``__unfit``; what the column cannot
hold, and a formula's error object (``{"error": "#ERROR!"}``), leave it NULL and are kept
whole in ``__unfit``. A field keeps its column across runs by field id: a renamed field reads
back under its new name; a retyped field's column is migrated to the new kind in place, its
stored values placed again by the same rules (``retype``), or, when the run replaces the
table (``drop_tables``), created with the new kind. A table may have up to 1600 fields
on PostgreSQL, 2000 on SQLite (Airtable allows 500); a PostgreSQL row must fit one 8 kB page
after TOAST, and a record too wide for that (hundreds of short values) is stored with all
its fields in ``__unfit`` and its field columns NULL.

Every record of a batch is loaded or reported in ``BatchResult.rejected`` with a one-line
reason, so ``loaded + len(rejected) == len(batch.records)`` always: a record the database
refuses is set aside (each row then goes in its own savepoint) and the rest of the batch
lands. An earlier record with the same id as a later one in the same batch is reported as
``superseded``, since the upsert writes only the last. An id no report could hold (not a
string, or with NUL or a lone surrogate) is reported as its ``repr``.

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
from app.warehouses.duck import DuckDBWarehouse
from app.warehouses.failures import masked_url, parse_url
from app.warehouses.postgres import PostgresWarehouse
from app.warehouses.sqlite import SQLiteWarehouse

__all__ = ["DuckDBWarehouse", "PostgresWarehouse", "SQLiteWarehouse", "Warehouse", "warehouse_for_url"]

def warehouse_for_url(url: str | None = None, schema: str | None = None) -> Warehouse:
    """The warehouse for ``url``, of the class its scheme names.

    Args:
        url: A database URL; ``WAREHOUSE_URL`` when None.
        schema: The schema for PostgreSQL; ``WAREHOUSE_SCHEMA`` when None.

    Raises:
        ConfigurationError: the URL is invalid or names a database Conveyor does not support.
    """
    from app.plugins import WAREHOUSES, load_plugins  # plug-ins import this package

    text = url if url is not None else get_settings().warehouse_url
    parsed = parse_url(text)
    load_plugins()
    # Later registrations win, so a plug-in may take over a built-in's scheme.
    schemes = {backend: cls for cls in WAREHOUSES.values() for backend in cls.backends}
    cls = schemes.get(parsed.get_backend_name())
    if cls is None:
        raise ConfigurationError(
            f"WAREHOUSE_URL {masked_url(parsed)} names an unsupported database"
            f" {parsed.get_backend_name()!r}: use sqlite:///path/to/file.db,"
            " duckdb:///path/to/file.duckdb or postgresql://user:password@host:5432/database"
            f" (schemes registered: {', '.join(sorted(schemes))})"
        )
    return cls(text, schema=schema)
