"""Commands that talk to the workers through Redis: enqueue, status, runs, cancel."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from app.contracts import TableRef
from app.registry import extractor_class, warehouse_class
from app.workflows import ETLWorkflow
from app.workflows.report import TableReport
from broker.cli.display import ProgressDisplay, out_console, summary_table


def enqueue(
    source: Annotated[str, typer.Argument(help="Registered extractor, e.g. airtable")],
    drop_tables: Annotated[bool, typer.Option("--drop-tables", help="Replace tables atomically")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the run; exit 0 only if it succeeds")] = False,
    warehouse: Annotated[str | None, typer.Option(help="Registered warehouse (see conveyor plugins); "
                                                  "default: the workers' WAREHOUSE_URL")] = None,
    tables: Annotated[str | None, typer.Option(help="Comma-separated table names or ids")] = None,
    timeout: Annotated[float | None, typer.Option(help="Give up waiting after this many seconds")] = None,
) -> None:
    """Queue an ETL run on the workers; print its run id as the first line."""
    from broker.producer import enqueue as enqueue_run

    workflow = ETLWorkflow(extractor_class(source), warehouse_class(warehouse) if warehouse else None)
    names = [t.strip() for t in tables.split(",") if t.strip()] if tables else None
    handle = enqueue_run(workflow, drop_tables=drop_tables, tables=names)
    print(handle.id, flush=True)
    if not wait:
        return
    with ProgressDisplay() as display:
        final = handle.wait(timeout, on_progress=lambda s: draw_status(display, s), raise_on_failure=False)
    out_console.print(summary_table(final))
    if final["state"] != "succeeded":
        print(f"error: run {final['run_id']} {final['state']}: {final.get('error') or ''}",
              file=sys.stderr)
        raise typer.Exit(1)


def draw_status(display: ProgressDisplay, status: dict[str, Any]) -> None:
    for t in status.get("tables", []):
        report = TableReport(table=TableRef.from_json(t["table"]), sql_table=t.get("sql_table"),
                             state=t["state"], fetched=t["fetched"], loaded=t["loaded"],
                             batches=t["batches"], error=t.get("error"))
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
    out_console.print(summary_table(current))


def runs(limit: Annotated[int, typer.Option(help="How many runs")] = 20) -> None:
    """Recent runs, newest first."""
    from broker.status import RunStatus

    table = Table(title="recent runs")
    for column in ("run id", "workflow", "state", "created", "finished", "tables", "loaded", "note"):
        table.add_column(column)
    for run in RunStatus().recent(limit):
        loaded = sum(t["loaded"] for t in run.get("tables", []))
        table.add_row(run["run_id"], run.get("workflow", ""), run["state"], run.get("created_at", ""),
                      run.get("finished_at", ""), str(len(run.get("tables", []))), str(loaded),
                      run.get("error") or run.get("reason") or "")
    out_console.print(table)


def cancel(run_id: Annotated[str, typer.Argument(help="The run to stop")]) -> None:
    """Stop a run: no further batches load and the run ends cancelled."""
    from broker.producer import RunHandle

    RunHandle(run_id).cancel()
    out_console.print(f"cancel requested for run {run_id}")


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
    out_console.print(f"recovered {len(recovered)} quiet runs"
                      + (f": {', '.join(recovered)}" if recovered else ""))
    out_console.print(f"failed {len(failed)} stalled runs" + (f": {', '.join(failed)}" if failed else ""))


def register(cli: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    for command in (enqueue, status, runs, cancel, retry, watchdog):
        cli.command()(command)
