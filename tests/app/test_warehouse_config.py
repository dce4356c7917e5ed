"""Choosing and checking a warehouse: URLs, settings, one-line errors, transient failures, runs."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from app.contracts import Batch, FieldSpec
from app.errors import ConfigurationError, WarehouseUnavailableError
from app.settings import reload_settings
from app.warehouses import PostgresWarehouse, SQLiteWarehouse, warehouse_for_url
from app.warehouses.kinds import detect_schema
from tests.app.conftest import table_schema
from tests.conftest import TEST_PG_URL

SCHEMA = table_schema("T", FieldSpec("Name", "singleLineText", "fld1"))


def config_error(url: str, **kwargs) -> str:
    with pytest.raises(ConfigurationError) as caught:
        warehouse_for_url(url, **kwargs).check()
    message = str(caught.value)
    assert "\n" not in message
    assert "WAREHOUSE_URL" in message
    return message


@pytest.mark.parametrize(
    ("url", "cls", "driver"),
    [
        ("sqlite:///x.db", SQLiteWarehouse, "sqlite"),
        ("postgresql://u@h/db", PostgresWarehouse, "postgresql+psycopg"),
        ("postgres://u@h/db", PostgresWarehouse, "postgresql+psycopg"),
        ("postgresql+psycopg://u@h/db", PostgresWarehouse, "postgresql+psycopg"),
    ],
)
def test_the_url_scheme_picks_the_class(url, cls, driver):
    warehouse = warehouse_for_url(url)
    assert type(warehouse) is cls
    assert warehouse.url.drivername == driver


def test_postgres_tables_go_to_raw_by_default_and_sqlite_has_no_schema():
    assert PostgresWarehouse("postgresql://u@h/db").schema == "raw"
    assert PostgresWarehouse("postgresql://u@h/db", schema="other").schema == "other"
    assert SQLiteWarehouse("sqlite:///x.db", schema="ignored").schema is None


def test_bare_constructors_read_the_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("WAREHOUSE_URL", "postgresql://u:pw@db.example/warehouse")
    monkeypatch.setenv("WAREHOUSE_SCHEMA", "staging_area")
    reload_settings()
    warehouse = PostgresWarehouse()
    assert warehouse.schema == "staging_area"
    assert warehouse.display_url == "postgresql+psycopg://u:***@db.example/warehouse"
    assert type(warehouse_for_url()) is PostgresWarehouse
    with pytest.raises(ConfigurationError, match="WAREHOUSE_URL .* is not a SQLiteWarehouse URL"):
        SQLiteWarehouse()
    monkeypatch.setenv("WAREHOUSE_URL", f"sqlite:///{tmp_path}/w.db")
    reload_settings()
    with pytest.raises(ConfigurationError, match="is not a PostgresWarehouse URL"):
        PostgresWarehouse()


def test_the_default_sqlite_file_gets_its_directory(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    warehouse = SQLiteWarehouse()
    assert warehouse.display_url == "sqlite:///data/warehouse.db"
    warehouse.check()
    warehouse.dispose()
    assert (tmp_path / "data" / "warehouse.db").is_file()
    with sqlite3.connect(tmp_path / "data" / "warehouse.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_passwords_are_masked_everywhere():
    warehouse = PostgresWarehouse("postgresql://user:s3cr3t-pw@127.0.0.1:1/db")
    assert "s3cr3t" not in warehouse.display_url and "***" in warehouse.display_url
    assert "s3cr3t" not in repr(warehouse)
    message = config_error("postgresql://user:s3cr3t-pw@127.0.0.1:1/db")
    assert "s3cr3t" not in message


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("mysql://u:pw@h/db", "unsupported database 'mysql'"),
        ("not a url at all", "is not a database URL"),
        ("postgresql+asyncpg://u@h/db", "uses driver 'postgresql+asyncpg'"),
        ("postgresql://u:pw@h:notaport/db", "is not a database URL"),
    ],
)
def test_bad_urls_are_configuration_errors(url, words):
    message = config_error(url)
    assert words in message
    assert ":pw@" not in message


def test_an_unwritable_sqlite_path_is_a_configuration_error(tmp_path):
    assert "sqlite:////proc/x.db is not writable" in config_error("sqlite:////proc/x.db")
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert "is not writable: cannot create directory" in config_error(f"sqlite:///{a_file}/x.db")


def test_a_read_only_sqlite_database_is_a_configuration_error(tmp_path):
    path = tmp_path / "ro.db"
    sqlite3.connect(path).close()
    # Tests may run as root, which ignores file modes; SQLite's read-only mode does not.
    message = config_error(f"sqlite:///file:{path}?mode=ro&uri=true")
    assert "is not writable" in message and "readonly" in message


def test_an_unreachable_postgres_is_a_configuration_error():
    message = config_error("postgresql://root:hunter2@127.0.0.1:1/test")
    assert message.startswith("WAREHOUSE_URL postgresql+psycopg://root:***@127.0.0.1:1/test")
    assert "unreachable" in message and "refused" in message.lower()
    assert "hunter2" not in message


def test_a_missing_postgres_database_is_a_configuration_error():
    url = sa.make_url(TEST_PG_URL).set(database=f"missing_{uuid.uuid4().hex[:8]}")
    message = config_error(url.render_as_string(hide_password=False))
    assert "does not exist" in message and "create it" in message


def test_during_loads_a_lost_server_is_transient(pg_schema):
    warehouse = PostgresWarehouse("postgresql://root@127.0.0.1:1/test", schema=pg_schema)
    with pytest.raises(WarehouseUnavailableError, match="127.0.0.1:1"):
        warehouse.prepare_table(SCHEMA, run_id="r", replace=False)


def test_a_connection_dropped_mid_batch_commits_nothing(pg_schema):
    warehouse = PostgresWarehouse(TEST_PG_URL, schema=pg_schema)
    target = warehouse.prepare_table(detect_schema(SCHEMA, []), run_id="r", replace=False)
    admin = sa.create_engine(TEST_PG_URL)

    def kill_own_backend(conn, cursor, statement, *args):
        if statement.startswith("INSERT INTO") and "airtable__t" in statement:
            pid = cursor.connection.info.backend_pid
            with admin.begin() as other:
                other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    sa.event.listen(warehouse.engine, "before_cursor_execute", kill_own_backend)
    batch = Batch("r", SCHEMA.table, 0, [{"id": "a", "fields": {"Name": "x"}}])
    with pytest.raises(WarehouseUnavailableError):
        warehouse.load_batch(target, batch)
    sa.event.remove(warehouse.engine, "before_cursor_execute", kill_own_backend)
    admin.dispose()
    assert warehouse.loaded_batches("r", SCHEMA.table.table_id) == {}
    assert warehouse.load_batch(target, batch).replayed is False
    assert warehouse.row_count(SCHEMA.table) == 1
    warehouse.dispose()


def test_a_locked_sqlite_database_is_transient(tmp_path):
    warehouse = SQLiteWarehouse(f"sqlite:///{tmp_path}/w.db?timeout=0.2")
    target = warehouse.prepare_table(detect_schema(SCHEMA, []), run_id="r", replace=False)
    holder = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    batch = Batch("r", SCHEMA.table, 0, [{"id": "a", "fields": {"Name": "x"}}])
    with pytest.raises(WarehouseUnavailableError, match="locked"):
        warehouse.load_batch(target, batch)
    holder.rollback()
    holder.close()
    assert warehouse.load_batch(target, batch).loaded == 1
    warehouse.dispose()


def test_record_run_upserts_and_list_runs_returns_newest_first(warehouse):
    warehouse.record_run(
        {
            "run_id": "r1",
            "workflow": "etl",
            "state": "running",
            "options": {"drop_tables": True},
            "started_at": "2024-03-01T10:00:00Z",
            "finished_at": None,
            "error": None,
            "tables": [],
        }
    )
    warehouse.record_run({"run_id": "r2", "workflow": "etl", "state": "running",
                          "started_at": datetime(2024, 3, 2, tzinfo=UTC)})  # fmt: skip
    tables = [{"table": "Clients", "loaded": 3, "rejected": [{"record_id": "x", "reason": "é"}]}]
    warehouse.record_run(
        {"run_id": "r1", "state": "failed", "error": "boom", "finished_at": "2024-03-01T10:05:00Z",
         "tables": tables}
    )  # fmt: skip
    runs = warehouse.list_runs()
    assert [r["run_id"] for r in runs] == ["r2", "r1"]
    assert runs[1] == {
        "run_id": "r1",
        "workflow": "etl",
        "state": "failed",
        "options": {"drop_tables": True},
        "started_at": datetime(2024, 3, 1, 10, tzinfo=UTC),
        "finished_at": datetime(2024, 3, 1, 10, 5, tzinfo=UTC),
        "error": "boom",
        "tables": tables,
    }
    assert [r["run_id"] for r in warehouse.list_runs(limit=1)] == ["r2"]
    with pytest.raises(ValueError, match="colour"):
        warehouse.record_run({"run_id": "r3", "colour": "red"})
    with pytest.raises(ValueError, match="run_id"):
        warehouse.record_run({"state": "x"})
