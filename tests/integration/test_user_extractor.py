"""A user-written extractor (CSV files) runs through ETLWorkflow into a real warehouse."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.contracts import TableRef
from app.extractors import TabularExtractor
from app.warehouses import SQLiteWarehouse
from app.workflows import ETLWorkflow

pytestmark = pytest.mark.integration


class CSVExtractor(TabularExtractor):
    """Every *.csv in a folder is a table; the ``id`` column is the record id."""

    source_name = "csv"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def list_tables(self) -> list[TableRef]:
        return [TableRef("csv", p.stem, p.stem) for p in sorted(self.folder.glob("*.csv"))]

    def iter_records(self, table: TableRef) -> Iterator[dict]:
        with open(self.folder / f"{table.table_id}.csv", newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                record_id = row.pop("id")
                fields = {k: _typed(v) for k, v in row.items() if v != ""}
                yield {"id": record_id, "fields": fields}


def _typed(text: str):
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


class ListExtractor(TabularExtractor):
    source_name = "memory"

    def __init__(self, rows):
        self.rows = rows

    def list_tables(self):
        return [TableRef("memory", "people", "People")]

    def iter_records(self, table):
        yield from self.rows


def test_a_csv_extractor_lands_its_tables(tmp_path):
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "cities.csv").write_text(
        "id,Name,Population,Founded\nc1,Paris,2100000,0508-01-01\nc2,Ürümqi,4000000,\n"
        "c3,Lyon,,1989-03-04\n", encoding="utf-8")
    warehouse = SQLiteWarehouse(f"sqlite:///{tmp_path / 'w.db'}")
    report = ETLWorkflow(CSVExtractor(folder), warehouse).run(drop_tables=True)
    assert report.tables[0].loaded == 3
    ref = TableRef("csv", "cities", "cities")
    assert warehouse.table_name_for(ref) == "csv__cities"
    landed = {r["id"]: r["fields"] for r in warehouse.read_records(ref)}
    assert landed["c1"]["Population"] == 2100000
    assert landed["c2"]["Name"] == "Ürümqi"
    assert "Population" not in landed["c3"]
    assert landed["c3"]["Founded"] == dt.date(1989, 3, 4)


def test_a_list_of_dicts_extractor_with_many_pages(tmp_path):
    rows = [{"id": f"p{i}", "fields": {"name": f"person {i}", "age": i % 90}} for i in range(1234)]
    warehouse = SQLiteWarehouse(f"sqlite:///{tmp_path / 'w.db'}")
    ETLWorkflow(ListExtractor(rows), warehouse).run()
    ref = TableRef("memory", "people", "People")
    assert warehouse.row_count(ref) == 1234
    landed = {r["id"]: r["fields"] for r in warehouse.read_records(ref)}
    assert landed["p1000"] == {"name": "person 1000", "age": 10}
