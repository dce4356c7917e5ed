"""The Airtable sandbox, driven through unmodified pyairtable as real loading code drives it."""

from __future__ import annotations

import datetime
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from pyairtable import Api
from pyairtable import formulas as F
from pyairtable.models import schema as S

from sandbox import (
    FIELD_TYPES,
    Sandbox,
    SandboxBase,
    SandboxConfig,
    build_base,
    hostile_table_names,
    run_sandbox,
)
from sandbox.config import RateLimiter

TOKEN = "sandbox-token"


@pytest.fixture
def base() -> SandboxBase:
    return build_base()


@pytest.fixture
def sandbox(base: SandboxBase) -> Iterator[Sandbox]:
    with run_sandbox([base], SandboxConfig(token=TOKEN, requests_per_second=None)) as running:
        yield running


@pytest.fixture
def api(sandbox: Sandbox) -> Api:
    return Api(TOKEN, endpoint_url=sandbox.url, retry_strategy=None)


def _error(exc: pytest.ExceptionInfo[requests.HTTPError]) -> tuple[int, Any]:
    response = exc.value.response
    assert response is not None
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    return response.status_code, response.json()


# -- listing ------------------------------------------------------------------------------------


def test_every_page_of_a_250_record_table_comes_back_once(api: Api, base: SandboxBase,
                                                          sandbox: Sandbox) -> None:
    pages = list(api.table(base.id, "Clients").iterate())
    assert [len(p) for p in pages] == [100, 100, 50]
    records = [r for page in pages for r in page]
    assert len({r["id"] for r in records}) == 250
    assert records == base.table("Clients").records  # type: ignore[union-attr]
    assert sandbox.stats.by_kind["list"] == 3
    assert sandbox.stats["requests"] == 3


def test_stats_count_the_bytes_of_every_response_body(base: SandboxBase, sandbox: Sandbox) -> None:
    sandbox.stats.keep_log()
    bodies = [requests.get(f"{sandbox.url}/v0/{base.id}/Clients", params=params, timeout=10,
                           headers={"Authorization": f"Bearer {TOKEN}"}).content
              for params in ({}, {"fields[]": "Name"}, {"pageSize": "5"})]
    assert len(set(map(len, bodies))) == 3
    assert [e.body_bytes for e in sandbox.stats.log or []] == [len(b) for b in bodies]
    assert sandbox.stats.body_bytes == sum(map(len, bodies))
    sandbox.stats.reset()
    assert sandbox.stats.body_bytes == 0


def test_page_size_max_records_and_sort(api: Api, base: SandboxBase) -> None:
    table = api.table(base.id, "Invoices")
    pages = list(table.iterate(page_size=7, max_records=20))
    assert [len(p) for p in pages] == [7, 7, 6]
    ordered = table.all(sort=["-Quantity"], fields=["Quantity"])
    quantities = [r["fields"].get("Quantity", -1) for r in ordered]
    assert len(ordered) == 600
    assert quantities == sorted(quantities, reverse=True)


def test_fields_param_limits_fields_and_rejects_unknown_names(api: Api, base: SandboxBase) -> None:
    wanted = {"Name", 'Say "hi"', "Ünïcödé 名前"}
    records = api.table(base.id, "Clients").all(fields=sorted(wanted))
    assert len(records) == 250
    seen = set().union(*(r["fields"].keys() for r in records))
    assert seen == wanted
    with pytest.raises(requests.HTTPError) as exc:
        api.table(base.id, "Clients").all(fields=["Name", "No such field"])
    assert _error(exc) == (422, {"error": {"type": "UNKNOWN_FIELD_NAME",
                                           "message": 'Unknown field name: "No such field"'}})


def test_return_fields_by_field_id(api: Api, base: SandboxBase) -> None:
    stored = base.table("Projects")
    assert stored is not None
    names = {f.id: f.name for f in stored.fields}
    records = api.table(base.id, "Projects").all(use_field_ids=True)
    assert all(set(r["fields"]) <= set(names) for r in records)
    as_names = [{names[k]: v for k, v in r["fields"].items()} for r in records]
    assert as_names == [r["fields"] for r in stored.records]


