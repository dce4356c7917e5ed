"""Shared by the change-source tests without a server (the window's and the webhook feed's):
one table, run plans, a fake extractor and a fake feed, and what a warehouse holds after a load."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar

import sqlalchemy as sa

from app.contracts import Batch, FieldSpec, TableRef, TableSchema
from app.extractors.base import Page, TabularExtractor
from app.extractors.changefeed import FeedHandle, FeedRead
from app.sync import webhook
from app.sync.plan import ComponentConfig, RunOptions, RunPlan
from app.warehouses import SQLiteWarehouse, naming

TABLE = TableRef("airtable", "tblA", "Orders")
SCHEMA = TableSchema(TABLE, (
    FieldSpec("Name", "singleLineText", "fldName"), FieldSpec("Done", "checkbox", "fldDone"),
    FieldSpec("Total", "rollup", "fldTotal", "number"), FieldSpec("Links", "multipleRecordLinks", "fldL"),
))


def plan(**options: Any) -> RunPlan:
    return RunPlan(run_id="r1", workflow="etl", extractor=ComponentConfig("airtable"),
                   warehouse=ComponentConfig(None), options=RunOptions.parse(**options),
                   batch_max_records=3, batch_max_bytes=100_000)


class Filtered(TabularExtractor):
    """Pages of ids, recording the query each listing was asked with."""

    source_name: ClassVar[str] = "airtable"
    filters_by_modified_time: ClassVar[bool] = True

    def __init__(self, pages: int = 2) -> None:
        self.pages, self.asked = pages, []

    def list_tables(self) -> list[TableRef]:
        return [TABLE]

    def identity(self) -> str:
        return "airtable:appX"

    def iter_pages(self, table: TableRef, cursor: str | None = None, formula: str | None = None,
                   fields: list[str] | None = None) -> Iterator[Page]:
        self.asked.append((cursor, formula, fields))
        start = int(cursor or 0)
        for number in range(start, self.pages):
            following = str(number + 1) if number + 1 < self.pages else None
            yield Page([{"id": f"rec{number}{i}", "fields": {}} for i in range(2)], following,
                       server_time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))


def sqlite_file(tmp_path: Any) -> Iterator[SQLiteWarehouse]:
    """A fixture's body: a SQLite warehouse in one file, disposed of afterwards."""
    store = SQLiteWarehouse(f"sqlite:///{tmp_path / 'w.db'}")
    yield store
    store.dispose()


def loaded(store: SQLiteWarehouse, run_id: str, records: list[dict[str, Any]], **batch: Any):
    target = store.prepare_table(SCHEMA, run_id=run_id, replace=False)
    result = store.load_batch(target, Batch(run_id, TABLE, 0, records, **batch))
    return target, result


def rows(store: SQLiteWarehouse) -> dict[str, dict[str, Any]]:
    engine = sa.create_engine(store.url)
    with engine.connect() as conn:
        found = {r._mapping[naming.ID]: dict(r._mapping)
                 for r in conn.execute(sa.text('SELECT * FROM "airtable__orders"'))}
    engine.dispose()
    return found


HOOK = "achHOOKHOOKHOOK01"
STATE = {"source": "webhook", "webhook_id": HOOK, "cursor": 7}


class FakeFeed:
    """Answers ``read`` with a prepared ``FeedRead`` and counts what it was asked."""

    def __init__(self, read: FeedRead) -> None:
        self.answer, self.requests, self.reads, self.restarts = read, 0, 0, []

    def read(self, webhook_id: str, since: int) -> FeedRead:
        self.reads += 1
        self.requests += 2
        return self.answer

    def restart(self, webhook_id: str | None = None) -> FeedHandle:
        self.restarts.append(webhook_id)
        self.requests += 1
        return FeedHandle(webhook_id or "achNEW", 42, None)

    def ensure(self, prefer: str | None = None) -> FeedHandle:
        return self.restart(prefer)


def source_with(read: FeedRead) -> tuple[webhook.WebhookSource, FakeFeed]:
    feed = FakeFeed(read)
    return webhook.WebhookSource(feed), feed  # type: ignore[arg-type]


def ids(count: int, prefix: str = "rec") -> list[str]:
    return [f"{prefix}{n:014d}" for n in range(count)]
