"""docker compose, for real: build the images, bring the demo stack up, scale, kill, restart, stop.

Needs a Docker engine: ``.ci/compose`` (called by ``.ci/run``) installs Debian's docker.io and
starts dockerd when none answers; without one the module is skipped with the reason. No image
is pulled: when python:3.11-slim, redis:7 and postgres:16 are not on the machine and the image
variables are not exported, deploy/local-images.sh builds stand-ins from Debian's packages.

The tests share one stack and run in order, each building on the state the previous one left
(the first run's rows are what the down/up test expects to find again). Durations are printed,
never asserted: the figures in the README come from this output.
"""

from __future__ import annotations

import time
import uuid

import pytest

from tests.deploy.compose_stack import (
    ComposeStack,
    base_images,
    container_events,
    container_log,
    docker,
    engine_problem,
    stall_witness,
    step_hosts,
    summary,
    tasks_ended,
    tasks_in_flight,
)
from tests.deploy.files import compose, seconds
from tests.deploy.test_compose import compose_binary

pytestmark = [pytest.mark.compose, pytest.mark.slow, pytest.mark.timeout(1200)]

#: Records in the largest sandbox table (the base has 1.53 times as many): a run long enough
#: to scale, kill and stop in the middle of it on two shared cores. 10,000 gave about 45 s
#: until the pipeline got faster; then a run took 21 s and ended before a load worker scaled
#: up mid-run had started, so the scale test failed for want of a run to join.
ROWS = 20_000
RUN_TIMEOUT = 600
FIGURES: dict[str, float] = {}


def figure(name: str, value: float) -> None:
    FIGURES[name] = round(value, 1)
    print(f"compose figure: {name} = {value:.1f}")


@pytest.fixture(scope="module")
def stack(request, tmp_path_factory):
    problem = engine_problem()
    if problem:
        print(f"SKIPPED compose end-to-end test: {problem}")
        pytest.skip(problem)
    started = time.monotonic()
    images = base_images()
    figure("base images ready (s)", time.monotonic() - started)
    password = uuid.uuid4().hex
    env = {
        # the sandbox service serves this key and base; the workers use them as for Airtable
        "AIRTABLE_API_KEY": f"pat{uuid.uuid4().hex}", "AIRTABLE_BASE_ID": "appCOMPOSE0000001",
        "AIRTABLE_API_URL": "http://sandbox:8765", "AIRTABLE_REQUESTS_PER_SECOND": "50",
        "WAREHOUSE_URL": f"postgresql://conveyor:{password}@postgres:5432/conveyor",
        "WAREHOUSE_SCHEMA": "raw", "CELERY_BROKER_URL": "redis://redis:6379/0",
        "BATCH_MAX_RECORDS": "100",
        # a killed worker's batch comes back after 30 s rather than 120 s
        "CONVEYOR_VISIBILITY_TIMEOUT_SECONDS": "30",
        "POSTGRES_USER": "conveyor", "POSTGRES_PASSWORD": password, "POSTGRES_DB": "conveyor",
        "SANDBOX_ROWS": str(ROWS), "SANDBOX_RATE": "0",
    }
    directory = tmp_path_factory.mktemp("compose-up")
    project = ComposeStack(compose_binary(), directory, f"conveyor-e2e-{uuid.uuid4().hex[:6]}",
                           env, images)
    print(f"compose project {project.name} in {directory} on {images}")
    started = project.started = time.monotonic()  # time to first run: from the build on
    try:
        project.compose("build", timeout=1800)
        figure("image build (s)", time.monotonic() - started)
        project.up(extract=2, load=2)
        figure("stack up (s)", time.monotonic() - started)
        yield project
    finally:
        if request.session.testsfailed:
            logs = project.logs()
            saved = directory / "compose-logs.txt"
            saved.write_text(logs)
            print(logs[-20000:])
            print(f"every container's whole log: {saved}")
        project.compose("down", "--volumes", "--remove-orphans", "--timeout", "30", check=False)
        print(f"compose figures: {FIGURES}")


def assert_equals_the_sandbox(stack: ComposeStack) -> dict[str, int]:
    report = stack.landed()
    assert set(report) == {"Clients", "Projects", "Invoices"}
    for name, table in report.items():
        assert table["problems"] == [], (name, table["problems"][:5])
        assert table["landed"] == table["source"] > 0, (name, table)
    return {name: table["landed"] for name, table in report.items()}


def run_to_the_end(stack: ComposeStack, run_id: str) -> dict:
    final = stack.wait(run_id, RUN_TIMEOUT)
    assert final["state"] == "succeeded", summary(final)
    return final


