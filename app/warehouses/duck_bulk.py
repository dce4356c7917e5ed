"""DuckDB bulk upserts: a batch staged as one Arrow table and merged by one ``INSERT … SELECT``.

DuckDB runs an ``executemany`` as one statement per row; scanning a registered Arrow table
is one statement for the whole batch (see ``bench/load.py`` for the ratio).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, Final

import duckdb
import pyarrow as pa
import sqlalchemy as sa

from app.contracts import Batch, Record, RejectedRecord, TableTarget
from app.warehouses import ddl, kinds, naming, rows
from app.warehouses.ddl import Flavor

_ARROW_TYPES: Final[dict[str, pa.DataType]] = {
    kinds.TEXT: pa.large_string(),  # large: 500 one-megabyte cells exceed a string array
    kinds.NUMBER: pa.float64(),
    kinds.INTEGER: pa.int64(),
    kinds.BOOLEAN: pa.bool_(),
    kinds.DATE: pa.date32(),
    kinds.TIMESTAMP: pa.timestamp("us", tz="UTC"),
    kinds.JSON: pa.large_string(),  # the codec's JSON text, cast to JSON by the INSERT
}
#: The name the staged batch is registered under, on the transaction's own connection.
_STAGED: Final = "_conveyor_staged_batch"

_local = threading.local()


class RowsRefused(Exception):
    """DuckDB refused a row of the batch; its transaction is lost and must be rolled back."""


@contextmanager
def refusing(refused: dict[str, RejectedRecord]) -> Iterator[None]:
    """Within this block, ``write_rows`` leaves out (and reports) the rows of ``refused``."""
    _local.refused = refused
    try:
        yield
    finally:
        del _local.refused


def layout(target: TableTarget) -> list[tuple[str, str]]:
    """(column, kind) of every column of ``target``'s table, in table order."""
    system = [
        (naming.ID, kinds.TEXT),
        (naming.CREATED_TIME, kinds.TIMESTAMP),
        (naming.RUN_ID, kinds.TEXT),
        (naming.UNFIT, kinds.JSON),
        (naming.DELETED_AT, kinds.TIMESTAMP),
    ]
    return system + [(c.column, c.kind) for c in target.columns]


def to_arrow(batch_rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> pa.Table:
    """The rows as one Arrow table of positional columns ``c0``, ``c1``… typed by kind."""
    arrays = []
    for name, kind in columns:
        values = [row.get(name) for row in batch_rows]
        if kind == kinds.JSON:
            values = [None if v is None else kinds.to_json_text(v) for v in values]
        arrays.append(pa.array(values, type=_ARROW_TYPES[kind]))
    return pa.Table.from_arrays(arrays, names=[f"c{i}" for i in range(len(columns))])


def upsert_sql(conn: sa.Connection, flavor: Flavor, table: str, columns: Sequence[tuple[str, str]]) -> str:
    """``INSERT INTO table … SELECT … FROM`` the staged batch, updating rows whose id exists."""
    preparer = conn.dialect.identifier_preparer
    target = preparer.format_table(ddl.bare_table(flavor, table))
    names = [preparer.quote_identifier(name) for name, _ in columns]
    values = [
        f"CAST(c{i} AS JSON)" if kind == kinds.JSON else f"c{i}"
        for i, (_, kind) in enumerate(columns)
    ]
    updates = ", ".join(f"{name} = excluded.{name}" for name in names[1:])
    return (
        f"INSERT INTO {target} ({', '.join(names)}) SELECT {', '.join(values)} FROM {_STAGED}"
        f" ON CONFLICT ({names[0]}) DO UPDATE SET {updates}"
    )


def write_rows(
    conn: sa.Connection,
    flavor: Flavor,
    target: TableTarget,
    pending: list[tuple[Record, dict[str, Any]]],
) -> list[RejectedRecord]:
    """Upsert the rows in one statement, in ``conn``'s transaction; see ``Warehouse.write_rows``.

    Raises:
        RowsRefused: DuckDB refused a row's data (the transaction must be rolled back).
        sqlalchemy.exc.DBAPIError: any other DuckDB error, for the caller to translate.
    """
    known: dict[str, RejectedRecord] = getattr(_local, "refused", {})
    keep = [row for _, row in pending if row[naming.ID] not in known]
    rejected = [known[row[naming.ID]] for _, row in pending if row[naming.ID] in known]
    if keep:
        columns = layout(target)
        sql = upsert_sql(conn, flavor, target.write_to, columns)
        _run(duckdb_connection(conn), sql, to_arrow(keep, columns))
    return rejected


def probe_rows(
    conn: sa.Connection, flavor: Flavor, target: TableTarget, batch: Batch
) -> dict[str, RejectedRecord]:
    """The rows of ``batch`` DuckDB refuses, each tried alone in a transaction rolled back.

    Uses a second connection to the same database (``conn`` holds the file lock), so the
    probes run in their own transactions and write nothing.
    """
    kept, _ = rows.split_superseded(batch.records)
    columns = layout(target)
    sql = upsert_sql(conn, flavor, target.write_to, columns)
    probe = duckdb_connection(conn).cursor()  # DuckDB's cursor: a connection of its own
    refused: dict[str, RejectedRecord] = {}
    try:
        _probe_each(probe, sql, kept, columns, flavor, target, batch.run_id, refused)
    finally:
        probe.close()
    return refused


def duckdb_connection(conn: sa.Connection) -> duckdb.DuckDBPyConnection:
    """The ``DuckDBPyConnection`` under ``conn`` (duckdb-engine's wrapper hides its cursor())."""
    wrapper: Any = conn.connection.dbapi_connection
    wrapper = getattr(wrapper, "inner", wrapper)  # duck_lock.LockedConnection
    inner: duckdb.DuckDBPyConnection = wrapper._ConnectionWrapper__c
    return inner


def _probe_each(
    probe: duckdb.DuckDBPyConnection,
    sql: str,
    kept: list[Record],
    columns: Sequence[tuple[str, str]],
    flavor: Flavor,
    target: TableTarget,
    run_id: str,
    refused: dict[str, RejectedRecord],
) -> None:
    make_row = rows.RowMaker(target.columns, run_id,
                             exact_floats=flavor.exact_floats, allows_nul=flavor.allows_nul)
    for record in kept:
        try:
            row = make_row(record)
        except rows.UnstorableRecord:
            continue  # the loader reports it without asking the database
        probe.execute("BEGIN TRANSACTION")
        try:
            _run(probe, sql, to_arrow([row], columns))
        except RowsRefused as exc:
            reason = rows.report_text(str(exc))
            refused[row[naming.ID]] = RejectedRecord(rows.report_id(record), reason)
        finally:
            probe.execute("ROLLBACK")


def _run(connection: Any, sql: str, staged: pa.Table) -> None:
    connection.register(_STAGED, staged)
    try:
        connection.execute(sql)
    except (duckdb.DataError, duckdb.IntegrityError) as exc:
        raise RowsRefused(f"{type(exc).__name__}: {' '.join(str(exc).split())}") from exc
    except duckdb.Error as exc:
        # Outside SQLAlchemy's execute, so wrap it as SQLAlchemy would: the warehouse then
        # translates it (a missing table is terminal, a lost file transient).
        raise sa.exc.DBAPIError.instance(sql, None, exc, duckdb.Error) from exc
    finally:
        with suppress(duckdb.Error):
            connection.unregister(_STAGED)
