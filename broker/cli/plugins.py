"""``conveyor plugins``: the warehouses and extractors this installation can name."""

from __future__ import annotations

import typer
from rich.table import Table

from app.plugins import WAREHOUSE_GROUP, plugins
from broker.cli.display import out_console


def list_plugins() -> None:
    """List registered warehouses (with their URL schemes) and extractors, and failed plug-ins."""
    table = Table(title="Conveyor plug-ins")
    for column in ("kind", "name", "class", "from", "URL schemes / error"):
        table.add_column(column)
    failed = 0
    for plugin in plugins():
        kind = "warehouse" if plugin.group == WAREHOUSE_GROUP else "extractor"
        if plugin.error:
            failed += 1
            detail = f"[red]failed: {plugin.error}[/red]"
        else:
            detail = ", ".join(f"{s}://" for s in plugin.schemes)
        table.add_row(kind, plugin.name, plugin.target, plugin.origin, detail)
    out_console.print(table)
    if failed:
        raise typer.Exit(1)


def register(cli: typer.Typer) -> None:
    """Add this module's command to the CLI."""
    cli.command("plugins")(list_plugins)
