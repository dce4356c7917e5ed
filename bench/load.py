"""Load rate of one load worker against plain SQLAlchemy executemany of the same batches, on
SQLite, PostgreSQL and DuckDB.

Each mode loads the same generated records (the sandbox's Orders table, all field types)
through ``Warehouse.load_batch`` in batches of 500 (the default BATCH_MAX_RECORDS): the same
catalog claim, value fitting and rejection handling; only the way a batch's rows are written
differs. The baseline writes them as one SQLAlchemy executemany of the upsert; Conveyor uses
SQLite's prepared executemany in one transaction per batch, PostgreSQL's COPY into a temporary
table and one INSERT … SELECT … ON CONFLICT, DuckDB's Arrow scan. For DuckDB two processes
then load at once into one file (each its own table), to show the rate each worker gets
while they take turns on the lock.

Targets: ≥ 0.9× executemany on SQLite (it *is* executemany: no loss from the rest of the
load), ≥ 2× on PostgreSQL.

Run: python bench/load.py [records] [--backends sqlite,postgres,duckdb] [--rounds 3]
     [--pg postgresql://root@127.0.0.1:5432/test]   (prints records/s and ratios; no assertions;
     the PostgreSQL schema ``bench_load`` is dropped at the end)
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from app.contracts import Batch, FieldSpec, Record, RejectedRecord, TableRef, TableSchema, TableTarget
from app.warehouses import DuckDBWarehouse, PostgresWarehouse, SQLiteWarehouse, Warehouse, loader
from app.warehouses.kinds import detect_schema
from sandbox import build_base

BATCH = 500


class NaiveDuckDBWarehouse(DuckDBWarehouse):
    """The baseline: the batch's rows as one executemany of the upsert (DuckDB runs it per row)."""

    def write_rows(
        self, conn: Any, target: TableTarget, pending: list[tuple[Record, dict[str, Any]]], run_id: str
    ) -> list[RejectedRecord]:
        if pending:
            upsert = loader.upsert_for(self, target.write_to, target.columns)  # type: ignore[arg-type]
            conn.execute(upsert, [row for _, row in pending])
        return []


def _executemany(warehouse: Warehouse, conn: Any, target: TableTarget,
                 pending: list[tuple[Record, dict[str, Any]]]) -> list[RejectedRecord]:
    if pending:
        upsert = loader.upsert_for(warehouse, target.write_to, target.columns)  # type: ignore[arg-type]
        conn.execute(upsert, [row for _, row in pending])
    return []


class NaiveSQLiteWarehouse(SQLiteWarehouse):
    """The baseline on SQLite: plain executemany of the upsert."""

    def write_rows(self, conn: Any, target: TableTarget,
                   pending: list[tuple[Record, dict[str, Any]]], run_id: str) -> list[RejectedRecord]:
        return _executemany(self, conn, target, pending)


class NaivePostgresWarehouse(PostgresWarehouse):
    """The baseline on PostgreSQL: plain executemany of the upsert (psycopg 3 pipelines it)."""

    def write_rows(self, conn: Any, target: TableTarget,
                   pending: list[tuple[Record, dict[str, Any]]], run_id: str) -> list[RejectedRecord]:
        return _executemany(self, conn, target, pending)


def source(records: int) -> tuple[TableSchema, list[Record]]:
    table = build_base("appBENCH000000001", {"Orders": records}, seed=3).tables[0]
    fields = tuple(FieldSpec(f.name, f.type, f.id) for f in table.fields)
    schema = TableSchema(TableRef("bench", table.id, table.name), fields)
    return detect_schema(schema, table.records[:200]), list(table.records)


def load(warehouse: Warehouse, schema: TableSchema, records: list[Record], run_id: str) -> float:
    """Seconds to load ``records`` (prepare, every batch, finish); checks every row landed."""
    started = time.perf_counter()
    target = warehouse.prepare_table(schema, run_id=run_id, replace=True)
    for batch_no, start in enumerate(range(0, len(records), BATCH)):
        batch = Batch(run_id, schema.table, batch_no, records[start : start + BATCH])
        result = warehouse.load_batch(target, batch)
        assert result.loaded == len(batch.records) and not result.rejected, result.rejected[:3]
    warehouse.finish_table(target)
    elapsed = time.perf_counter() - started
    assert warehouse.row_count(schema.table) == len(records)
    return elapsed


