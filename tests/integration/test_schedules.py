"""Beat schedules against real Redis and real workers: runs, skipped overlaps, one enqueue per
tick with two beats, and a crashed run that blocks only until its guard expires."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from app.warehouses import SQLiteWarehouse
from broker.status import RunStatus, redis_client
from tests.conftest import TEST_REDIS_URL
from tests.support.stack import running_stack
from tests.support.workers import BeatProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIXTURES = Path(__file__).parent / "schedules_fixture"
GUARD_TTL = 6


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("schedules")
    url = f"sqlite:///{tmp / 'warehouse.db'}"
    env = {"WAREHOUSE_URL": url, "CONVEYOR_GUARD_TTL_SECONDS": str(GUARD_TTL),
           "PYTHONPATH": str(FIXTURES)}
    with running_stack({"Empty": 0, "Clients": 250, "Orders": 20000}, SQLiteWarehouse(url), env,
                       tmp) as stack:
        yield stack


def start_beat(stack, entries: str, name: str = "beat") -> BeatProcess:
    env = {**stack.env, "CONVEYOR_SCHEDULES": f"conveyor_test_schedules:{entries}"}
    return BeatProcess(env, stack.log_dir, name).start()


def runs_of(entry: str) -> list[dict]:
    store = RunStatus(redis_client(TEST_REDIS_URL))
    return [r for r in store.recent(500) if r.get("trigger") == f"schedule:{entry}"]


def created(run: dict) -> float:
    return datetime.fromisoformat(run["created_at"]).timestamp()


def wait_until_finished(entries, timeout=120):
    """Wait for every sent run to finish. Stopping beat can interrupt it between recording a
    run and sending it; such a run stays queued without ``sent_at`` (at most one per beat)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = [r for e in entries for r in runs_of(e)]
        going = [r for r in runs if r["state"] not in ("succeeded", "failed", "cancelled", "skipped")]
        unsent = [r for r in going if r["state"] == "queued" and not r.get("sent_at")]
        if len(going) == len(unsent) <= 1:
            return runs
        time.sleep(0.5)
    raise AssertionError(f"runs still going: {[(r['run_id'], r['state']) for r in runs]}")


def test_scheduled_runs_succeed_and_overlapping_ticks_are_skipped(stack):
    beat = start_beat(stack, "FAST")
    try:
        time.sleep(7)
    finally:
        beat.stop()
    wait_until_finished(["fast-clients"])
    fast = runs_of("fast-clients")
    assert sum(r["state"] == "succeeded" for r in fast) >= 2, fast

    stack.sandbox.config.latency_seconds = 0.03  # the Orders run now outlasts several ticks
    beat = start_beat(stack, "SLOW", "beat-slow")
    try:
        time.sleep(10)
    finally:
        beat.stop()
        stack.sandbox.config.latency_seconds = 0.0
    wait_until_finished(["slow-orders"])
    slow = runs_of("slow-orders")
    skipped = [r for r in slow if r["state"] == "skipped"]
    assert skipped, slow
    assert all("still going" in r["reason"] for r in skipped)
    assert any(r["state"] == "succeeded" for r in slow), slow
    listing = subprocess.run([sys.executable, "-m", "broker.cli", "runs", "--limit", "200"],
                             capture_output=True, text=True, timeout=60,
                             env={**os.environ, "COLUMNS": "250"})
    assert listing.returncode == 0, listing.stderr
    assert "skipped" in listing.stdout and "still going" in listing.stdout


def test_two_beat_processes_enqueue_each_tick_once(stack):
    first = start_beat(stack, "ONE_TICKER", "beat-1")
    ticking = time.monotonic()
    second = BeatProcess({**stack.env, "CONVEYOR_SCHEDULES": "conveyor_test_schedules:ONE_TICKER"},
                         stack.log_dir, "beat-2")
    try:
        second.start(wait_for="beat: Starting...")
        time.sleep(11)
    finally:
        first.stop()
        second.stop()
    # one tick per 2 s while beat-1 ran (starting beat-2 takes longer on a busy host), and
    # never one per beat: that would double the count and put two runs within a second
    ticks = (time.monotonic() - ticking) / 2
    runs = sorted(runs_of("dup-check"), key=created)
    assert 3 <= len(runs) <= ticks + 2, (ticks, [(r["run_id"], r["created_at"]) for r in runs])
    gaps = [created(b) - created(a) for a, b in zip(runs, runs[1:], strict=False)]
    assert min(gaps) > 1.0, gaps
    assert "enqueued run" in first.log() and "enqueued run" not in second.log()


def test_a_killed_run_blocks_later_ticks_only_until_its_guard_expires(stack):
    stack.sandbox.config.latency_seconds = 0.05
    beat = start_beat(stack, "CRASHY")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            running = [r for r in runs_of("crash-orders") if r["state"] == "running"
                       and r["tables"] and r["tables"][0]["fetched"] > 0]
            if running:
                break
            time.sleep(0.2)
        assert running, runs_of("crash-orders")
        # The run crashes: both workers die and its messages are lost (as with a Redis that
        # keeps nothing on disk), so nothing of it is left to run; the workers come back.
        stack.workers["extract"].kill()
        stack.workers["load"].kill()
        killed_at = time.time()
        client = redis_client(TEST_REDIS_URL)
        client.delete("extract", "load", "unacked", "unacked_index")
        stack.start_worker("extract")
        stack.start_worker("load")
        time.sleep(max(GUARD_TTL + 6 - (time.time() - killed_at), 0))
        after = [r for r in runs_of("crash-orders") if created(r) > killed_at]
    finally:
        beat.stop()
        stack.sandbox.config.latency_seconds = 0.0
    skipped_then_free = [r["state"] for r in sorted(after, key=created)]
    assert "skipped" in skipped_then_free, skipped_then_free
    first_free = next(created(r) for r in sorted(after, key=created) if r["state"] != "skipped")
    assert first_free - killed_at <= GUARD_TTL + 4, (first_free - killed_at, skipped_then_free)
