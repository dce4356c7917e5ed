"""A plug-in as a user would write one: an extractor and a warehouse, found by entry points."""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa

from app.contracts import Record, TableRef
from app.extractors.base import TabularExtractor
from app.warehouses.sqlite import SQLiteWarehouse

GREETINGS = [
    {"id": "rec1", "fields": {"Word": "hello", "Letters": 5}},
    {"id": "rec2", "fields": {"Word": "bonjour", "Letters": 7}},
    {"id": "rec3", "fields": {"Word": "hej", "Letters": 3}},
]


class ToyExtractor(TabularExtractor):
    """One table of three greetings."""

    source_name = "toy"

    def list_tables(self) -> list[TableRef]:
        return [TableRef("toy", "greetings", "Greetings")]

    def iter_records(self, table: TableRef) -> Iterator[Record]:
        yield from GREETINGS


class ToyWarehouse(SQLiteWarehouse):
    """SQLite under its own URL scheme, ``toysqlite:///path.db``."""

    backends = ("toysqlite",)

    def _normalise_url(self, url: sa.URL) -> sa.URL:
        return url.set(drivername="sqlite")
