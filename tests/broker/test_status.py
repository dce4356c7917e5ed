"""RunStatus against real Redis: idempotent counts, a run finishes once, cancel flags."""

import threading
import time

import pytest

from app.contracts import RejectedRecord, TableRef
from app.sync import rules
from broker.status import RunStatus, redis_client

T1 = TableRef("airtable", "tbl1", "Clients")
T2 = TableRef("airtable", "tbl2", "Orders")


@pytest.fixture
def store(redis_url):
    return RunStatus(redis_client(redis_url))


def test_a_new_run_is_queued_and_listed(store):
    store.create_run("r1", "etl", {"drop_tables": True})
    status = store.get("r1")
    assert status["state"] == "queued"
    assert status["options"] == {"drop_tables": True}
    assert [r["run_id"] for r in store.recent()] == ["r1"]


def test_counts_are_per_batch_so_redelivery_does_not_double_count(store):
    store.create_run("r1", "etl", {})
    store.set_tables("r1", [T1, T2])
    for _ in range(3):  # the same batch delivered three times
        store.record_fetched("r1", "tbl1", 0, 100)
        store.record_loaded("r1", "tbl1", 0, 99, (RejectedRecord("recX", "NUL byte"),))
    store.record_fetched("r1", "tbl1", 1, 40)
    store.record_loaded("r1", "tbl1", 1, 40)
    table = store.get("r1")["tables"][0]
    assert (table["fetched"], table["loaded"], table["batches"]) == (140, 139, 2)
    assert table["rejected"] == [{"record_id": "recX", "reason": "NUL byte"}]
    assert store.get("r1")["tables"][1]["state"] == "pending"


def test_batches_of_a_restarted_listing_count_once(store):
    """The listing restarted (its cursor expired) in epoch 1 while epoch 0's batches were still
    queued: the late ones land, but their records come again in epoch 1 and count there only."""
    store.create_run("r1", "etl", {})
    store.set_tables("r1", [T1])
    for batch_no in (0, 1):
        store.record_fetched("r1", "tbl1", batch_no, 100)
        store.record_loaded("r1", "tbl1", batch_no, 100)
    store.reset_table_counts("r1", "tbl1")
    store.record_loaded("r1", "tbl1", 2, 100, (RejectedRecord("recOLD", "too wide"),))  # late
    first = rules.EPOCH_SIZE
    for batch_no, n in ((first, 100), (first + 1, 100), (first + 2, 50)):
        store.record_fetched("r1", "tbl1", batch_no, n)
        store.record_loaded("r1", "tbl1", batch_no, n - 1, (RejectedRecord(f"rec{n}", "NUL"),))
    table = store.get("r1")["tables"][0]
    assert (table["fetched"], table["loaded"], table["batches"]) == (250, 247, 3)
    assert sorted(r["record_id"] for r in table["rejected"]) == ["rec100", "rec100", "rec50"]


def test_a_run_finishes_exactly_once(store):
    store.create_run("r1", "etl", {})
    assert store.set_state("r1", "running")
    assert store.set_state("r1", "failed", error="boom")
    assert not store.set_state("r1", "succeeded")
    status = store.get("r1")
    assert (status["state"], status["error"]) == ("failed", "boom")
    assert status["finished_at"]


def test_cancel_flag(store):
    store.create_run("r1", "etl", {})
    assert not store.is_cancelled("r1")
    store.request_cancel("r1")
    assert store.is_cancelled("r1")


def test_steps_are_recorded_once_per_identity(store):
    store.create_run("r1", "etl", {})
    for state in ("retrying", "succeeded"):
        store.record_step("r1", "load_batch", table_id="tbl1", batch_no=3, hostname="load@h",
                          queue="load", state=state)
    steps = store.get("r1")["steps"]
    assert len(steps) == 1 and steps[0]["state"] == "succeeded" and steps[0]["hostname"] == "load@h"


def test_a_waiting_producer_wakes_when_the_run_finishes_not_at_its_next_look(store):
    from broker.producer import RunHandle

    store.create_run("r1", "etl", {})
    finisher = threading.Timer(0.3, store.set_state, args=("r1", "succeeded"))
    finisher.start()
    started = time.monotonic()
    # its next look would be in an hour: only the finish notice can wake it before the timeout
    final = RunHandle("r1", store).wait(timeout=20, poll=3600)
    finisher.join()
    assert final["state"] == "succeeded"
    assert time.monotonic() - started < 20


def test_a_run_that_finished_before_the_wait_began_is_seen_at_once(store):
    from broker.producer import RunHandle

    store.create_run("r1", "etl", {})
    store.set_state("r1", "failed", error="boom")
    assert RunHandle("r1", store).wait(timeout=5, poll=3600, raise_on_failure=False)["state"] == "failed"
