"""Any registered Workflow with @step methods runs distributed: each step on its queue, results
passed along as JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from app.warehouses import SQLiteWarehouse
from broker.producer import RunFailedRemotelyError, enqueue
from tests.support.stack import running_stack

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parent / "workflows_fixture"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    sys.path.insert(0, str(FIXTURES))
    import conveyor_test_workflows  # noqa: F401  (registers the workflows in this process too)

    tmp = tmp_path_factory.mktemp("generic")
    url = f"sqlite:///{tmp / 'w.db'}"
    env = {"WAREHOUSE_URL": url, "PYTHONPATH": str(FIXTURES),
           "CONVEYOR_IMPORTS": "conveyor_test_workflows"}
    with running_stack({"Empty": 0}, SQLiteWarehouse(url), env, tmp) as stack:
        yield stack
    sys.path.remove(str(FIXTURES))


def test_steps_run_in_order_on_their_queues_passing_results(stack):
    from conveyor_test_workflows import Tally

    handle = enqueue(Tally())
    final = handle.wait(timeout=60)
    assert json.loads(final["result"]) == {"count": 100, "sum": 5050, "label": "100 numbers"}
    steps = {s["step"]: s for s in final["steps"]}
    assert steps["pull"]["hostname"] == stack.workers["extract"].hostname
    assert steps["total"]["hostname"] == steps["label"]["hostname"] == stack.workers["load"].hostname
    assert [s["queue"] for s in (steps["pull"], steps["total"], steps["label"])] == [
        "extract", "load", "load"]


def test_a_failing_step_fails_the_run_with_its_error(stack):
    from conveyor_test_workflows import Broken

    handle = enqueue(Broken())
    with pytest.raises(RunFailedRemotelyError):
        handle.wait(timeout=60)
    final = handle.status()
    assert final["state"] == "failed"
    assert "ValueError: cannot use 1" in final["error"]


def test_an_unregistered_workflow_is_refused_before_anything_is_queued(stack):
    from app.errors import ConfigurationError
    from app.workflows import Workflow

    class Unregistered(Workflow):
        pass

    with pytest.raises(ConfigurationError, match="not registered"):
        enqueue(Unregistered())


def test_hooks_fire_on_the_workers(stack):
    from conveyor_test_workflows import QuickHooked

    from broker.status import RunStatus

    client = RunStatus().r
    client.delete("conveyor-test:hooked:before", "conveyor-test:hooked:after")
    final = enqueue(QuickHooked()).wait(timeout=60)
    assert json.loads(final["result"]) == "quick"
    assert client.get("conveyor-test:hooked:before") == "ran"  # onBeforeRun, Arkalos' spelling
    assert client.get("conveyor-test:hooked:after") == "ran"


def test_a_running_workflow_cancelled_from_the_cli_ends_cancelled_within_seconds(stack):
    import subprocess
    import time

    from conveyor_test_workflows import Hooked

    from broker.producer import RunHandle
    from broker.status import RunStatus
    from tests.support.waiting import wait_for

    client = RunStatus().r
    client.delete("conveyor-test:hooked:before", "conveyor-test:hooked:second-step")
    handle = enqueue(Hooked())
    wait_for(lambda: handle.status()["state"] == "running", 30, "the slow step running")
    # The first step marks the run running, then fires the hook: under load the test may look
    # in between.
    wait_for(lambda: client.get("conveyor-test:hooked:before") == "ran", 10,
             "onBeforeRun fired on the worker")
    asked = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "broker.cli", "cancel", handle.id],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    wait_for(lambda: handle.status()["state"] == "cancelled", 10, "the run cancelled")
    print(f"cancelled {time.monotonic() - asked:.1f} s after the cancel was asked")
    time.sleep(22)  # the slow step ends; nothing after it may run
    assert client.get("conveyor-test:hooked:second-step") is None
    assert RunHandle(handle.id).status()["state"] == "cancelled"
    again = enqueue(Hooked(), overlap="skip")  # the guard was released
    assert again.status()["state"] != "skipped"
    again.cancel()
