"""``conveyor metrics``: Prometheus metrics of runs, records, Airtable requests and queues."""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

from broker.metrics import DEFAULT_RUNS


def metrics(
    serve: Annotated[int | None, typer.Option("--serve", metavar="PORT",
                                              help="Serve /metrics on this port until interrupted")] = None,
    bind: Annotated[str, typer.Option(help="Address to listen on with --serve")] = "0.0.0.0",
    runs: Annotated[int, typer.Option(help="Newest runs of the run store to read")] = DEFAULT_RUNS,
) -> None:
    """Print the metrics once in Prometheus' text format, or serve them with --serve PORT."""
    from prometheus_client import generate_latest, start_http_server

    from broker.metrics import registry

    reg = registry(runs)
    if serve is None:
        sys.stdout.write(generate_latest(reg).decode())
        return
    # Read once first: an unreachable broker fails here with one line, not at the first scrape.
    generate_latest(reg)
    start_http_server(serve, addr=bind, registry=reg)
    print(f"serving Conveyor metrics on http://{bind}:{serve}/metrics", flush=True)
    while True:
        time.sleep(3600)


def register(cli: typer.Typer) -> None:
    cli.command()(metrics)
