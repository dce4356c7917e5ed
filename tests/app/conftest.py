"""Warehouse fixtures: each warehouse test runs on a SQLite file and on a PostgreSQL schema."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import pytest

from app.contracts import Batch, FieldSpec, Record, TableRef, TableSchema, TableTarget
from app.warehouses import DuckDBWarehouse, PostgresWarehouse, SQLiteWarehouse, Warehouse
from app.warehouses.kinds import detect_schema
from tests.conftest import TEST_PG_URL

OpenWarehouse = Callable[[], Warehouse]


@pytest.fixture(params=["sqlite", "postgres", "duckdb"])
def open_warehouse(request: pytest.FixtureRequest, tmp_path) -> Iterator[OpenWarehouse]:
    """Opens the test's warehouse; each call is a new instance (like another process)."""
    if request.param == "postgres":
        schema = request.getfixturevalue("pg_schema")

        def open_one() -> Warehouse:
            return PostgresWarehouse(TEST_PG_URL, schema=schema)
    elif request.param == "duckdb":

        def open_one() -> Warehouse:
            return DuckDBWarehouse(f"duckdb:///{tmp_path}/warehouse.duckdb")
    else:

        def open_one() -> Warehouse:
            return SQLiteWarehouse(f"sqlite:///{tmp_path}/warehouse.db")

    opened: list[Warehouse] = []

    def tracked() -> Warehouse:
        opened.append(open_one())
        return opened[-1]

    yield tracked
    for warehouse in opened:
        warehouse.dispose()


@pytest.fixture
def warehouse(open_warehouse: OpenWarehouse) -> Warehouse:
    """A fresh, empty warehouse (SQLite file or PostgreSQL schema)."""
    return open_warehouse()


def table_schema(name: str, *fields: FieldSpec, table_id: str | None = None) -> TableSchema:
    """A schema for an Airtable table called ``name``."""
    return TableSchema(TableRef("airtable", table_id or f"tbl_{name}", name), tuple(fields))


def sync(
    warehouse: Warehouse,
    schema: TableSchema,
    records: Sequence[Record],
    *,
    run_id: str = "run-1",
    replace: bool = False,
    batch_size: int = 2,
) -> TableTarget:
    """Run the load steps for one table, as a workflow would: detect, prepare, load, finish."""
    schema = detect_schema(schema, list(records))
    target = warehouse.prepare_table(schema, run_id=run_id, replace=replace)
    chunks = [records[i : i + batch_size] for i in range(0, len(records), batch_size)] or [[]]
    for batch_no, chunk in enumerate(chunks):
        result = warehouse.load_batch(target, Batch(run_id, schema.table, batch_no, list(chunk)))
        assert not result.rejected, result.rejected
    warehouse.finish_table(target)
    return target


def by_id(records: Sequence[Record]) -> dict[str, Record]:
    """Records keyed by id, for order-free comparison."""
    return {r["id"]: r for r in records}
