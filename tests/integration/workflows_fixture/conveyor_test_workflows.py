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
