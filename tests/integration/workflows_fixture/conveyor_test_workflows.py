"""A user's workflow with @step methods, registered so that workers can run it."""

from app.registry import register_workflow
from app.workflows import Workflow, step


@register_workflow
class Tally(Workflow):
    workflow_name = "tally"

    @step(queue="extract")
    def pull(self):
        return list(range(1, 101))

    @step(queue="load")
    def total(self, numbers):
        return {"count": len(numbers), "sum": sum(numbers)}

    @step(queue="load")
    def label(self, totals):
        return {**totals, "label": f"{totals['count']} numbers"}


@register_workflow
class Broken(Workflow):
    workflow_name = "broken"

    @step(queue="extract")
    def pull(self):
        return 1

    @step(queue="load")
    def explode(self, value):
        raise ValueError(f"cannot use {value}")


@register_workflow
class Hooked(Workflow):
    """Arkalos-style hooks (camelCase) and a slow step: hooks must fire on the workers, and a
    cancel must end the run while its step still runs."""

    workflow_name = "hooked"

    def onBeforeRun(self):  # noqa: N802  (Arkalos' spelling)
        from broker.status import RunStatus

        RunStatus().r.set("conveyor-test:hooked:before", "ran")

    def after_run(self):
        from broker.status import RunStatus

        RunStatus().r.set("conveyor-test:hooked:after", "ran")

    @step(queue="extract")
    def slow(self):
        import time

        time.sleep(20)
        return "done"

    @step(queue="load")
    def never_after_cancel(self, value):
        from broker.status import RunStatus

        RunStatus().r.set("conveyor-test:hooked:second-step", "ran")
        return value


@register_workflow
class QuickHooked(Hooked):
    workflow_name = "quick_hooked"

    @step(queue="extract")
    def slow(self):
        return "quick"
