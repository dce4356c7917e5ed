"""Load rate per worker: DuckDB's Arrow bulk upsert against its own naive executemany.

Each mode loads the same generated records (the sandbox's Orders table, all field types)
through ``Warehouse.load_batch`` in batches of 500 (the default BATCH_MAX_RECORDS); only
the way a batch's rows are written differs. Then two processes load at once into one file
(each its own table), to show the rate each worker gets while they take turns on the lock.

Run: python bench/load.py [records]   (prints records/s and the ratios; no assertions)
"""

from __future__ import annotations

import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from app.contracts import Batch, FieldSpec, Record, RejectedRecord, TableRef, TableSchema, TableTarget
from app.warehouses import DuckDBWarehouse, Warehouse, loader
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


def main() -> None:
    records = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    schema, rows = source(records)
    print(f"{len(rows)} records of {len(schema.fields)} fields, batches of {BATCH}")
    with tempfile.TemporaryDirectory() as tmp:
        rates = {}
        for mode, cls in (("naive executemany", NaiveDuckDBWarehouse), ("arrow bulk", DuckDBWarehouse)):
            warehouse = cls(f"duckdb:///{Path(tmp) / (mode.split()[0] + '.duckdb')}")
            warehouse.check()
            rates[mode] = len(rows) / load(warehouse, schema, rows, "run-1")
            warehouse.dispose()
            print(f"  one worker, {mode:<18} {rates[mode]:>10,.0f} records/s")
        ratio = rates["arrow bulk"] / rates["naive executemany"]
        print(f"  ratio arrow bulk / naive executemany: {ratio:.1f}x")
        for mode in ("bulk", "naive"):
            url = f"duckdb:///{Path(tmp) / f'shared-{mode}.duckdb'}"
            DuckDBWarehouse(url).check()
            with multiprocessing.get_context("spawn").Pool(2) as pool:
                per_worker = pool.map(_worker, [(url, records, i, mode) for i in range(2)])
            shown = ", ".join(f"{r:,.0f}" for r in per_worker)
            print(f"  two workers on one file, {mode:<5}: {shown} records/s per worker"
                  f" ({sum(per_worker):,.0f} together)")


if __name__ == "__main__":
    main()