def test_filter_by_last_modified_time_returns_only_the_updated_record(api: Api,
                                                                      base: SandboxBase) -> None:
    table = api.table(base.id, "Clients")
    newest = max(r["fields"]["Last modified"] for r in table.all(fields=["Last modified"]))
    target = table.all(max_records=1, sort=["Name"])[0]["id"]
    table.update(target, {"Quantity": 7})
    after = F.IS_AFTER(F.LAST_MODIFIED_TIME(), F.DATETIME_PARSE(newest))
    assert [r["id"] for r in table.all(formula=after)] == [target]
    as_datetime = datetime.datetime.fromisoformat(newest.replace("Z", "+00:00"))
    assert [r["id"] for r in table.all(formula=F.GT(F.LAST_MODIFIED_TIME(), as_datetime))] \
        == [target]
    assert table.all(formula=f"LAST_MODIFIED_TIME() > '{newest}'", fields=["Name"])[0]["id"] \
        == target


def test_pyairtable_formulas_filter_like_python_does(api: Api, base: SandboxBase) -> None:
    stored = base.table("Invoices")
    assert stored is not None
    table = api.table(base.id, "Invoices")
    rows = stored.records

    def ids(formula: Any) -> list[str]:
        return [r["id"] for r in table.all(formula=formula, fields=["Name"])]

    done = [r["id"] for r in rows if r["fields"].get("Status") == "Done"]
    assert done and ids(F.match({"Status": "Done"})) == done
    big_done = [r["id"] for r in rows
                if r["fields"].get("Status") == "Done" and r["fields"].get("Quantity", 0) >= 250]
    assert ids(F.match({"Status": "Done", "Quantity": (">=", 250)})) == big_done
    either = [r["id"] for r in rows
              if r["fields"].get("Status") == "Done" or r["fields"].get("Quantity", 0) >= 250]
    assert ids(F.match({"Status": "Done", "Quantity": (">=", 250)}, match_any=True)) == either
    assert ids(F.EQ(F.RECORD_ID(), rows[42]["id"])) == [rows[42]["id"]]
    cutoff = "2024-01-01T00:00:00.000Z"
    recent = [r["id"] for r in rows if r["createdTime"] >= cutoff]
    assert recent and ids(F.GTE(F.CREATED_TIME(), F.DATETIME_PARSE(cutoff))) == recent
    checked = [r["id"] for r in rows if r["fields"].get("1st place")]
    assert ids(F.match({"1st place": True})) == checked
    assert ids(F.NOT(F.match({"1st place": True}))) == [r["id"] for r in rows
                                                        if not r["fields"].get("1st place")]
    awkward = 'It\'s a "quoted" back\\slash {brace}'
    made = table.create({'Say "hi"': awkward})
    assert ids(F.match({'Say "hi"': awkward})) == [made["id"]]


def test_unsupported_formula_is_a_422(api: Api, base: SandboxBase) -> None:
    for formula in ("FOO(1)", "{Name} = ", "{Missing} = 1"):
        with pytest.raises(requests.HTTPError) as exc:
            api.table(base.id, "Clients").all(formula=formula)
        status, body = _error(exc)
        assert status == 422
        assert body["error"]["type"] == "INVALID_FILTER_BY_FORMULA"


def test_long_requests_fall_back_to_post_list_records(api: Api, base: SandboxBase,
                                                      sandbox: Sandbox) -> None:
    stored = base.table("Invoices")
    assert stored is not None
    wanted = [r["id"] for r in stored.records[::3]][:180] * 2  # long enough to pass 16,000 chars
    formula = F.OR(*(F.EQ(F.RECORD_ID(), record_id) for record_id in wanted))
    records = api.table(base.id, "Invoices").all(formula=formula, page_size=50)
    assert [r["id"] for r in records] == wanted[:180]
    assert sandbox.stats.by_kind["list_post"] == 4
    assert sandbox.stats.by_kind["list"] == 0


