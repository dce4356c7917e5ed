"""``conveyor check``: try every part of the deployment once before the first run."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from broker.checks import ERROR, WARNING, run_checks
from broker.cli.options import JsonOption


def check(
    as_json: JsonOption = False,
    strict: Annotated[bool, typer.Option("--strict", help="Fail on warnings too")] = False,
) -> None:
    """Check settings, the Airtable token, the warehouse, Redis, the workers and the schedules.

    One line per check (ok, warning or error with what to fix); exit 1 on any error.
    """
    results = run_checks()
    if as_json:
        print(json.dumps([c.to_json() for c in results], indent=2))
    else:
        for c in results:
            print(f"{c.level:<8}{c.name}: {c.message}")
    failing = {ERROR, WARNING} if strict else {ERROR}
    if any(c.level in failing for c in results):
        raise typer.Exit(1)


def register(cli: typer.Typer) -> None:
    cli.command()(check)
