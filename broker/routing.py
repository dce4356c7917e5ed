"""Which queue each task runs on: fetching on extract workers, everything else on load workers."""

from broker.queues import EXTRACT, LOAD

EXTRACT_TASKS = (
    "conveyor.plan_run",
    "conveyor.start_table",
    "conveyor.extract_table",
)
LOAD_TASKS = (
    "conveyor.create_table",
    "conveyor.load_batch",
    "conveyor.finish_table",
    "conveyor.finish_run",
    "conveyor.scheduled_run",
    "conveyor.watchdog",
)

TASK_ROUTES = {
    **{name: {"queue": EXTRACT, "routing_key": EXTRACT} for name in EXTRACT_TASKS},
    **{name: {"queue": LOAD, "routing_key": LOAD} for name in LOAD_TASKS},
}


def queue_of(task_name: str) -> str:
    """The queue ``task_name`` is routed to."""
    return str(TASK_ROUTES[task_name]["queue"])