def test_offsets_are_opaque_checked_and_can_expire(api: Api, base: SandboxBase,
                                                   sandbox: Sandbox) -> None:
    url = f"{sandbox.url}/v0/{base.id}/Clients"
    first = api.session.get(url, params={"pageSize": 10}).json()
    assert first["offset"].startswith("itr") and "/rec" in first["offset"]
    second = api.session.get(url, params={"pageSize": 10, "offset": first["offset"]}).json()
    assert second["records"][0]["id"] == base.tables[0].records[10]["id"]
    garbled = api.session.get(url, params={"offset": first["offset"] + "x"})
    assert garbled.status_code == 422
    assert garbled.json()["error"]["type"] == "LIST_RECORDS_ITERATOR_NOT_AVAILABLE"
    assert api.session.get(url, params={"pageSize": 101}).status_code == 422
    sandbox.config.offset_ttl_seconds = 0.1
    time.sleep(0.15)
    expired = api.session.get(url, params={"offset": second["offset"]})
    assert expired.status_code == 422


def test_view_comment_count_and_string_cell_format(api: Api, base: SandboxBase) -> None:
    table = api.table(base.id, "Projects")
    assert len(table.all(view="Grid view")) == 120
    with pytest.raises(requests.HTTPError) as exc:
        table.all(view="No such view")
    assert _error(exc)[1]["error"]["type"] == "VIEW_NAME_NOT_FOUND"
    assert {r["commentCount"] for r in table.all(count_comments=True)} == {0}
    as_text = table.all(cell_format="string", time_zone="UTC", user_locale="en-us",
                        fields=["Quantity", "Tags"])
    assert all(isinstance(v, str) for r in as_text for v in r["fields"].values())
    with pytest.raises(requests.HTTPError):
        table.all(cell_format="string")  # the API needs a time zone and locale for text


# -- single records and writes ------------------------------------------------------------------


def test_get_one_record_and_unknown_record(api: Api, base: SandboxBase) -> None:
    stored = base.tables[0].records[17]
    table = api.table(base.id, base.tables[0].id)
    assert table.get(stored["id"]) == stored
    with pytest.raises(requests.HTTPError) as exc:
        table.get("recDoesNotExist00")
    assert _error(exc) == (404, {"error": {"type": "MODEL_ID_NOT_FOUND",
                                           "message": "Record not found"}})


def test_create_update_delete_round_trip(api: Api, base: SandboxBase) -> None:
    table = api.table(base.id, "Projects")
    created = table.create({"Name": "Brand new", "Quantity": 0, "Active": False, "Notes": "",
                            "Tags": [], "Status": "Done"})
    fields = created["fields"]
    assert {"Active", "Notes", "Tags"}.isdisjoint(fields)  # empty values are omitted
    assert fields["Quantity"] == 0 and fields["Row number"] == 121
    assert fields["Created"] == fields["Last modified"] == created["createdTime"]
    assert table.get(created["id"]) == created

    patched = table.update(created["id"], {"Rating": 4})
    assert patched["fields"]["Name"] == "Brand new" and patched["fields"]["Rating"] == 4
    assert patched["fields"]["Last modified"] >= created["fields"]["Last modified"]
    replaced = table.update(created["id"], {"Quantity": 9}, replace=True)
    assert "Name" not in replaced["fields"] and replaced["fields"]["Quantity"] == 9
    assert replaced["fields"]["Row number"] == 121  # computed fields survive a PUT

    many = table.batch_create([{"Name": f"Batch {i}"} for i in range(12)])
    assert [r["fields"]["Name"] for r in many] == [f"Batch {i}" for i in range(12)]
    updated = table.batch_update([{"id": r["id"], "fields": {"Quantity": 5}} for r in many])
    assert all(r["fields"]["Quantity"] == 5 and r["fields"]["Name"] for r in updated)
    all_ids = [r["id"] for r in table.all(fields=["Name"])]
    assert all_ids[-13:] == [created["id"]] + [r["id"] for r in many]

    assert table.delete(created["id"]) == {"id": created["id"], "deleted": True}
    deleted = table.batch_delete([r["id"] for r in many])
    assert deleted == [{"id": r["id"], "deleted": True} for r in many]
    assert len(table.all(fields=["Name"])) == 120
    with pytest.raises(requests.HTTPError) as exc:
        table.get(created["id"])
    assert _error(exc)[0] == 404


