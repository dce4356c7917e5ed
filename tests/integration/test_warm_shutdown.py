"""A warm shutdown (SIGTERM, as ``docker compose stop`` sends) ends the worker even when it
comes while the pool is still writing a large task message to a pool process."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from broker.celery_app import celery_app
from tests.support.workers import WorkerProcess

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parent / "tasks_fixture"
#: Far more than a pipe takes at once (64 KiB), as a load batch of wide records is.
PAYLOAD = "x" * 1_000_000
#: Only a stranded pool process keeps the worker up this long: the task itself is instant.
EXIT_BOUND_SECONDS = 60


def pool_processes(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def wait_for(worker: WorkerProcess, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while text not in worker.log():
        assert time.monotonic() < deadline, f"no {text!r} in the worker log:\n{worker.log()[-3000:]}"
        time.sleep(0.05)


def test_sigterm_while_a_large_task_is_half_written_to_the_pool_still_exits(redis_url, tmp_path):
    env = {"CELERY_BROKER_URL": redis_url, "PYTHONPATH": str(FIXTURES),
           "CONVEYOR_IMPORTS": "conveyor_test_tasks"}
    worker = WorkerProcess("load", env, tmp_path).start()
    assert worker.proc is not None
    try:
        (child,) = pool_processes(worker.proc.pid)
        # A stopped pool process reads nothing: the message stays written only as far as the
        # pipe takes it, as when SIGTERM lands between two writes of a busy worker's loop.
        os.kill(child, signal.SIGSTOP)
        try:
            celery_app.send_task("conveyor_test.measure", args=[PAYLOAD], queue="load")
            wait_for(worker, "conveyor_test.measure[")  # received: the pool starts writing
            time.sleep(0.5)
            os.kill(worker.proc.pid, signal.SIGTERM)
            wait_for(worker, "Warm shutdown")
            time.sleep(1)
        finally:
            os.kill(child, signal.SIGCONT)
        try:
            worker.proc.wait(EXIT_BOUND_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the worker did not exit after SIGTERM:\n{worker.log()[-3000:]}")
        assert worker.proc.returncode == 0, worker.log()[-3000:]
    finally:
        worker.kill()