def test_the_demo_run_lands_and_its_steps_spread_over_two_extract_and_two_load_containers(stack):
    started = time.monotonic()
    run_id = stack.enqueue()
    final = run_to_the_end(stack, run_id)
    figure("run with 2 extract + 2 load workers (s)", time.monotonic() - started)
    figure("time to first run, from nothing to succeeded (s)", time.monotonic() - stack.started)
    assert [t["loaded"] for t in final["tables"]] == [t["fetched"] for t in final["tables"]]
    counts = assert_equals_the_sandbox(stack)
    assert counts["Invoices"] == ROWS
    extract_nodes = stack.nodes("worker-extract", "extract")
    load_nodes = stack.nodes("worker-load", "load")
    assert len(extract_nodes) == 2 and len(load_nodes) == 2
    # attribution by hostname: each step names the container (Celery node) that ran it
    extract_hosts, load_hosts = step_hosts(final, "extract"), step_hosts(final, "load")
    assert set(extract_hosts) <= set(extract_nodes) and set(load_hosts) <= set(load_nodes)
    assert len(extract_hosts) >= 2, extract_hosts
    assert len(load_hosts) >= 2, load_hosts


def test_a_third_load_worker_started_during_a_run_takes_batches(stack):
    before = stack.nodes("worker-load", "load")
    started = time.monotonic()
    run_id = stack.enqueue()
    # scale up once loading is under way, while most of the run is still ahead
    stack.wait(run_id, RUN_TIMEOUT, until=lambda s: sum(t["loaded"] for t in s["tables"]) > 0)
    stack.up(2, 3, "--no-recreate")
    after = stack.nodes("worker-load", "load")
    (added,) = set(after) - set(before)
    final = run_to_the_end(stack, run_id)
    figure("run scaled from 2 to 3 load workers mid-run (s)", time.monotonic() - started)
    batches = step_hosts(final, "load", "load_batch")
    assert batches[added] > 0, f"{added} took no batch: {batches}"
    assert_equals_the_sandbox(stack)
    started = time.monotonic()
    run_to_the_end(stack, stack.enqueue())
    figure("run with 2 extract + 3 load workers (s)", time.monotonic() - started)


def test_killing_a_load_container_mid_run_still_lands_everything(stack):
    run_id = stack.enqueue()
    current = stack.wait(run_id, RUN_TIMEOUT,
                         until=lambda s: len(step_hosts(s, "load", "load_batch")) >= 2)
    assert current["state"] == "running", summary(current)
    nodes = stack.nodes("worker-load", "load")
    victim = max(step_hosts(current, "load", "load_batch").items(), key=lambda kv: kv[1])[0]
    docker("kill", nodes[victim])
    started = time.monotonic()
    run_to_the_end(stack, run_id)
    figure("run end after a load container was killed (s)", time.monotonic() - started)
    assert_equals_the_sandbox(stack)


def test_down_then_up_keeps_the_warehouse_and_the_redis_data(stack):
    counts = assert_equals_the_sandbox(stack)
    states = {run_id: stack.status(run_id)["state"] for run_id in stack.runs}
    assert set(states.values()) == {"succeeded"}, states
    stack.compose("down", "--timeout", "60")
    assert stack.compose("ps", "-q", "--all").stdout.split() == []
    stack.up(2, 2)
    # Redis kept its data (AOF on a volume): every earlier run and its state is still there
    assert {run_id: stack.status(run_id)["state"] for run_id in stack.runs} == states
    # PostgreSQL kept its volume: every row is still there, with no run since
    assert assert_equals_the_sandbox(stack) == counts


def test_stop_lets_running_tasks_finish_within_the_grace_period(stack):
    grace = seconds(compose()["services"]["worker-extract"]["stop_grace_period"])
    run_id = stack.enqueue()
    workers = {**stack.containers("worker-extract"), **stack.containers("worker-load")}
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:  # until an extract task is running (extraction runs in slices of seconds)
        in_flight = {cid: tasks_in_flight(container_log(cid)) for cid in workers}
        if any(in_flight.values()):
            break
        assert time.monotonic() < deadline and stack.status(run_id)["state"] == "running"
        time.sleep(0.5)
    started = time.monotonic()
    with container_events(stack.name) as events, \
            stall_witness(stack, workers, after=grace - 60) as stalled:
        stack.compose("stop", timeout=grace + 120)
    took = time.monotonic() - started
    figure("docker compose stop during a run (s)", took)
    print("docker events during stop:\n" + "\n".join(events))
    assert took < grace, "\n".join([*events, *stalled])
    for cid in workers:
        state = docker("inspect", "--format", "{{.State.ExitCode}} {{.State.OOMKilled}}", cid).split()
        log = container_log(cid)
        # exit 0 is Celery's warm shutdown completed; SIGKILL after the grace period gives 137
        assert state == ["0", "false"], (cid, state, log[-3000:])
        assert in_flight[cid] <= tasks_ended(log), (cid, in_flight[cid], log[-3000:])
        assert "WorkerLostError" not in log
    stack.up(2, 2)
    run_to_the_end(stack, run_id)
    assert_equals_the_sandbox(stack)