def test_writes_are_validated(api: Api, base: SandboxBase, sandbox: Sandbox) -> None:
    table = api.table(base.id, "Projects")
    cases = [({"Nope": 1}, "UNKNOWN_FIELD_NAME"), ({"Row number": 5}, "INVALID_VALUE_FOR_COLUMN"),
             ({"Quantity": "many"}, "INVALID_VALUE_FOR_COLUMN"),
             ({"Status": "Not a choice"}, "INVALID_MULTIPLE_CHOICE_OPTIONS")]
    for fields, error_type in cases:
        with pytest.raises(requests.HTTPError) as exc:
            table.create(fields)
        status, body = _error(exc)
        assert (status, body["error"]["type"]) == (422, error_type)
    assert table.create({"Status": "Brand new state"}, typecast=True)["fields"]["Status"] \
        == "Brand new state"
    too_many = api.session.post(f"{sandbox.url}/v0/{base.id}/Projects",
                                json={"records": [{"fields": {}}] * 11})
    assert too_many.status_code == 422
    assert too_many.json()["error"]["type"] == "INVALID_RECORDS"


def test_batch_upsert_matches_on_fields(api: Api, base: SandboxBase) -> None:
    table = api.table(base.id, "Projects")
    table.create({"Name": "Upsert me", "Quantity": 1})
    result = table.batch_upsert([{"fields": {"Name": "Upsert me", "Quantity": 2}},
                                 {"fields": {"Name": "Fresh one", "Quantity": 3}}],
                                key_fields=["Name"])
    assert len(result["updatedRecords"]) == 1 and len(result["createdRecords"]) == 1
    found = table.all(formula=F.match({"Name": "Upsert me"}))
    assert [r["fields"]["Quantity"] for r in found] == [2]


# -- metadata -----------------------------------------------------------------------------------


def test_metadata_describes_every_table_and_field(api: Api, base: SandboxBase) -> None:
    assert [(b.id, b.name) for b in api.bases()] == [(base.id, base.name)]
    schema = api.base(base.id).schema()
    assert [t.name for t in schema.tables] == ["Clients", "Projects", "Invoices"]
    table_ids = {t.id for t in schema.tables}
    for table in schema.tables:
        assert table.primary_field_id == table.fields[0].id
        assert [v.name for v in table.views] == ["Grid view"]
        assert table.views[0].visible_field_ids == [f.id for f in table.fields]
        assert set(FIELD_TYPES) <= {f.type for f in table.fields}
        unknown = [f.name for f in table.fields if isinstance(f, S.UnknownFieldSchema)]
        assert unknown == []  # every options shape is one pyairtable understands
        for field in table.fields:
            if field.type in ("formula", "rollup", "multipleLookupValues"):
                assert field.options.result is not None  # type: ignore[union-attr]
            if isinstance(field, S.MultipleRecordLinksFieldSchema):
                assert field.options.linked_table_id in table_ids - {table.id}
            if isinstance(field, S.SingleSelectFieldSchema):
                assert "Done" in [c.name for c in field.options.choices]
    assert api.whoami()["id"].startswith("usr")


# -- errors, limits, failures -------------------------------------------------------------------


