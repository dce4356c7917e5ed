"""Terminal display of a run: a progress line per table, then a summary table."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.workflows.report import TableReport

err_console = Console(stderr=True)
out_console = Console()


class ProgressDisplay:
    """Draws records fetched and loaded per table while a run goes (on standard error)."""

    def __init__(self, console: Console | None = None) -> None:
        self.progress = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console or err_console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> ProgressDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def _task(self, report: TableReport) -> TaskID:
        key = report.table.table_id
        if key not in self._tasks:
            self._tasks[key] = self.progress.add_task(report.table.name, total=None, detail="")
        return self._tasks[key]

    def update(self, report: TableReport) -> None:
        detail = f"fetched {report.fetched:>7}  loaded {report.loaded:>7}"
        if report.rejected:
            detail += f"  rejected {len(report.rejected)}"
        if report.state not in ("running", "pending"):
            detail += f"  {report.state}"
        done = report.state in ("succeeded", "failed", "cancelled")
        self.progress.update(
            self._task(report),
            completed=report.loaded,
            total=report.loaded if done else None,
            detail=detail,
        )

    table_started = update
    table_progress = update
    table_finished = update


def summary_table(run: dict[str, Any]) -> Table:
    """A summary of a run's tables from its JSON report."""
    table = Table(title=f"run {run['run_id']}: {run['state']}")
    for column in ("table", "warehouse table", "state", "fetched", "loaded", "rejected", "error"):
        table.add_column(column)
    for t in run.get("tables", []):
        table.add_row(
            t["table"]["name"], t.get("sql_table") or "", t["state"], str(t["fetched"]),
            str(t["loaded"]), str(len(t.get("rejected", []))), t.get("error") or "",
        )
    return table
