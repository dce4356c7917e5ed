"""Commands that need no broker: run a sync in-process, the sandbox, and the demo."""

from __future__ import annotations

import uuid
from itertools import islice
from typing import Annotated, Any

import typer

from app.registry import extractor_class
from app.warehouses import warehouse_for_url
from app.workflows import ETLWorkflow, RunFailedError
from broker.cli.display import ProgressDisplay, out_console, summary_table

SANDBOX_BASE_ID = "appSANDBOX0000001"


def run(
    source: Annotated[str, typer.Argument(help="Registered extractor, e.g. airtable")],
    drop_tables: Annotated[bool, typer.Option("--drop-tables", help="Replace tables atomically")] = False,
    warehouse: Annotated[str | None, typer.Option(help="Warehouse URL (default WAREHOUSE_URL)")] = None,
) -> None:
    """Run the ETL in this process, with a progress line per table and a summary. The run id
    is the first line: with Redis configured, `conveyor status RUN_ID` and `runs` show it."""
    workflow = ETLWorkflow(extractor_class(source), warehouse_for_url(warehouse))
    run_in_process(workflow, drop_tables)


def run_in_process(workflow: ETLWorkflow, drop_tables: bool) -> dict[str, Any]:
    run_id = uuid.uuid4().hex
    print(run_id, flush=True)
    try:
        with ProgressDisplay() as display:
            workflow.call_hook("before_run")
            report = workflow.run(drop_tables=drop_tables, progress=display, run_id=run_id)
            workflow.call_hook("after_run")
    except RunFailedError as exc:
        out_console.print(summary_table(exc.report.to_json()))
        raise
    out_console.print(summary_table(report.to_json()))
    return report.to_json()


def sandbox(
    port: Annotated[int, typer.Option(help="Port to listen on (127.0.0.1)")] = 8765,
    rows: Annotated[int, typer.Option(help="Records in the largest table")] = 600,
    token: Annotated[str, typer.Option(help="Bearer token the sandbox accepts")] = "sandbox-token",
    rate: Annotated[float, typer.Option(help="Requests per second per base (0: unlimited)")] = 5.0,
    penalty: Annotated[float, typer.Option(help="Seconds a base is refused after a 429")] = 30.0,
) -> None:
    """Serve a local Airtable-compatible API with seeded sample data until interrupted."""
    from sandbox import SandboxConfig, build_base, serve_forever

    base = build_base(SANDBOX_BASE_ID, demo_tables(rows))
    config = SandboxConfig(token=token, requests_per_second=rate, penalty_seconds=penalty)
    out_console.print(
        f"Airtable sandbox on http://127.0.0.1:{port}  base {base.id}  "
        f"tables {', '.join(t.name for t in base.tables)}\n"
        f"export AIRTABLE_API_URL=http://127.0.0.1:{port} AIRTABLE_BASE_ID={base.id} "
        f"AIRTABLE_API_KEY={token}"
    )
    serve_forever([base], config, "127.0.0.1", port)


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