def test_auth_and_not_found_errors(api: Api, base: SandboxBase, sandbox: Sandbox) -> None:
    cases = [
        (Api("wrong-token", endpoint_url=sandbox.url, retry_strategy=None), base.id, "Clients",
         401, "AUTHENTICATION_REQUIRED"),
        (api, "appNoSuchBase0000", "Clients", 403, "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND"),
        (api, base.id, "No such table", 403, "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND"),
    ]
    for client, base_id, table_name, status, error_type in cases:
        with pytest.raises(requests.HTTPError) as exc:
            client.table(base_id, table_name).all()
        got_status, body = _error(exc)
        assert (got_status, body["error"]["type"]) == (status, error_type)
    missing = requests.get(f"{sandbox.url}/v0/{base.id}/Clients", timeout=5)
    assert missing.status_code == 401
    assert missing.json() == {"error": {"type": "AUTHENTICATION_REQUIRED",
                                        "message": "Authentication required"}}
    sandbox.config.legacy_table_not_found = True
    with pytest.raises(requests.HTTPError) as exc:
        api.table(base.id, "No such table").all()
    assert _error(exc)[0:2] == (404, {"error": {
        "type": "TABLE_NOT_FOUND",
        "message": f"Could not find table No such table in application {base.id}"}})
    assert api.session.get(f"{sandbox.url}/v0/nowhere").json() == {"error": "NOT_FOUND"}


def test_rate_limit_then_penalty_then_recovery() -> None:
    first, other = build_base(tables={"T": 3}), build_base("appSANDBOX0000002", {"T": 3})
    config = SandboxConfig(token=TOKEN, requests_per_second=5, penalty_seconds=0.5)
    with run_sandbox([first, other], config) as sandbox:
        table = Api(TOKEN, endpoint_url=sandbox.url, retry_strategy=None).table(first.id, "T")
        for _ in range(5):
            assert len(table.all()) == 3
        with pytest.raises(requests.HTTPError) as exc:
            table.all()
        assert _error(exc) == (429, {"errors": [{
            "error": "RATE_LIMIT_REACHED",
            "message": "Rate limit exceeded. Please try again later"}]})
        time.sleep(0.25)
        with pytest.raises(requests.HTTPError) as exc:
            table.first()  # still inside the penalty, though well under 5 requests a second
        assert _error(exc)[0] == 429
        other_table = Api(TOKEN, endpoint_url=sandbox.url, retry_strategy=None).table(other.id, "T")
        assert len(other_table.all()) == 3  # the limit is per base
        time.sleep(0.3)
        assert len(table.all()) == 3
        assert sandbox.stats.rate_limited == 2


def test_rate_limiter_window_and_penalty_with_a_fake_clock() -> None:
    now = [100.0]
    config = SandboxConfig(requests_per_second=2, penalty_seconds=30)
    limiter = RateLimiter(lambda: config, clock=lambda: now[0])
    assert [limiter.allow("app1"), limiter.allow("app1"), limiter.allow("app2")] == [True] * 3
    assert limiter.allow("app1") is False and limiter.penalised("app1")
    now[0] += 29.9
    assert limiter.allow("app1") is False
    now[0] += 0.2
    assert limiter.allow("app1") and limiter.allow("app1")
    now[0] += 1.0  # the window slides: a second later two more are allowed
    assert limiter.allow("app1") and limiter.allow("app1")
    config.requests_per_second = 0.5  # below one a second: one request per two seconds
    now[0] += 2.0
    assert limiter.allow("app3") and not limiter.allow("app3")
    config.requests_per_second = None
    assert all(limiter.allow("app4") for _ in range(1000))


def test_rate_limiter_counts_requests_at_their_arrival_in_any_order() -> None:
    now = [100.0]
    config = SandboxConfig(requests_per_second=2, penalty_seconds=30)
    limiter = RateLimiter(lambda: config, clock=lambda: now[0])
    assert limiter.allow("app1", at=99.0) and limiter.allow("app1", at=99.5)
    assert limiter.allow("app1", at=100.05)  # 99.0 arrived more than a second before
    # Counted after a later arrival, a request still has it in its window: of the two, one is
    # refused, as when Airtable counts them in arrival order.
    assert not limiter.allow("app1", at=100.0)


