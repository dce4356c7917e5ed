"""The recovery sweep: quiet runs get their resume steps and unloaded batches sent again,
stalled runs are failed with their guards freed, in-process and healthy runs are left alone."""

from datetime import UTC, datetime, timedelta

import pytest

from broker import recovery
from broker.barrier import Barrier
from broker.guard import OverlapGuard
from broker.status import RunStatus, redis_client

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ETL_SPEC = {"extractor": {"kind": "airtable"}, "run_id": "r"}


def ago(seconds, now=NOW):
    return (now - timedelta(seconds=seconds)).isoformat()


def test_verdicts():
    verdict = recovery.verdict
    assert verdict({"run_id": "r", "state": "running", "last_seen_at": ago(5)}, NOW, 60) is None
    reason = verdict({"run_id": "r", "state": "running", "last_seen_at": ago(90)}, NOW, 60)
    assert "no progress for 90 s" in reason and "conveyor retry r" in reason
    assert verdict({"run_id": "r", "state": "queued", "created_at": ago(300)}, NOW, 60)
    assert verdict({"run_id": "r", "state": "queued", "created_at": ago(300), "sent_at": ago(300)},
                   NOW, 60) is None
    assert verdict({"run_id": "r", "state": "succeeded", "last_seen_at": ago(9999)}, NOW, 60) is None


@pytest.fixture
def sent(monkeypatch):
    messages = []
    monkeypatch.setattr(recovery, "_send", lambda task, *args: messages.append((task, args)))
    return messages


def running_run(store, run_id, spec, quiet_for):
    store.create_run(run_id, "etl", {}, spec=spec)
    store.set_state(run_id, "running")
    store.r.hset(f"conveyor:run:{run_id}", "last_seen_at", ago(quiet_for, datetime.now(UTC)))


def test_a_stalled_run_is_failed_once_and_its_guards_freed(redis_url, sent):
    client = redis_client(redis_url)
    store, guard = RunStatus(client), OverlapGuard(client, 60)
    running_run(store, "stuck", ETL_SPEC, 3600)
    store.set_guards("stuck", ["write:x:t1"])
    assert guard.acquire(["write:x:t1"], "stuck") is None
    running_run(store, "alive", ETL_SPEC, 0)
    assert recovery.sweep(stalled_after=60, recover_after=30)["failed"] == ["stuck"]
    assert store.get("stuck")["state"] == "failed"
    assert "no progress" in store.get("stuck")["error"]
    assert store.get("alive")["state"] == "running"
    assert guard.holder("write:x:t1") is None
    assert recovery.sweep(stalled_after=60, recover_after=30)["failed"] == []


def test_a_quiet_run_gets_its_resume_step_and_unloaded_batches_again(redis_url, sent):
    from app.contracts import TableRef

    client = redis_client(redis_url)
    store, barrier = RunStatus(client), Barrier(client)
    running_run(store, "quiet", ETL_SPEC, 120)
    store.set_tables("quiet", [TableRef("airtable", "tblA", "A"), TableRef("airtable", "tblB", "B")])
    store.update_table("quiet", "tblA", state="running")
    store.update_table("quiet", "tblB", state="succeeded")
    barrier.keep_copy("quiet", "tblA", 3, [{"sync": 1}, {"batch": 3}])
    barrier.keep_copy("quiet", "tblA", 4, [{"sync": 1}, {"batch": 4}])
    barrier.mark_loaded("quiet", "tblA", 4)
    barrier.set_resume("quiet", "tblA", "conveyor.finish_table", [{"sync": 1}])

    done = recovery.sweep(stalled_after=3600, recover_after=60)

    assert done == {"recovered": ["quiet"], "failed": []}
    assert ("conveyor.load_batch", ({"sync": 1}, {"batch": 3})) in sent
    assert ("conveyor.finish_table", ({"sync": 1},)) in sent
    assert len(sent) == 2  # batch 4 was loaded, table B succeeded
    assert store.get("quiet")["tables"][0]["recovered_batches"] == 1
    sent.clear()
    assert recovery.sweep(stalled_after=3600, recover_after=60)["recovered"] == []  # it moved now
    assert sent == []


def test_in_process_runs_and_moving_runs_are_left_alone(redis_url, sent):
    store = RunStatus(redis_client(redis_url))
    running_run(store, "local", {**ETL_SPEC, "driver": "in-process"}, 600)
    running_run(store, "busy", ETL_SPEC, 1)
    assert recovery.sweep(stalled_after=3600, recover_after=60) == {"recovered": [], "failed": []}
    assert sent == []


def test_a_run_whose_tables_all_ended_is_finished_again(redis_url, sent):
    from app.contracts import TableRef

    store = RunStatus(redis_client(redis_url))
    running_run(store, "ended", ETL_SPEC, 600)
    store.set_tables("ended", [TableRef("airtable", "tblA", "A")])
    store.update_table("ended", "tblA", state="succeeded")
    recovery.sweep(stalled_after=3600, recover_after=60)
    assert sent == [("conveyor.finish_run", ("ended",))]


def test_a_table_whose_last_batch_landed_but_whose_finish_was_never_sent_is_finished(
        redis_url, sent):
    """A load worker killed between completing the table and sending its finish step: the
    batch's redelivery is skipped (the table is closed), so the sweep must send the finish."""
    from app.contracts import TableRef

    client = redis_client(redis_url)
    store, barrier = RunStatus(client), Barrier(client)
    running_run(store, "killed", ETL_SPEC, 120)
    store.set_tables("killed", [TableRef("airtable", "tblA", "A")])
    store.update_table("killed", "tblA", state="running")
    finish = {"task": "conveyor.finish_table", "args": [{"sync": 1}]}
    barrier.set_resume("killed", "tblA", None, [])  # its listing ended
    assert not barrier.mark_extracted("killed", "tblA", 0, 2, 0, finish)
    barrier.mark_loaded("killed", "tblA", 0, finish)
    assert barrier.mark_loaded("killed", "tblA", 1, finish)  # ... and the worker dies here

    assert recovery.sweep(stalled_after=3600, recover_after=60)["recovered"] == ["killed"]
    assert sent == [("conveyor.finish_table", ({"sync": 1},))]


def test_a_quiet_run_with_nothing_to_send_again_is_not_kept_alive(redis_url, sent):
    from app.contracts import TableRef

    store = RunStatus(redis_client(redis_url))
    running_run(store, "stuck", ETL_SPEC, 120)
    store.set_tables("stuck", [TableRef("airtable", "tblA", "A")])
    store.update_table("stuck", "tblA", state="running")
    seen = store.get("stuck")["last_seen_at"]
    assert recovery.sweep(stalled_after=3600, recover_after=60) == {"recovered": [], "failed": []}
    assert sent == [] and store.get("stuck")["last_seen_at"] == seen
    assert recovery.sweep(stalled_after=100, recover_after=60)["failed"] == ["stuck"]
