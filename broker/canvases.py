"""Canvases: a generic workflow's @step methods as a chain of tasks on their queues.

An ETL run needs no canvas: each table step sends the next one, and the barrier
(``broker.barrier``) counts batches and tables where they are recorded.
"""

from __future__ import annotations

from typing import Any

from celery import chain, signature


def steps_canvas(run_id: str, workflow: Any) -> chain:
    """``workflow``'s @step methods as a chain, each on its own queue, then finish_steps."""
    name = workflow.name()
    # A chain prepends each result to the next signature's args; the first step gets None.
    steps = [
        signature("conveyor.run_step", args=((None,) if i == 0 else ()) + (run_id, name, info.name),
                  queue=info.queue)
        for i, info in enumerate(workflow.steps())
    ]
    finish = signature("conveyor.finish_steps", kwargs={"run_id": run_id, "workflow": name},
                       queue="load")
    if not steps:
        return chain(finish.clone(args=(None,)))
    return chain(*steps, finish)