def test_a_request_is_counted_when_it_arrived_not_when_its_thread_got_to_run() -> None:
    config = SandboxConfig(token=TOKEN, requests_per_second=2, penalty_seconds=30)
    base = build_base(tables={"T": 3})
    started = time.perf_counter()
    sum(range(1_000_000))
    steps = int(1_000_000 * 0.3 / (time.perf_counter() - started))
    with run_sandbox([base], config) as sandbox:
        host, port = sandbox.url.split("://")[1].split(":")
        path = f"/v0/{base.id}/T"
        with socket.create_connection((host, int(port))) as raw:
            raw.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
                         f"Authorization: Bearer {TOKEN}\r\n\r\n".encode())
            sent = time.monotonic()
            # One C call holds the GIL about 0.3 s, so the sandbox's handler cannot run.
            sum(range(steps))
            held = time.monotonic() - sent
            assert raw.recv(65536).startswith(b"HTTP/1.1 200")
        headers = {"Authorization": f"Bearer {TOKEN}"}
        time.sleep(max(sent + 0.5 - time.monotonic(), 0))
        assert requests.get(f"{sandbox.url}{path}", headers=headers).status_code == 200
        time.sleep(max(sent + 1.1 - time.monotonic(), 0))
        third = requests.get(f"{sandbox.url}{path}", headers=headers)
    assert 0.15 < held < 0.9, "the handler was not held back long enough (or too long) to tell"
    # Arrived 1.1 s after the first: two in its window only if the first were counted when
    # its thread ran (`held` s after it arrived), not when it arrived.
    assert third.status_code == 200


def test_a_penalty_started_from_outside_refuses_the_base_for_its_time() -> None:
    now = [100.0]
    config = SandboxConfig(requests_per_second=None, penalty_seconds=30)
    limiter = RateLimiter(lambda: config, clock=lambda: now[0])
    limiter.penalise("app1", seconds=3)
    assert not limiter.allow("app1") and limiter.allow("app2")
    now[0] += 3.0
    assert limiter.allow("app1")
    limiter.penalise("app1")  # the configured penalty
    now[0] += 29.9
    assert not limiter.allow("app1")


def test_failures_can_be_switched_on_mid_run(api: Api, base: SandboxBase,
                                             sandbox: Sandbox) -> None:
    table = api.table(base.id, "Clients")
    assert table.first() is not None
    sandbox.config.failure_rate = 1.0
    statuses = set()
    for _ in range(12):
        with pytest.raises(requests.HTTPError) as exc:
            table.first()
        status, body = _error(exc)
        statuses.add(status)
        assert "type" in body["error"]
    assert statuses <= {500, 502, 503} and len(statuses) > 1
    assert sandbox.stats.failures_injected == 12
    sandbox.config.failure_rate = 0.0
    assert table.first() is not None
    assert sandbox.stats.internal_errors == 0
    sandbox.config.latency_seconds = 0.2
    started = time.perf_counter()
    assert table.first() is not None
    assert time.perf_counter() - started >= 0.2


def test_concurrent_keep_alive_clients_and_clean_stop(base: SandboxBase,
                                                      capfd: pytest.CaptureFixture[str]) -> None:
    sandbox = Sandbox.start([base], SandboxConfig(token=TOKEN, requests_per_second=None))
    results: list[int] = []

    def client() -> None:
        table = Api(TOKEN, endpoint_url=sandbox.url, retry_strategy=None).table(base.id, "Invoices")
        results.extend(len(table.all(fields=["Name"])) for _ in range(3))

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == [600] * 24
    assert sandbox.stats.requests == 24 * 6
    sandbox.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(sandbox.url + "/v0/meta/bases", timeout=2)
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_serve_forever_runs_in_the_foreground_until_interrupted(tmp_path: Path) -> None:
    script = (
        "import faulthandler, logging, signal, sys\n"
        "faulthandler.register(signal.SIGUSR1)\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stdout, format='%(message)s')\n"
        "from sandbox import SandboxConfig, build_base, serve_forever\n"
        "serve_forever([build_base(tables={'T': 3})], SandboxConfig(token='t'), port=0)\n"
    )
    root = Path(__file__).resolve().parents[2]
    # As from a shell: Ctrl-C's default action, whatever this test process inherited.
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.rsplit(" ", 1)[-1].strip()
        assert line.startswith("Airtable sandbox listening on http://127.0.0.1:")
        table = Api("t", endpoint_url=url, retry_strategy=None).table("appSANDBOX0000001", "T")
        assert len(table.all()) == 3
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)  # its threads' stacks, to say where it hangs
            time.sleep(1)
            proc.kill()
            pytest.fail(f"the sandbox ignored Ctrl-C for 10 s; its stacks:\n{proc.communicate()[1]}")
        assert proc.returncode == 0
        assert proc.stderr is not None and proc.stderr.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


