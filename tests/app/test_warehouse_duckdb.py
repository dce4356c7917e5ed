"""DuckDB only: one writer process at a time without lock failures, refused rows by id."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.contracts import Batch, FieldSpec, TableRef
from app.errors import ConfigurationError, WarehouseUnavailableError
from app.warehouses import DuckDBWarehouse, ddl
from app.warehouses.kinds import detect_schema
from tests.app.conftest import table_schema

SCHEMA = table_schema("Items", FieldSpec("Name", "singleLineText", "f1"), FieldSpec("N", "number", "f2"))


def records(prefix: str, count: int) -> list[dict]:
    return [{"id": f"{prefix}{i}", "fields": {"Name": f"{prefix} {i}", "N": i / 3}} for i in range(count)]


def _load_table(url: str, index: int, batches: int) -> int:
    warehouse = DuckDBWarehouse(url)
    table = TableRef("airtable", f"tbl{index}", f"Items {index}")
    schema = detect_schema(table_schema(table.name, *SCHEMA.fields, table_id=table.table_id), [])
    target = warehouse.prepare_table(schema, run_id="run", replace=index % 2 == 0)
    for batch_no in range(batches):
        batch = Batch("run", table, batch_no, records(f"p{index}b{batch_no}-", 200))
        assert warehouse.load_batch(target, batch).loaded == 200
    warehouse.finish_table(target)
    warehouse.dispose()
    return index


def test_several_processes_load_into_one_file_at_once(tmp_path):
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    DuckDBWarehouse(url).check()
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        assert sorted(pool.starmap(_load_table, [(url, i, 6) for i in range(3)])) == [0, 1, 2]
    reader = DuckDBWarehouse(url)
    for index in range(3):
        assert reader.row_count(TableRef("airtable", f"tbl{index}", f"Items {index}")) == 1200
    reader.dispose()


def _hold_open(path: Path, seconds: float) -> subprocess.Popen[str]:
    """Another program (not Conveyor) keeping the DuckDB file open, as a notebook would."""
    code = (f"import duckdb, time; c = duckdb.connect({str(path)!r});"
            f" print('open', flush=True); time.sleep({seconds})")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "open"
    return proc


def test_a_file_held_by_another_program_is_transient_and_loses_nothing(tmp_path):
    path = tmp_path / "w.duckdb"
    warehouse = DuckDBWarehouse(f"duckdb:///{path}?lock_timeout=1")
    target = warehouse.prepare_table(detect_schema(SCHEMA, []), run_id="run", replace=False)
    warehouse.dispose()
    holder = _hold_open(path, 60)
    try:
        with pytest.raises(WarehouseUnavailableError, match="lock"):
            warehouse.load_batch(target, Batch("run", SCHEMA.table, 0, records("r", 10)))
    finally:
        holder.kill()
        holder.wait()
    assert warehouse.loaded_batches("run", SCHEMA.table.table_id) == {}
    assert warehouse.load_batch(target, Batch("run", SCHEMA.table, 0, records("r", 10))).loaded == 10
    warehouse.dispose()


def test_a_killed_holder_of_the_lock_does_not_block_the_others(tmp_path):
    path = tmp_path / "w.duckdb"
    code = (
        "import time; from app.warehouses import DuckDBWarehouse\n"
        f"w = DuckDBWarehouse('duckdb:///{path}')\n"
        "with w.engine.connect() as conn:\n"
        "    print('holding', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
    warehouse = DuckDBWarehouse(f"duckdb:///{path}?lock_timeout=0.5")
    with pytest.raises(WarehouseUnavailableError, match="stayed locked"):
        warehouse.check()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    started = time.monotonic()
    warehouse.check()
    assert time.monotonic() - started < 5
    warehouse.dispose()


def test_a_row_duckdb_refuses_is_rejected_by_id_and_the_rest_lands(tmp_path):
    warehouse = DuckDBWarehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    schema = detect_schema(SCHEMA, [])
    target = warehouse.prepare_table(schema, run_id="run", replace=False)
    # A constraint of the user's own: DuckDB itself refuses the row (no ALTER … ADD CHECK).
    with warehouse.engine.begin() as conn:
        ddl.drop_table(conn, warehouse, target.name)
        table = ddl.data_table(warehouse, target.name, target.columns)
        table.append_constraint(sa.CheckConstraint("name <> 'refuse me'"))
        table.create(conn)
    batch = records("r", 5)
    batch[2]["fields"]["Name"] = "refuse me"
    result = warehouse.load_batch(target, Batch("run", SCHEMA.table, 0, batch))
    assert result.loaded == 4
    ((rejected),) = result.rejected
    assert rejected.record_id == "r2" and "Constraint" in rejected.reason and "\n" not in rejected.reason
    assert sorted(r["id"] for r in warehouse.read_records(SCHEMA.table)) == ["r0", "r1", "r3", "r4"]
    replay = warehouse.load_batch(target, Batch("run", SCHEMA.table, 0, batch))
    assert replay.replayed and replay.rejected == result.rejected
    warehouse.dispose()


@pytest.mark.parametrize("url", ["duckdb:///w.duckdb?lock_timeout=soon", "duckdb+other:///w.duckdb"])
def test_bad_duckdb_urls_are_configuration_errors(url):
    with pytest.raises(ConfigurationError, match="WAREHOUSE_URL"):
        DuckDBWarehouse(url)


def test_an_in_memory_database_works_without_a_lock_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    warehouse = DuckDBWarehouse("duckdb:///:memory:")
    target = warehouse.prepare_table(detect_schema(SCHEMA, []), run_id="run", replace=True)
    assert warehouse.load_batch(target, Batch("run", SCHEMA.table, 0, records("m", 3))).loaded == 3
    warehouse.finish_table(target)
    assert warehouse.row_count(SCHEMA.table) == 3
    assert list(tmp_path.iterdir()) == []
    warehouse.dispose()
