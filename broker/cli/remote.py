"""Commands that talk to the workers through Redis: enqueue, status, runs, rejected, cancel."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from app.contracts import RejectedRecord, TableRef
from app.registry import extractor_class
from app.workflows import ETLWorkflow
from app.workflows.report import TableReport
from broker.cli.display import ProgressDisplay, aligned, out_console, print_plain, print_summary
from broker.cli.exits import TIMED_OUT, exit_code
from broker.cli.options import (
    DropTablesOption,
    HardDeletesOption,
    IncrementalOption,
    JsonOption,
    SourceArgument,
    TablesOption,
    WarehouseOption,
    remote_warehouse,
    table_list,
)
from broker.runs_read import find_run, previous_totals, rejections


def enqueue(
    source: SourceArgument,
    drop_tables: DropTablesOption = False,
    incremental: IncrementalOption = False,
    hard_deletes: HardDeletesOption = False,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the run; the exit code tells how it "
                                       "ended (0 succeeded, 1 failed, 2 records rejected, "
                                       "3 cancelled, 4 skipped, 5 timed out)")] = False,
    warehouse: WarehouseOption = None,
    tables: TablesOption = None,
    timeout: Annotated[float | None, typer.Option(help="Give up waiting after this many seconds")] = None,
) -> None:
    """Queue an ETL run on the workers; print its run id as the first line."""
    from broker.producer import RunNotFinishedError
    from broker.producer import enqueue as enqueue_run
    from broker.status import RunStatus

    workflow = ETLWorkflow(extractor_class(source), remote_warehouse(warehouse))
    extra: dict[str, Any] = {k: v for k, v in (("incremental", incremental),
                                               ("hard_deletes", hard_deletes)) if v}
    handle = enqueue_run(workflow, drop_tables=drop_tables, tables=table_list(tables), **extra)
    print(handle.id, flush=True)
    if not wait:
        return
    estimates = previous_totals(r for r in RunStatus().recent(50) if r["run_id"] != handle.id)
    try:
        with ProgressDisplay(estimates) as display:
            final = handle.wait(timeout, on_progress=lambda s: draw_status(display, s),
                                raise_on_failure=False)
    except RunNotFinishedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(TIMED_OUT) from None
    print_summary(final)
    code = exit_code(final["state"])
    if code and code != 2:
        print(f"error: run {final['run_id']} {final['state']}: "
              f"{final.get('error') or final.get('reason') or ''}", file=sys.stderr)
    raise typer.Exit(code)


def draw_status(display: ProgressDisplay, status: dict[str, Any]) -> None:
    """Feed a run's distributed status (and any rate-limit penalty) to the display."""
    from broker.ratestats import longest_penalty
    from broker.status import redis_client

    display.penalty_for(longest_penalty(redis_client()) if status["state"] == "running" else None)
    for t in status.get("tables", []):
        report = TableReport(table=TableRef.from_json(t["table"]), sql_table=t.get("sql_table"),
                             state=t["state"], fetched=t["fetched"], loaded=t["loaded"],
                             batches=t["batches"], error=t.get("error"),
                             rejected=[RejectedRecord(r["record_id"], r["reason"])
                                       for r in t.get("rejected") or []])
        display.update(report)


def status(
    run_id: Annotated[str, typer.Argument(help="The run id printed by enqueue")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole status as JSON")] = False,
) -> None:
    """Show a run's state, per-table counts and (with --json) every step and its worker."""
    from broker.producer import RunHandle

    current = RunHandle(run_id).status()
    if as_json:
        print(json.dumps(current, indent=2, default=str))
        return
    print_summary(current)


def runs(
    limit: Annotated[int, typer.Option(help="How many runs")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Recent runs, newest first (run ids are never cut: paste them into conveyor status)."""
    from broker.status import RunStatus

    recent = RunStatus().recent(limit)
    if as_json:
        print(json.dumps(recent, indent=2, default=str))
        return
    rows = [(run["run_id"], run.get("workflow", ""), run["state"], run.get("created_at", ""),
             run.get("finished_at", ""), str(len(run.get("tables", []))),
             str(sum(t["loaded"] for t in run.get("tables", []))),
             run.get("error") or run.get("reason") or "")
            for run in recent]
    print_plain(aligned(("run id", "workflow", "state", "created", "finished", "tables", "loaded",
                         "note"), rows))


def rejected(
    run_id: Annotated[str, typer.Argument(help="A run id (distributed or in-process)")],
    warehouse: WarehouseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every record RUN_ID could not store, with the reason: one line per record."""
    from broker.cli.options import local_warehouse
    from broker.status import RunStatus

    run = RunStatus().get(run_id, steps=False)
    if run is None:  # an in-process run is only in its warehouse's run history
        store = local_warehouse(warehouse)
        if store is None:
            from app.warehouses import warehouse_for_url

            store = warehouse_for_url()
        run = find_run(run_id, store.list_runs(1000))
    if run is None:
        print(f"error: unknown run {run_id}: not in the broker's run status nor the warehouse's "
              "run history (--warehouse)", file=sys.stderr)
        raise typer.Exit(1)
    found = list(rejections(run))
    if as_json:
        print(json.dumps([r.__dict__ for r in found], indent=2))
        return
    for r in found:
        print(f"{r.table}\t{r.record_id}\t{r.reason}")
    print(f"{len(found)} rejected records in run {run_id}", file=sys.stderr)


def cancel(run_id: Annotated[str, typer.Argument(help="The run to stop")]) -> None:
    """Stop a run: no further batches load and the run ends cancelled."""
    from broker.producer import RunHandle

    RunHandle(run_id).cancel()
    out_console.print(f"cancel requested for run {run_id}", soft_wrap=True)


def retry(run_id: Annotated[str, typer.Argument(help="A failed or cancelled run")]) -> None:
    """Re-run only the tables of RUN_ID that did not finish; prints the new run id."""
    from broker.producer import retry_run

    print(retry_run(run_id).id)


def watchdog(
    stalled_seconds: Annotated[float | None, typer.Option(
        help="Fail running runs quiet for this long (default CONVEYOR_STALLED_RUN_SECONDS)")] = None,
) -> None:
    """Recover quiet runs and fail stalled ones now (workers and beat also do this)."""
    from broker.recovery import sweep

    done = sweep(stalled_after=stalled_seconds)
    recovered, failed = done["recovered"], done["failed"]
    print_plain(f"recovered {len(recovered)} quiet runs" + (f": {', '.join(recovered)}" if recovered else ""))
    print_plain(f"failed {len(failed)} stalled runs" + (f": {', '.join(failed)}" if failed else ""))


def register(cli: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    for command in (enqueue, status, runs, rejected, cancel, retry, watchdog):
        cli.command()(command)