# -- generated data -----------------------------------------------------------------------------

_ISO_MS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def _people(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"id", "email", "name"} \
        and value["id"].startswith("usr")


def _attachment(value: Any) -> bool:
    base_ok = {"id", "url", "filename", "size", "type"} <= set(value) and \
        value["id"].startswith("att") and isinstance(value["size"], int)
    return base_ok and set(value) <= {"id", "url", "filename", "size", "type", "width", "height",
                                      "thumbnails"}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


SHAPES: dict[str, Any] = {
    "singleLineText": lambda v: isinstance(v, str) and v != "",
    "multilineText": lambda v: isinstance(v, str) and v != "",
    "richText": lambda v: isinstance(v, str) and "**" in v,
    "email": lambda v: isinstance(v, str) and "@" in v,
    "url": lambda v: isinstance(v, str) and v.startswith("https://"),
    "phoneNumber": lambda v: isinstance(v, str) and "555" in v,
    "number": _number, "currency": _number, "rollup": _number,
    "percent": lambda v: _number(v) and 0 <= v <= 1,
    "rating": lambda v: isinstance(v, int) and 1 <= v <= 5,
    "duration": lambda v: _number(v) and v >= 0,
    "autoNumber": lambda v: isinstance(v, int) and v >= 1,
    "count": lambda v: isinstance(v, int) and v >= 0,
    "checkbox": lambda v: v is True,
    "date": lambda v: isinstance(v, str) and __import__("re").fullmatch(r"\d{4}-\d\d-\d\d", v),
    "dateTime": lambda v: __import__("re").fullmatch(_ISO_MS, v),
    "createdTime": lambda v: __import__("re").fullmatch(_ISO_MS, v),
    "lastModifiedTime": lambda v: __import__("re").fullmatch(_ISO_MS, v),
    "createdBy": _people, "lastModifiedBy": _people, "singleCollaborator": _people,
    "multipleCollaborators": lambda v: isinstance(v, list) and v and all(map(_people, v)),
    "singleSelect": lambda v: isinstance(v, str),
    "multipleSelects": lambda v: isinstance(v, list) and v and all(isinstance(i, str) for i in v),
    "multipleRecordLinks": lambda v: isinstance(v, list) and v
    and all(i.startswith("rec") and len(i) == 17 for i in v),
    "multipleAttachments": lambda v: isinstance(v, list) and v and all(map(_attachment, v)),
    "formula": lambda v: _number(v) or isinstance(v, str) or isinstance(v, list)
    or v in ({"specialValue": "NaN"}, {"specialValue": "Infinity"}, {"error": "#ERROR!"}),
    "multipleLookupValues": lambda v: isinstance(v, list) and v,
    "barcode": lambda v: isinstance(v, dict) and isinstance(v["text"], str),
    "button": lambda v: isinstance(v, dict) and v["label"] and v["url"].startswith("https://"),
}


