"""Builders shared by integration tests: sandboxes, extractors and warehouses."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from app.extractors import AirtableExtractor
from app.warehouses import DuckDBWarehouse, PostgresWarehouse, SQLiteWarehouse, Warehouse
from sandbox import Sandbox, SandboxBase, SandboxConfig, build_base, run_sandbox

TOKEN = "test-token"
BASE_ID = "appTESTBASE000001"
THREE_TABLES = {"Empty": 0, "Clients": 250, "Orders": 20000}


@contextlib.contextmanager
def sandbox_with(tables: dict[str, int], **config: Any) -> Iterator[tuple[Sandbox, SandboxBase]]:
    """A running sandbox holding one base with ``tables``; unlimited rate unless told."""
    config.setdefault("requests_per_second", 0)
    base = build_base(BASE_ID, tables, seed=7)
    with run_sandbox([base], SandboxConfig(token=TOKEN, **config)) as sandbox:
        yield sandbox, base


def extractor_for(sandbox: Sandbox, **kwargs: Any) -> AirtableExtractor:
    kwargs.setdefault("requests_per_second", 1000)
    return AirtableExtractor(api_key=TOKEN, base_id=BASE_ID, api_url=sandbox.url, **kwargs)


def make_warehouse(kind: str, tmp_path: Path, pg_url: str, pg_schema: str) -> Warehouse:
    if kind == "sqlite":
        return SQLiteWarehouse(f"sqlite:///{tmp_path / 'warehouse.db'}")
    if kind == "duckdb":
        return DuckDBWarehouse(f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    return PostgresWarehouse(pg_url, schema=pg_schema)


def table_named(base: SandboxBase, name: str) -> Any:
    return next(t for t in base.tables if t.name == name)


def own_engine(warehouse: Warehouse) -> Any:
    """An engine of the test's own on the warehouse's database, to look at it independently."""
    import sqlalchemy as sa

    return sa.create_engine(warehouse.url.render_as_string(hide_password=False))


def schema_of(warehouse: Warehouse) -> str | None:
    """The schema the warehouse's tables are in (None on SQLite)."""
    return warehouse.schema if warehouse.url.get_backend_name() == "postgresql" else None
