"""The Workflow contract: the seed page's MyWorkflow, hooks in both spellings, steps, errors."""

import logging

import pytest

from app.workflows import Workflow, step


class MyWorkflow(Workflow):
    def __init__(self):
        self.calls = []

    def step1(self):
        self.calls.append("step1")

    def step2(self):
        self.calls.append("step2")

    def run(self):
        self.step1()
        self.step2()


def test_seed_workflow_runs_as_written():
    wf = MyWorkflow()
    wf.run()
    assert wf.calls == ["step1", "step2"]


def test_execute_calls_hooks_in_order_and_logs_duration(caplog):
    class Hooked(MyWorkflow):
        def before_run(self):
            self.calls.append("before")

        def after_run(self):
            self.calls.append("after")

    wf = Hooked()
    with caplog.at_level(logging.INFO):
        wf.execute()
    assert wf.calls == ["before", "step1", "step2", "after"]
    assert any("finished in" in r.getMessage() for r in caplog.records)


def test_camel_case_hooks_are_honoured():
    class Arkalos(MyWorkflow):
        def onBeforeRun(self):  # noqa: N802
            self.calls.append("onBeforeRun")

        def onAfterRun(self):  # noqa: N802
            self.calls.append("onAfterRun")

    wf = Arkalos()
    wf.execute()
    assert wf.calls == ["onBeforeRun", "step1", "step2", "onAfterRun"]


def test_execute_logs_and_reraises_errors(caplog):
    class Broken(Workflow):
        def run(self):
            raise RuntimeError("boom")

    with caplog.at_level(logging.INFO), pytest.raises(RuntimeError, match="boom"):
        Broken().execute()
    assert any("failed after" in r.getMessage() for r in caplog.records)


class Pipeline(Workflow):
    @step(queue="extract")
    def pull(self):
        return [1, 2, 3]

    @step(queue="load")
    def total(self, numbers):
        return sum(numbers)


def test_steps_are_listed_in_order_with_their_queues():
    assert [(s.name, s.queue) for s in Pipeline.steps()] == [("pull", "extract"), ("total", "load")]


def test_default_run_chains_steps_passing_results():
    assert Pipeline().run() == 6


def test_run_step_refuses_a_method_that_is_not_a_step():
    with pytest.raises(ValueError, match="not a @step"):
        Pipeline().run_step("run")
