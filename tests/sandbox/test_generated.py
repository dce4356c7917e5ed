"""GeneratedTable: records made on demand list, read and window like held ones; writes refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from sandbox import Sandbox, SandboxBase, SandboxConfig, build_base, run_sandbox
from sandbox.generated import GeneratedTable, generated_id

TOKEN = "sandbox-token"
BASE_ID = "appGENERATED00001"
COUNT = 1_234


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    templates = build_base(BASE_ID, {"Orders": 50}, hostile=False)
    table = GeneratedTable(templates.tables[0], COUNT)
    with run_sandbox([SandboxBase(BASE_ID, "Generated", [table])],
                     SandboxConfig(token=TOKEN, requests_per_second=None)) as running:
        yield running


def _get(sandbox: Sandbox, path: str, **params: object) -> requests.Response:
    return requests.get(f"{sandbox.url}/v0/{BASE_ID}/Orders{path}", params=params,
                        headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)


def _list_all(sandbox: Sandbox, **params: object) -> list[dict]:
    records, offset = [], None
    while True:
        body = _get(sandbox, "", **params, **({"offset": offset} if offset else {})).json()
        records += body["records"]
        offset = body.get("offset")
        if offset is None:
            return records


def test_the_listing_holds_every_record_once_in_creation_order(sandbox: Sandbox) -> None:
    records = _list_all(sandbox, pageSize=100)
    assert [r["id"] for r in records] == [generated_id(i) for i in range(COUNT)]
    created = [r["createdTime"] for r in records]
    assert created == sorted(created) and len(set(created)) == COUNT
    assert [r["fields"]["Row number"] for r in records] == list(range(1, COUNT + 1))
    # 50 templates: record 50 repeats record 0's values under its own id
    assert records[50]["fields"]["Name"] == records[0]["fields"]["Name"]
    assert records[50]["fields"]["Related"] == records[0]["fields"]["Related"]
    assert all(link < generated_id(50) for r in records for link in r["fields"].get("Related", []))


def test_a_record_reads_by_id_as_listed_and_others_are_not_found(sandbox: Sandbox) -> None:
    listed = _list_all(sandbox, pageSize=100, maxRecords=3)
    assert len(listed) == 3
    assert _get(sandbox, f"/{generated_id(2)}").json() == listed[2]
    assert _get(sandbox, f"/{generated_id(COUNT)}").status_code == 404


def test_a_filtered_listing_evaluates_the_made_records(sandbox: Sandbox) -> None:
    records = _list_all(sandbox, filterByFormula="{Row number} <= 7")
    assert [r["id"] for r in records] == [generated_id(i) for i in range(7)]


def test_writes_are_refused(sandbox: Sandbox) -> None:
    response = requests.patch(f"{sandbox.url}/v0/{BASE_ID}/Orders/{generated_id(1)}",
                              json={"fields": {"Name": "x"}},
                              headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert response.status_code == 403