def test_every_field_type_has_values_of_the_right_shape(base: SandboxBase) -> None:
    assert set(SHAPES) == set(FIELD_TYPES)
    for table in base.tables:
        by_name = {f.name: f for f in table.fields}
        present = {f.name: 0 for f in table.fields}
        for record in table.records:
            for name, value in record["fields"].items():
                field = by_name[name]
                assert SHAPES[field.type](value), (table.name, name, value)
                if field.type in ("singleSelect", "multipleSelects"):
                    choices = {c["name"] for c in (field.options or {})["choices"]}
                    assert set(value if isinstance(value, list) else [value]) <= choices
                present[name] += 1
        assert all(present.values()), [n for n, c in present.items() if not c]
    specials = [r["fields"]["Score"] for t in base.tables for r in t.records
                if isinstance(r["fields"].get("Score"), dict)]
    for special in ({"specialValue": "NaN"}, {"specialValue": "Infinity"}, {"error": "#ERROR!"}):
        assert special in specials


def test_empty_values_are_omitted_and_gaps_are_realistic(base: SandboxBase) -> None:
    always = {"autoNumber", "count", "createdTime", "lastModifiedTime", "createdBy",
              "lastModifiedBy", "button", "rollup"}
    for table in base.tables:
        records = table.records
        for record in records:
            assert set(record) == {"id", "createdTime", "fields"}
            for value in record["fields"].values():
                assert value is not False and value not in (None, "", [], {})
        for field in table.fields:
            share = sum(field.name not in r["fields"] for r in records) / len(records)
            if field.type in always:
                assert share == 0, field.name
            elif field.type == "checkbox":
                assert 0.3 < share < 0.7, field.name
            else:
                assert 0.02 <= share <= 0.45, (table.name, field.name, share)
    names = [r["fields"].get("Name") for r in base.tables[2].records]
    assert None in names and len(set(names)) < len(names)


def test_hostile_field_and_table_names() -> None:
    base = build_base(tables={name: 5 for name in hostile_table_names()})
    names = [f.name for f in base.tables[0].fields]
    for expected in ("Ünïcödé 名前", 'Say "hi"', "it's", "select", "order", "1st place", "__id",
                     "Status", "status", "Mixed bag"):
        assert expected in names
    assert any(" " in n for n in names)
    long_names = [n for n in names if len(n) > 63]
    assert len(long_names) >= 3
    assert any(a != b and a[:63] == b[:63] for a in long_names for b in long_names)
    assert [t.name for t in base.tables] == hostile_table_names()
    with run_sandbox([base], SandboxConfig(token=TOKEN, requests_per_second=None)) as sandbox:
        api = Api(TOKEN, endpoint_url=sandbox.url, retry_strategy=None)
        for name in hostile_table_names():
            assert len(api.table(base.id, name).all()) == 5
    assert "status" not in [f.name for f in build_base(hostile=False).tables[0].fields]


def test_mixed_type_field_changes_type_between_records() -> None:
    table = build_base(tables={"T": 300}).tables[0]
    field = table.field("Mixed bag")
    assert field is not None and field.options is not None
    assert field.options["result"] == {"type": "number", "options": {"precision": 1}}
    kinds = {type(r["fields"]["Mixed bag"]).__name__ for r in table.records
             if "Mixed bag" in r["fields"]}
    assert {"float", "str", "list"} <= kinds


def test_build_base_is_deterministic_per_seed() -> None:
    one, two = build_base(seed=7), build_base(seed=7)
    assert [t.records for t in one.tables] == [t.records for t in two.tables]
    assert [[f.id for f in t.fields] for t in one.tables] == \
        [[f.id for f in t.fields] for t in two.tables]
    other = build_base(seed=8)
    assert one.tables[0].records[0]["id"] != other.tables[0].records[0]["id"]
    table = one.tables[0]
    assert table.id.startswith("tbl") and len(table.id) == 17
    assert all(f.id.startswith("fld") and len(f.id) == 17 for f in table.fields)
    assert all(r["id"].startswith("rec") and len(r["id"]) == 17 for r in table.records)
    created = [r["createdTime"] for r in table.records]
    assert created == sorted(created)  # listed in creation order


def test_twenty_thousand_records_build_with_unique_ids() -> None:
    base = build_base(tables={"Big": 20_000})
    assert len(base.tables[0]) == 20_000
    assert len({r["id"] for r in base.tables[0].records}) == 20_000