def _worker(args: tuple[str, int, int, str]) -> float:
    url, records, index, mode = args
    schema, rows = source(records)
    table = TableRef("bench", f"{schema.table.table_id}_{index}", f"Orders {index}")
    schema = TableSchema(table, schema.fields)
    cls = DuckDBWarehouse if mode == "bulk" else NaiveDuckDBWarehouse
    warehouse = cls(url)
    try:
        return len(rows) / load(warehouse, schema, rows, f"run-{index}")
    finally:
        warehouse.dispose()


def compare(name: str, naive: Warehouse, conveyor: Warehouse, schema: TableSchema,
            rows: list[Record], label: str, rounds: int = 1) -> None:
    """Load the same records with both, ``rounds`` times in turn; print the median rates and
    the median of the rounds' ratios (one load of 5,000 records takes about a second, and
    on a shared host one such figure moved by a third between runs)."""
    rates: tuple[list[float], list[float]] = ([], [])
    ratios = []
    for number in range(rounds):
        for rate, warehouse in zip(rates, (naive, conveyor), strict=True):
            warehouse.check()
            rate.append(len(rows) / load(warehouse, schema, rows, f"run-{number + 1}"))
            warehouse.dispose()
        ratios.append(rates[1][-1] / rates[0][-1])
    each = f" (rounds {', '.join(f'{r:.2f}' for r in ratios)})" if rounds > 1 else ""
    print(f"  {name:<10} executemany {statistics.median(rates[0]):>9,.0f} rec/s   {label:<12} "
          f"{statistics.median(rates[1]):>9,.0f} rec/s   ratio {statistics.median(ratios):.2f}x"
          f"{each}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("records", nargs="?", type=int, default=5000)
    parser.add_argument("--backends", default="sqlite,postgres,duckdb")
    parser.add_argument("--rounds", type=int, default=3,
                        help="SQLite and PostgreSQL: loads of each kind, in turn; medians")
    parser.add_argument("--pg", default=os.environ.get("CONVEYOR_TEST_PG_URL",
                                                       "postgresql://root@127.0.0.1:5432/test"))
    args = parser.parse_args()
    records, backends = args.records, args.backends.split(",")
    schema, rows = source(records)
    print(f"{len(rows)} records of {len(schema.fields)} fields, batches of {BATCH}; "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        if "sqlite" in backends:
            compare("SQLite", NaiveSQLiteWarehouse(f"sqlite:///{Path(tmp) / 'naive.db'}"),
                    SQLiteWarehouse(f"sqlite:///{Path(tmp) / 'conveyor.db'}"), schema, rows,
                    "load_batch", args.rounds)
        if "postgres" in backends:
            import sqlalchemy as sa

            try:
                compare("PostgreSQL", NaivePostgresWarehouse(args.pg, schema="bench_load_naive"),
                        PostgresWarehouse(args.pg, schema="bench_load"), schema, rows, "COPY+merge",
                        args.rounds)
            finally:
                engine = sa.create_engine(args.pg.replace("postgresql://", "postgresql+psycopg://"))
                with engine.begin() as conn:
                    for name in ("bench_load", "bench_load_naive"):
                        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
                engine.dispose()
        if "duckdb" not in backends:
            return
        compare("DuckDB", NaiveDuckDBWarehouse(f"duckdb:///{Path(tmp) / 'naive.duckdb'}"),
                DuckDBWarehouse(f"duckdb:///{Path(tmp) / 'arrow.duckdb'}"), schema, rows,
                "arrow bulk")
        for mode in ("bulk", "naive"):
            url = f"duckdb:///{Path(tmp) / f'shared-{mode}.duckdb'}"
            DuckDBWarehouse(url).check()
            with multiprocessing.get_context("spawn").Pool(2) as pool:
                per_worker = pool.map(_worker, [(url, records, i, mode) for i in range(2)])
            shown = ", ".join(f"{r:,.0f}" for r in per_worker)
            print(f"  two DuckDB workers on one file, {mode:<5}: {shown} records/s per worker"
                  f" ({sum(per_worker):,.0f} together)")


if __name__ == "__main__":
    main()
