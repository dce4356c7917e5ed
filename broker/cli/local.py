"""Commands that need no broker: run a sync in-process, and the sandbox."""

from __future__ import annotations

import uuid
from itertools import islice
from typing import Annotated, Any

import typer

from app.errors import ConveyorError
from app.workflows import ETLWorkflow, RunFailedError
from broker.cli.display import ProgressDisplay, out_console, print_summary
from broker.cli.exits import exit_code
from broker.cli.options import (
    DropTablesOption,
    HardDeletesOption,
    IncrementalOption,
    SourceArgument,
    TablesOption,
    WarehouseOption,
    blamed_on,
    build_extractor,
    local_warehouse,
    table_list,
)
from broker.runs_read import previous_totals

SANDBOX_BASE_ID = "appSANDBOX0000001"


def run(
    source: SourceArgument,
    drop_tables: DropTablesOption = False,
    incremental: IncrementalOption = False,
    hard_deletes: HardDeletesOption = False,
    warehouse: WarehouseOption = None,
    tables: TablesOption = None,
) -> None:
    """Run the ETL in this process, with live progress per table and a summary.

    The run id is the first line: with Redis configured, `conveyor status RUN_ID` and `runs`
    show it. Exit code: 0 succeeded, 1 failed, 2 records rejected, 3 cancelled.
    """
    names = table_list(tables)
    target = local_warehouse(warehouse)
    display_holder: list[ProgressDisplay] = []

    def on_wait(reason: str, seconds: float) -> None:
        if display_holder:
            display_holder[0].waiting(reason, seconds)

    extractor = build_extractor(source, names, on_wait=on_wait)
    workflow = ETLWorkflow(extractor, target)
    with blamed_on("--warehouse" if warehouse else None, "WAREHOUSE_URL"), \
            blamed_on("--tables" if names else None, "AIRTABLE_TABLES"):
        final = run_in_process(workflow, drop_tables, display_holder,
                               incremental=incremental, hard_deletes=hard_deletes)
    code = exit_code(final["state"])
    if code:
        raise typer.Exit(code)


def run_in_process(
    workflow: ETLWorkflow, drop_tables: bool, holder: list[ProgressDisplay] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Run ``workflow`` here with live progress; print the summary; return the report's JSON."""
    run_id = uuid.uuid4().hex
    print(run_id, flush=True)
    try:
        estimates = previous_totals(workflow.warehouse.list_runs(50))
    except ConveyorError:  # no history yet, or an unreachable warehouse the run will report
        estimates = {}
    try:
        with ProgressDisplay(estimates) as display:
            if holder is not None:
                holder.append(display)
            workflow.call_hook("before_run")
            report = workflow.run(drop_tables=drop_tables, progress=display, run_id=run_id,
                                  **{k: v for k, v in options.items() if v})
            workflow.call_hook("after_run")
    except RunFailedError as exc:
        print_summary(exc.report.to_json())
        raise
    print_summary(report.to_json())
    return report.to_json()


def sandbox(
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8765,
    rows: Annotated[int, typer.Option(help="Records in the largest table")] = 600,
    token: Annotated[str, typer.Option(help="Bearer token the sandbox accepts")] = "sandbox-token",
    rate: Annotated[float, typer.Option(help="Requests per second per base (0: unlimited)")] = 5.0,
    penalty: Annotated[float, typer.Option(help="Seconds a base is refused after a 429")] = 30.0,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 in a container)")] = "127.0.0.1",
    use_settings: Annotated[bool, typer.Option(
        "--use-settings",
        help="Accept AIRTABLE_API_KEY and serve AIRTABLE_BASE_ID from the settings (.env), so the "
             "workers reach the sandbox with the variables they would use for Airtable")] = False,
) -> None:
    """Serve a local Airtable-compatible API with seeded sample data until interrupted."""
    from app.settings import get_settings
    from sandbox import SandboxConfig, build_base, serve_forever

    base_id = SANDBOX_BASE_ID
    if use_settings:
        settings = get_settings()
        if settings.airtable_api_key is None or not settings.airtable_base_id:
            raise typer.BadParameter("--use-settings needs AIRTABLE_API_KEY and AIRTABLE_BASE_ID set")
        token, base_id = settings.airtable_api_key.get_secret_value(), settings.airtable_base_id
    base = build_base(base_id, demo_tables(rows))
    config = SandboxConfig(token=token, requests_per_second=rate, penalty_seconds=penalty)
    shown_token = "<AIRTABLE_API_KEY>" if use_settings else token
    out_console.print(f"Airtable sandbox on http://{host}:{port}  base {base.id}  "
                      f"tables {', '.join(t.name for t in base.tables)}", soft_wrap=True)
    # Plain print: the export line must stay one copy-pasteable line at any terminal width.
    print(f"export AIRTABLE_API_URL=http://{host}:{port} AIRTABLE_BASE_ID={base.id} "
          f"AIRTABLE_API_KEY={shown_token}", flush=True)
    serve_forever([base], config, host, port)


def demo_tables(rows: int) -> dict[str, int]:
    """The demo base: three tables, the largest with ``rows`` records."""
    return {"Clients": max(rows // 3, 1), "Projects": max(rows // 5, 1), "Invoices": rows}


def show_landed(workflow: ETLWorkflow) -> None:
    """Print each landed table's row count and first rows' columns."""
    warehouse = workflow.warehouse
    for table in workflow.extractor.list_tables():
        name = warehouse.table_name_for(table)
        count = warehouse.row_count(table)
        out_console.print(f"[bold]{name}[/bold]: {count} rows")
        for record in islice(warehouse.read_records(table), 2):
            fields = record["fields"]
            shown = {k: fields[k] for k in list(fields)[:4]}
            out_console.print(f"  {record['id']}: {shown}")


def register(cli: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    cli.command()(run)
    cli.command()(sandbox)
