"""``conveyor demo``: the sandbox, one extract and one load worker, and a run through them."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from app.redact import mask_url
from app.registry import extractor_class
from app.settings import get_settings, reload_settings
from app.warehouses import warehouse_for_url
from app.workflows import ETLWorkflow
from broker.cli.display import ProgressDisplay, out_console, print_summary
from broker.cli.exits import exit_code
from broker.cli.local import SANDBOX_BASE_ID, demo_tables, run_in_process, show_landed
from broker.cli.remote import draw_status
from broker.local_stack import private_redis, redis_answers, worker_pool


def demo(
    rows: Annotated[int, typer.Option(help="Records in the largest sample table")] = 600,
    in_process: Annotated[bool, typer.Option("--in-process", help="Skip the workers")] = False,
    warehouse: Annotated[str | None, typer.Option(
        help="Warehouse URL, e.g. duckdb:///data/demo.duckdb (default WAREHOUSE_URL)")] = None,
) -> None:
    """Start the sandbox with sample data, sync it through an extract and a load worker into
    the warehouse (--warehouse, else WAREHOUSE_URL, default SQLite), and show what landed."""
    from sandbox import SandboxConfig, build_base, run_sandbox

    if warehouse is not None:
        warehouse_for_url(warehouse)  # a bad URL fails here, in one line, before anything starts
        _use({"WAREHOUSE_URL": warehouse})

    config = SandboxConfig(token="demo-token")
    with run_sandbox([build_base(SANDBOX_BASE_ID, demo_tables(rows))], config) as server:
        _use({"AIRTABLE_API_URL": server.url, "AIRTABLE_BASE_ID": SANDBOX_BASE_ID,
              "AIRTABLE_API_KEY": config.token})
        os.environ.pop("AIRTABLE_TABLES", None)
        reload_settings()
        workflow = ETLWorkflow(extractor_class("airtable"), warehouse_for_url())
        target = workflow.warehouse.display_url
        if in_process:
            out_console.print(f"Syncing the sandbox into {target} in this process")
            run_in_process(workflow, drop_tables=True)
        else:
            with _broker() as broker_url:
                if broker_url is None:
                    out_console.print("No Redis broker answers and redis-server is not installed: "
                                      f"running in-process instead, into {target}")
                    run_in_process(workflow, drop_tables=True)
                else:
                    _run_distributed(workflow, broker_url, target)
        show_landed(workflow)


@contextlib.contextmanager
def _broker() -> Iterator[str | None]:
    configured = get_settings().celery_broker_url
    if redis_answers(configured):
        yield configured
    elif shutil.which("redis-server"):
        out_console.print(f"No Redis answers at {mask_url(configured)}: starting a private one")
        with private_redis() as url:
            yield url
    else:
        yield None


def _run_distributed(workflow: ETLWorkflow, broker_url: str, target: str) -> None:
    from broker.celery_app import reconfigure
    from broker.producer import enqueue

    _use({"CELERY_BROKER_URL": broker_url, "WAREHOUSE_URL": get_settings().warehouse_url})
    reconfigure()
    with tempfile.TemporaryDirectory(prefix="conveyor-demo-") as logs:
        worker_env = {k: os.environ[k] for k in (
            "CELERY_BROKER_URL", "WAREHOUSE_URL", "AIRTABLE_API_URL", "AIRTABLE_BASE_ID",
            "AIRTABLE_API_KEY")}
        out_console.print(f"Starting an extract and a load worker on {mask_url(broker_url)}")
        with worker_pool(("extract", "load"), worker_env, Path(logs)):
            handle = enqueue(workflow, drop_tables=True)
            out_console.print(f"Run {handle.id} queued; syncing the sandbox into {target}")
            with ProgressDisplay() as display:
                final = handle.wait(600, on_progress=lambda s: draw_status(display, s),
                                    raise_on_failure=False)
    print_summary(final)
    if exit_code(final["state"]):
        raise typer.Exit(exit_code(final["state"]))


def _use(values: dict[str, str]) -> None:
    # The demo's own sandbox and broker must win over whatever the shell has set.
    os.environ.update(values)
    reload_settings()


def register(cli: typer.Typer) -> None:
    cli.command()(demo)
