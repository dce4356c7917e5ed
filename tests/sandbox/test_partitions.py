"""Creation-time partitions listed through AirtableExtractor against the sandbox.

The formulas are the ones the real API gets; the sandbox evaluates them with its own formula
engine, so a record exactly on a boundary proves the windows are half-open there too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
import requests

from app.contracts import TableRef
from app.extractors import AirtableExtractor
from app.extractors.partitions import owner, plan_from_created, windows
from sandbox import Sandbox, SandboxBase, SandboxConfig, SandboxField, SandboxTable, build_base, run_sandbox
from sandbox.clock import iso_from_ms

TOKEN = "sandbox-token"
BOUNDARIES = [1_700_000_001_000, 1_700_000_002_000, 1_700_000_002_001]


def _edge_table() -> SandboxTable:
    """Records just before, exactly on (twice: one bulk create) and just after each boundary."""
    stamps = [1_600_000_000_000]
    for boundary in BOUNDARIES:
        stamps += [boundary - 1, boundary, boundary, boundary + 1]
    stamps.append(1_800_000_000_000)
    records = [{"id": f"recEdge{i:010d}", "createdTime": iso_from_ms(stamp),
                "fields": {"Name": f"r{i}"}} for i, stamp in enumerate(stamps)]
    return SandboxTable("tblEdges000000001", "Edges",
                        [SandboxField("Name", "singleLineText", "fldName0000000001")], records)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    bases = [SandboxBase("appPARTS000000001", "Parts", [_edge_table()]),
             build_base("appPARTS000000002", {"Big": 2_500}, hostile=False)]
    with run_sandbox(bases, SandboxConfig(token=TOKEN, requests_per_second=None)) as running:
        yield running


def _extractor(sandbox: Sandbox, base_id: str) -> AirtableExtractor:
    return AirtableExtractor(api_key=TOKEN, base_id=base_id, api_url=sandbox.url,
                             requests_per_second=10_000)


def _listing(extractor: AirtableExtractor, table: TableRef, formula: str | None) -> list[dict]:
    return [record for page in extractor.iter_pages(table, formula=formula)
            for record in page.records]


def test_records_on_a_boundary_land_in_exactly_one_partition(sandbox: Sandbox) -> None:
    extractor = _extractor(sandbox, "appPARTS000000001")
    table = extractor.find_table("Edges")
    plan = windows(BOUNDARIES)
    seen: dict[str, int] = {}
    for window in plan:
        for record in _listing(extractor, table, window.formula()):
            assert record["id"] not in seen, f"{record['id']} in windows {seen[record['id']]} " \
                                             f"and {window.index}"
            seen[record["id"]] = window.index
            assert owner(plan, record["createdTime"]) == window
    everything = _listing(extractor, table, None)
    assert set(seen) == {r["id"] for r in everything}
    on_boundaries = [r for r in everything
                     if r["createdTime"] in {iso_from_ms(b) for b in BOUNDARIES}]
    # two per boundary, plus b3-1 and b2+1, which are b2 and b3 themselves
    assert len(on_boundaries) == 8
    # on a boundary means in the window that starts there, never the one that ends there
    assert {seen[r["id"]] for r in on_boundaries} == {1, 2, 3}


def test_partitions_of_a_generated_table_union_to_the_full_listing(sandbox: Sandbox) -> None:
    extractor = _extractor(sandbox, "appPARTS000000002")
    table = extractor.find_table("Big")
    full = _listing(extractor, table, None)
    plan = plan_from_created([r["createdTime"] for r in full], 4, min_records=500)
    assert len(plan) == 4
    listed = [r["id"] for w in plan for r in _listing(extractor, table, w.formula())]
    assert Counter(listed).most_common(1)[0][1] == 1  # no duplicates
    assert sorted(listed) == sorted(r["id"] for r in full)  # no gap
    sizes = [len(_listing(extractor, table, w.formula())) for w in plan]
    assert min(sizes) >= 500  # balanced by the previous sync's creation times


def test_records_created_during_the_run_fall_in_the_last_partition(sandbox: Sandbox) -> None:
    extractor = _extractor(sandbox, "appPARTS000000001")
    table = extractor.find_table("Edges")
    plan = windows(BOUNDARIES)
    created = sandbox.bases["appPARTS000000001"].tables[0].create({"Name": "new"})
    holders = [w.index for w in plan
               if created["id"] in {r["id"] for r in _listing(extractor, table, w.formula())}]
    assert holders == [plan[-1].index]


def test_the_connection_is_open_before_the_limiter_admits_the_request(sandbox: Sandbox) -> None:
    from app.extractors.airtable_session import RateLimitedSession

    session: RateLimitedSession

    class Recording:
        """A limiter that notes whether a connected socket was already pooled when asked."""

        def __init__(self) -> None:
            self.connected_when_admitted: list[bool] = []

        def acquire(self, key: str, token: str | None = None) -> float:
            probe = session.prepare_request(requests.Request("GET", sandbox.url))
            verify = session.merge_environment_settings(sandbox.url, {}, None, None, None)["verify"]
            pool = session.get_adapter(sandbox.url).get_connection_with_tls_context(probe, verify)
            conn = pool._get_conn()
            self.connected_when_admitted.append(conn.is_connected)
            pool._put_conn(conn)
            return 0.0

        def penalize(self, key: str, seconds: float) -> None:
            raise AssertionError("no 429 expected")

    limiter = Recording()
    session = RateLimitedSession(limiter, base_key="b", penalty_seconds=1.0)
    session.headers["Authorization"] = f"Bearer {TOKEN}"
    for _ in range(2):
        assert session.get(f"{sandbox.url}/v0/appPARTS000000001/Edges").status_code == 200
    assert limiter.connected_when_admitted == [True, True]


def test_the_request_log_records_each_answer_with_its_records(sandbox: Sandbox) -> None:
    extractor = _extractor(sandbox, "appPARTS000000001")
    table = extractor.find_table("Edges")
    sandbox.stats.keep_log()
    sandbox.config.latency_jitter_seconds = 0.01
    sandbox.config.requests_per_second = 1
    listed = _listing(extractor, table, None)
    requests.get(f"{sandbox.url}/v0/appPARTS000000001/Edges",
                 headers={"Authorization": f"Bearer {TOKEN}"})  # over the limit: a 429
    log = sandbox.stats.log
    assert log is not None
    assert [(e.kind, e.status, e.records) for e in log] == [("list", 200, len(listed)),
                                                            ("list", 429, 0)]
    assert log[0].arrived < log[1].arrived


def test_window_formulas_answered_from_creation_times_match_the_formula_engine(sandbox: Sandbox) -> None:
    from sandbox.formula import compile_filter
    from sandbox.listing import _created_window

    table = sandbox.bases["appPARTS000000001"].tables[0]
    for window in windows(BOUNDARIES + [1_700_000_001_500]):
        formula = window.formula()
        assert formula is not None and _created_window(formula) is not None
        keep = compile_filter(formula, table)
        low, high = _created_window(formula)
        fast = [r["id"] for r in table.records if low <= table.created_ms(r["id"]) < high]
        assert fast == [r["id"] for r in table.records if keep(r)], formula
    assert _created_window("AND({Name}='x',VALUE(DATETIME_FORMAT(CREATED_TIME(),'x'))<5)") is None
