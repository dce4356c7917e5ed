"""Listing records by id: the sandbox's lookup of ``OR(RECORD_ID()='rec…',…)`` formulas and
Airtable's 16,000-character URL limit, through unmodified pyairtable and raw HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
from pyairtable import Api

from sandbox import Sandbox, SandboxBase, SandboxConfig, build_base, run_sandbox
from sandbox.formula import record_id_set
from sandbox.handler import MAX_URL_LENGTH

TOKEN = "ids-token"
BASE = "appIDSBASE0000001"


@pytest.fixture(scope="module")
def base() -> SandboxBase:
    return build_base(BASE, {"Orders": 20_000}, seed=5, hostile=False)


@pytest.fixture(scope="module")
def sandbox(base: SandboxBase) -> Iterator[Sandbox]:
    with run_sandbox([base], SandboxConfig(token=TOKEN, requests_per_second=None)) as running:
        yield running


def _formula(ids: list[str]) -> str:
    return "OR(" + ",".join(f"RECORD_ID()='{i}'" for i in ids) + ")"


def test_id_formulas_are_recognised_and_nothing_else_is() -> None:
    assert record_id_set("OR(RECORD_ID()='recA', record_id() = \"recB\" , RECORD_ID()='recA')") \
        == {"recA", "recB"}
    assert record_id_set("  RECORD_ID()='recA'  ") == {"recA"}
    for other in ("AND(RECORD_ID()='recA')", "OR(RECORD_ID()='recA',{Name}='x')",
                  "RECORD_ID()!='recA'", "OR(RECORD_ID()='recA')&''", "OR()", "",
                  "OR(RECORD_ID()='recA',RECORD_ID()='x')"):
        assert record_id_set(other) is None, other


def test_a_lookup_by_id_keeps_what_the_evaluated_formula_keeps(base: SandboxBase,
                                                              sandbox: Sandbox) -> None:
    api = Api(TOKEN, endpoint_url=sandbox.url, retry_strategy=None)
    table = base.table("Orders")
    assert table is not None
    ids = [r["id"] for r in table.records[::201]][:100] + ["recNOSUCHRECORD01"]
    started = time.monotonic()
    fast = api.table(BASE, "Orders").all(formula=_formula(ids))
    took = time.monotonic() - started
    # The same formula in a shape the lookup does not recognise is evaluated record by record.
    slow = api.table(BASE, "Orders").all(formula=f"AND({_formula(ids[:5])},TRUE())")
    assert [r["id"] for r in fast] == [i for i in ids if table.get(i) is not None]
    assert [r["id"] for r in slow] == ids[:5]
    assert fast[:5] == slow
    assert took < 2.0  # evaluated per record it took 8.5 s on this machine


def test_a_url_over_sixteen_thousand_characters_is_refused_and_post_takes_it(
        sandbox: Sandbox, base: SandboxBase) -> None:
    table = base.table("Orders")
    assert table is not None
    ids = [r["id"] for r in table.records[:600]]
    formula = _formula(ids)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = f"{sandbox.url}/v0/{BASE}/Orders"
    long = requests.get(url, params={"filterByFormula": formula}, headers=headers, timeout=30)
    assert len(long.request.url or "") > MAX_URL_LENGTH
    assert long.status_code == 414 and long.json()["error"]["type"] == "URL_TOO_LONG"
    short = requests.get(url, params={"filterByFormula": _formula(ids[:100])}, headers=headers,
                         timeout=30)
    assert short.status_code == 200 and len(short.json()["records"]) == 100
    posted = requests.post(f"{url}/listRecords", json={"filterByFormula": formula},
                           headers=headers, timeout=30)
    assert posted.status_code == 200 and len(posted.json()["records"]) == 100
    # pyairtable moves a long GET into POST …/listRecords by itself, offsets included.
    api = Api(TOKEN, endpoint_url=sandbox.url, retry_strategy=None)
    assert [r["id"] for r in api.table(BASE, "Orders").all(formula=formula)] == ids
