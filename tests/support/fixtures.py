"""Builders shared by integration tests: sandboxes, extractors and warehouses."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from app.extractors import AirtableExtractor
from app.sandbox import Sandbox, SandboxBase, SandboxConfig, build_base, run_sandbox
from app.warehouses import PostgresWarehouse, SQLiteWarehouse, Warehouse

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
    return PostgresWarehouse(pg_url, schema=pg_schema)


def table_named(base: SandboxBase, name: str) -> Any:
    return next(t for t in base.tables if t.name == name)
