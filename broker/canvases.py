"""Canvases: a chain of steps per table, tables as a group, a chord callback finishing the run."""

from __future__ import annotations

from typing import Any

from celery import chain, chord, signature

from app.contracts import TableRef
from app.workflows.base import Workflow


def table_context(spec: dict[str, Any], table: TableRef) -> dict[str, Any]:
    """What every step of one table needs to know: ids and registry names, never secrets."""
    return {
        "run_id": spec["run_id"],
        "table": table.to_json(),
        "extractor": spec["extractor"],
        "warehouse": spec.get("warehouse"),
        "options": spec.get("options", {}),
        "guard": spec.get("guard"),
    }


def etl_table_chain(spec: dict[str, Any], table: TableRef) -> chain:
    """fetch schema (extract) → detect schema → create table (load) → extract batches
    (extract, sending each batch to the load queue) → finish table (load)."""
    payload = {"ctx": table_context(spec, table), "state": "ok"}
    return chain(
        signature("conveyor.fetch_schema", args=(payload,)),
        signature("conveyor.detect_schema"),
        signature("conveyor.create_table"),
        signature("conveyor.extract_table"),
        signature("conveyor.finish_table"),
    )


def etl_run_canvas(spec: dict[str, Any], tables: list[TableRef]) -> Any:
    """Every table's chain in a group, with ``finish_run`` as the chord callback."""
    finish = signature("conveyor.finish_run", kwargs={
        "run_id": spec["run_id"], "warehouse": spec.get("warehouse"), "guard": spec.get("guard")})
    if not tables:
        return finish.clone(args=([],))
    return chord([etl_table_chain(spec, t) for t in tables], finish)


def steps_canvas(spec: dict[str, Any], workflow: type[Workflow]) -> chain:
    """A generic workflow's @step methods as a chain, each on its own queue, then finish_steps."""
    run_id, guard = spec["run_id"], spec.get("guard")
    # A chain prepends each result to the next signature's args; the first step gets None.
    steps = [
        signature("conveyor.run_step", args=((None,) if i == 0 else ()) + (run_id, workflow.name(),
                  info.name), queue=info.queue)
        for i, info in enumerate(workflow.steps())
    ]
    finish = signature("conveyor.finish_steps", kwargs={"run_id": run_id, "guard": guard},
                       queue="load")
    if not steps:
        return chain(finish.clone(args=(None,)))
    return chain(*steps, finish)
