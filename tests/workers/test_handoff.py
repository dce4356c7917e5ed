"""The tasks' retry and failure decisions, without Redis: what each step retries, and what a
step that gives up says about its table or run."""

import pytest
from celery.exceptions import SoftTimeLimitExceeded

import workers  # noqa: F401  (registers the tasks)
from app.contracts import TableRef
from app.errors import ConfigurationError, TransientError
from app.sync.plan import ComponentConfig, RunOptions, RunPlan, TableSync
from app.sync.states import TableState
from broker import policies
from broker.celery_app import celery_app
from workers import handoff

TABLE_STEPS = ("start_table", "extract_table", "create_table", "load_batch", "finish_table")
RUN_STEPS = ("plan_run", "finish_run")
SYNC = TableSync(RunPlan("r1", "etl", ComponentConfig("airtable"), ComponentConfig(None),
                         RunOptions(), 100, 10_000), TableRef("airtable", "tbl1", "Orders"))


@pytest.fixture
def ended(monkeypatch):
    """Table ends and step records, captured instead of written to Redis."""
    seen: dict[str, list] = {"tables": [], "steps": []}

    def end_table(sync, state, error=None):
        seen["tables"].append((sync.table.name, state, error))

    def record(task, run_id, table_id, state, **details):
        seen["steps"].append((task.name, state))

    monkeypatch.setattr(handoff, "end_table", end_table)
    monkeypatch.setattr(handoff.SyncTask, "record", record)
    return seen


@pytest.mark.parametrize("name", TABLE_STEPS + RUN_STEPS)
def test_every_step_retries_transient_errors_and_soft_time_limits_a_bounded_number_of_times(name):
    task = celery_app.tasks[f"conveyor.{name}"]
    assert issubclass(TransientError, task.autoretry_for)
    assert issubclass(SoftTimeLimitExceeded, task.autoretry_for)
    assert not issubclass(ConfigurationError, task.autoretry_for)  # a user's mistake fails at once
    assert 0 < task.max_retries == policies.MAX_RETRIES
    assert task.retry_backoff_max < policies.VISIBILITY_TIMEOUT


def test_a_step_past_its_time_limit_on_every_attempt_fails_its_table_saying_so(ended):
    task = celery_app.tasks["conveyor.load_batch"]
    task.on_failure(SoftTimeLimitExceeded(), "t1", [SYNC.to_json(), {}], {}, None)
    ((name, state, error),) = ended["tables"]
    assert (name, state) == ("Orders", TableState.FAILED)
    assert error == (f"load_batch: ran past its {policies.SOFT_TIME_LIMIT} s time limit "
                     f"{policies.MAX_RETRIES + 1} times")
    assert ended["steps"] == [("conveyor.load_batch", "failed")]


def test_an_unexpected_exception_is_an_internal_error_naming_the_step(ended):
    task = celery_app.tasks["conveyor.create_table"]
    task.on_failure(KeyError("boom"), "t1", [SYNC.to_json(), None, None], {}, None)
    ((_, state, error),) = ended["tables"]
    assert state is TableState.FAILED
    assert error == "create_table: internal error in conveyor.create_table: KeyError: 'boom'"


def test_a_transient_error_that_outlasts_the_retries_says_it_gave_up(ended):
    task = celery_app.tasks["conveyor.extract_table"]
    task.on_failure(TransientError("airtable answered 503"), "t1", [SYNC.to_json()], {}, None)
    ((_, _, error),) = ended["tables"]
    assert error == (f"extract_table: airtable answered 503 "
                     f"(gave up after {policies.MAX_RETRIES} retries)")


def test_a_soft_time_limit_that_interrupts_sending_a_step_stays_a_soft_time_limit(monkeypatch):
    """kombu wraps an exception raised while it encodes a message in EncodeError (seen under
    load: the limit fell inside the encoding of a batch and failed its table as an internal
    error); send() gives the step back the soft time limit it can hand over on."""
    from kombu.exceptions import EncodeError
    from kombu.serialization import dumps, register, registry

    def interrupted(obj):
        raise SoftTimeLimitExceeded()

    register("interrupted", interrupted, str, "application/x-interrupted", "utf-8")
    try:
        with pytest.raises(EncodeError) as wrapped:  # what kombu does with it
            dumps({"a": 1}, serializer="interrupted")
    finally:
        registry.unregister("interrupted")

    def send_task(*args, **kwargs):
        raise wrapped.value

    monkeypatch.setattr(celery_app, "send_task", send_task)
    with pytest.raises(SoftTimeLimitExceeded):
        handoff.send("conveyor.load_batch", {"a": 1})
