"""The watchdog fails stalled and never-sent runs, frees their guard, and leaves the rest alone."""

from datetime import UTC, datetime, timedelta

from broker.guard import OverlapGuard
from broker.status import RunStatus, redis_client
from broker.watchdog import sweep, verdict

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def ago(seconds):
    return (NOW - timedelta(seconds=seconds)).isoformat()


def test_verdicts():
    assert verdict({"run_id": "r", "state": "running", "last_seen_at": ago(5)}, NOW, 60) is None
    reason = verdict({"run_id": "r", "state": "running", "last_seen_at": ago(90)}, NOW, 60)
    assert "no progress for 90 s" in reason and "conveyor retry r" in reason
    assert verdict({"run_id": "r", "state": "queued", "created_at": ago(300)}, NOW, 60)
    assert verdict({"run_id": "r", "state": "queued", "created_at": ago(300), "sent_at": ago(300)},
                   NOW, 60) is None
    assert verdict({"run_id": "r", "state": "succeeded", "last_seen_at": ago(9999)}, NOW, 60) is None


def test_sweep_fails_a_stalled_run_once_and_frees_its_guard(redis_url):
    client = redis_client(redis_url)
    store, guard = RunStatus(client), OverlapGuard(client, 60)
    store.create_run("stuck", "etl", {}, spec={"guard": "etl:x"})
    store.set_state("stuck", "running")
    assert guard.acquire("etl:x", "stuck") is None
    store.create_run("alive", "etl", {})
    store.set_state("alive", "running")
    client.hset("conveyor:run:stuck", "last_seen_at", ago(3600))
    client.hset("conveyor:run:alive", "last_seen_at", datetime.now(UTC).isoformat())
    assert sweep(store, guard, stalled_after=60) == ["stuck"]
    assert store.get("stuck")["state"] == "failed"
    assert "no progress" in store.get("stuck")["error"]
    assert store.get("alive")["state"] == "running"
    assert guard.holder("etl:x") is None
    assert sweep(store, guard, stalled_after=60) == []
