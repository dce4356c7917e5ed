"""PostgreSQL's bulk path (COPY into a temporary table, one INSERT … SELECT … ON CONFLICT)
stores exactly what the row-by-row upsert stores, and falls back to it for refused rows."""

from __future__ import annotations

import math
import secrets

import pytest

from app.contracts import Batch, FieldSpec
from app.warehouses import PostgresWarehouse, Warehouse, loader
from app.warehouses.kinds import detect_schema
from tests.app.conftest import table_schema
from tests.app.test_warehouse_load import SOURCE, TYPED
from tests.conftest import TEST_PG_URL

ODD = [
    {"id": "recOdd1", "createdTime": "2024-03-01T10:20:30.000Z",
     "fields": {"Name": "tab\there\nnewline \\ backslash", "Notes": "ünïcode ✓ 𝄞",
                "Amount": -0.0, "Calc": math.inf, "Tags": ["a", "b"],
                "Owner": {"id": "usr1", "email": "a@b.c", "name": "A\tB"}}},
    {"id": "recOdd2", "fields": {"Amount": math.nan, "Calc": -math.inf, "Name": "\\N"}},
    {"id": "recOdd3", "fields": {}},
]


@pytest.fixture
def pg(pg_schema: str) -> Warehouse:
    warehouse = PostgresWarehouse(TEST_PG_URL, schema=pg_schema)
    yield warehouse
    warehouse.dispose()


def _load(warehouse: Warehouse, name: str, records: list, batch_no: int = 0):
    schema = table_schema(name, *TYPED.fields, table_id=f"tbl{name}")
    target = warehouse.prepare_table(detect_schema(schema, records), run_id="run-1", replace=False)
    return target, warehouse.load_batch(target, Batch("run-1", schema.table, batch_no, records))


def test_copy_stores_what_the_upsert_stores(pg: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    records = SOURCE + ODD
    with monkeypatch.context() as patch:  # the row-by-row path, as every warehouse has it
        patch.setattr(PostgresWarehouse, "write_rows", Warehouse.write_rows)
        _, slow = _load(pg, "Upserted", records)

    def no_fallback(*args, **kwargs):
        raise AssertionError("COPY fell back to the row-by-row upsert")

    monkeypatch.setattr(loader, "write_rows", no_fallback)
    _, fast = _load(pg, "Copied", records)
    assert (fast.loaded, fast.rejected) == (slow.loaded, slow.rejected) == (len(records), ())
    upserted = list(pg.read_records(table_schema("Upserted", table_id="tblUpserted").table))
    copied = list(pg.read_records(table_schema("Copied", table_id="tblCopied").table))
    assert repr(copied) == repr(upserted)  # repr: NaN equals NaN, -0.0 differs from 0.0
    assert repr(copied[3]["fields"]["Amount"]) == "-0.0"

    changed = [{**r, "fields": {**r["fields"], "Name": "changed"}} for r in records]
    _, again = _load(pg, "Copied", changed, batch_no=1)  # a later batch updates in place
    assert again.loaded == len(records)
    copied = list(pg.read_records(table_schema("Copied", table_id="tblCopied").table))
    assert len(copied) == len(records) and {r["fields"]["Name"] for r in copied} == {"changed"}


def test_a_refused_row_falls_back_and_is_rejected_by_id(pg: Warehouse) -> None:
    schema = table_schema("Refused", FieldSpec("Name", "singleLineText", "fld1"))
    big_id = "recBig" + secrets.token_urlsafe(7000)  # incompressible: too big for the index
    records = [{"id": "recOk", "fields": {"Name": "ok"}}, {"id": big_id, "fields": {"Name": "x"}}]
    target = pg.prepare_table(detect_schema(schema, records), run_id="run-1", replace=False)
    result = pg.load_batch(target, Batch("run-1", schema.table, 0, records))
    assert result.loaded == 1
    assert [r.record_id[:6] for r in result.rejected] == ["recBig"]
    assert [r["id"] for r in pg.read_records(schema.table)] == ["recOk"]
