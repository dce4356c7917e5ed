"""Terminal display of a run: live progress per table, then a summary with the first rejects.

On a terminal the progress redraws in place; otherwise (piped to a file, CI) it writes one
plain line per table every few seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text

from app.workflows.report import TableReport
from broker.runs_read import rejected_count, rejections

err_console = Console(stderr=True)
out_console = Console()

#: Seconds between two plain progress lines per table when the output is not a terminal.
PLAIN_EVERY_SECONDS = 5.0
#: Rejected records listed in a summary; ``conveyor rejected RUN_ID`` lists them all.
FIRST_REJECTED = 5
FINAL_TABLE_STATES = ("succeeded", "failed", "cancelled")


@dataclass
class TableProgress:
    """What the display knows about one table: counts, when it started, its estimated total."""

    name: str
    estimate: int | None = None
    state: str = "pending"
    fetched: int = 0
    loaded: int = 0
    rejected: int = 0
    started: float | None = None
    finished: float | None = None

    def rate(self, now: float) -> float | None:
        """Records done per second since the table started."""
        if self.started is None:
            return None
        elapsed = (self.finished or now) - self.started
        return self.done / elapsed if elapsed > 0.5 and self.done else None

    @property
    def done(self) -> int:
        return self.loaded + self.rejected

    def eta(self, now: float) -> float | None:
        rate = self.rate(now)
        if self.estimate is None or rate is None or self.state in FINAL_TABLE_STATES:
            return None
        return max(self.estimate - self.done, 0) / rate


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def describe(table: TableProgress, now: float, penalty: float | None) -> str:
    """One table's progress as words: done, estimated total, rate, ETA or the penalty wait."""
    parts = [f"loaded {table.loaded:,}"]
    if table.estimate is not None and table.state not in FINAL_TABLE_STATES:
        parts[0] += f" of ~{table.estimate:,} (estimate from the last sync)"
    if table.rejected:
        parts.append(f"rejected {table.rejected:,}")
    rate = table.rate(now)
    if rate is not None:
        parts.append(f"{rate:,.0f} rec/s")
    eta = table.eta(now)
    if eta is not None:
        parts.append(f"ETA {_clock(eta)}")
    if penalty and table.state == "running":
        parts.append(f"waiting out Airtable's rate-limit penalty ({penalty:.0f} s)")
    if table.state not in ("running", "pending"):
        parts.append(table.state)
    return ", ".join(parts)


def _progress_console() -> Console:
    """Standard error when it is a terminal and standard output is too (redraws there);
    otherwise whichever of the two is not a terminal, for plain lines: ``conveyor enqueue
    --wait > run.log`` gets its progress lines in the log, a cron job in its mail."""
    if err_console.is_terminal and not out_console.is_terminal:
        return out_console
    return err_console


class _DetailColumn(ProgressColumn):
    """Computed at each redraw, so rates, ETAs and the penalty countdown move between updates."""

    def __init__(self, display: ProgressDisplay) -> None:
        super().__init__()
        self.display = display

    def render(self, task: Task) -> Text:
        table = self.display.tables[task.fields["key"]]
        return Text(describe(table, self.display.clock(), self.display.penalty_left()))


class ProgressDisplay:
    """Live progress of a run's tables; a ProgressListener.

    Redraws on standard error when standard output and error are both terminals; otherwise one
    plain line per table every ``every`` seconds (see ``_progress_console``).

    Args:
        estimates: expected records per table id, from the previous sync of each table.
        console: where to draw (standard error by default).
        plain: write plain lines instead of redrawing (default: when not on a terminal).
        ticker: in plain mode, a thread writes a line per running table every ``every`` seconds.
    """

    def __init__(
        self, estimates: dict[str, int] | None = None, console: Console | None = None,
        plain: bool | None = None, clock: Callable[[], float] = time.monotonic,
        every: float = PLAIN_EVERY_SECONDS, ticker: bool = True,
    ) -> None:
        self.console = console or _progress_console()
        self.plain = (not self.console.is_terminal) if plain is None else plain
        self.estimates = estimates or {}
        self.clock = clock
        self.every = every
        self._use_ticker = ticker
        self.tables: dict[str, TableProgress] = {}
        self._penalty_until: float | None = None
        self._printed: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(bar_width=20), _DetailColumn(self),
            TimeElapsedColumn(), console=self.console, transient=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> ProgressDisplay:
        if self.plain and self._use_ticker:
            self._ticker = threading.Thread(target=self._tick, daemon=True)
            self._ticker.start()
        else:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(2)
        if not self.plain:
            self.progress.stop()

    # -- what the run tells us ---------------------------------------------------------------
    def update(self, report: TableReport) -> None:
        key = report.table.table_id
        now = self.clock()
        with self._lock:
            table = self.tables.get(key)
            if table is None:
                table = self.tables[key] = TableProgress(report.table.name, self.estimates.get(key))
            was_final = table.state in FINAL_TABLE_STATES
            table.state, table.fetched, table.loaded = report.state, report.fetched, report.loaded
            table.rejected = len(report.rejected)
            if table.started is None and report.state != "pending":
                table.started = now
            finished = table.state in FINAL_TABLE_STATES and not was_final
            if finished:
                table.finished = now
        if self.plain:
            if finished or key not in self._printed:
                self._line(key)
        else:
            self._draw(key, table)

    table_started = update
    table_progress = update
    table_finished = update

    def waiting(self, reason: str, seconds: float) -> None:
        """The source asked us to wait (``429 penalty``): show it until ``seconds`` pass."""
        if reason == "429 penalty":
            self.penalty_for(seconds)

    def penalty_for(self, seconds: float | None) -> None:
        """The rate-limit penalty has ``seconds`` left (None or 0: no penalty)."""
        self._penalty_until = self.clock() + seconds if seconds and seconds > 0 else None

    def penalty_left(self) -> float | None:
        if self._penalty_until is None:
            return None
        left = self._penalty_until - self.clock()
        return left if left > 0 else None

    # -- drawing -----------------------------------------------------------------------------
    def _draw(self, key: str, table: TableProgress) -> None:
        if key not in self._tasks:
            self._tasks[key] = self.progress.add_task(table.name, total=None, key=key)
        done = table.state in FINAL_TABLE_STATES
        total = table.done if done else table.estimate
        self.progress.update(self._tasks[key], completed=table.done,
                             total=max(total, table.done) if total is not None else None)

    def _line(self, key: str) -> None:
        table = self.tables[key]
        self._printed[key] = self.clock()
        # soft_wrap: a line is never cut or folded, whatever the width of the file's "terminal".
        self.console.print(f"{table.name}: {describe(table, self.clock(), self.penalty_left())}",
                           soft_wrap=True, highlight=False, markup=False)

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            self._tick_once()

    def _tick_once(self) -> None:
        """A plain line for each running table whose last line is older than ``every``."""
        now = self.clock()
        with self._lock:
            due = [k for k, t in self.tables.items()
                   if t.state == "running" and now - self._printed.get(k, 0) >= self.every]
        for key in due:
            self._line(key)


def aligned(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Rows in columns padded to their widest cell, nothing cut or folded (like ``kubectl get``).

    A line wider than the terminal is wrapped by the terminal itself, so an id stays whole
    for copy and paste.
    """
    table = [list(headers)] + [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                     for row in table)


def print_plain(text: str, console: Console | None = None) -> None:
    """Print without rich's wrapping, markup or highlighting."""
    (console or out_console).print(text, soft_wrap=True, markup=False, highlight=False)


def summary_text(run: dict[str, Any]) -> str:
    """A run's summary from its JSON report: one row per table, then the first rejected records."""
    rows = [(t["table"]["name"], t.get("sql_table") or "-", t["state"], str(t["fetched"]),
             str(t["loaded"]), str(len(t.get("rejected") or [])), t.get("error") or "")
            for t in run.get("tables", [])]
    headers = ("table", "warehouse table", "state", "fetched", "loaded", "rejected", "error")
    lines = [f"run {run['run_id']}: {run['state']}"]
    if rows:
        lines.append(aligned(headers, rows))
    if run.get("error") and not rows:
        lines.append(f"error: {run['error']}")
    changes = [(t["table"]["name"], t.get("mode") or "-", t.get("change_source") or "-",
                str(t.get("created", 0)), str(t.get("updated", 0)), str(t.get("deleted", 0)),
                str(t.get("requests", 0)), cursor_text(t.get("cursor")))
               for t in run.get("tables", []) if t.get("mode")]
    if changes:
        lines.append(aligned(("table", "mode", "change source", "created", "updated", "deleted",
                              "requests", "cursor"), changes))
    lines += [f"{t['table']['name']}: re-synced in full ({t['resync']})"
              for t in run.get("tables", []) if t.get("resync")]
    total = rejected_count(run)
    if total:
        first = [r for _, r in zip(range(FIRST_REJECTED), rejections(run), strict=False)]
        lines.append(f"{total} record{'s' if total != 1 else ''} rejected"
                     f"{f' (first {len(first)})' if total > len(first) else ''}:")
        lines += [f"  {r.table} {r.record_id}: {r.reason}" for r in first]
        lines.append(f"all of them: conveyor rejected {run['run_id']}")
    return "\n".join(lines)


def cursor_text(cursor: dict[str, Any] | None) -> str:
    """A table's sync state in a few words: its source and where its window ended."""
    if not cursor:
        return "-"
    until, position = cursor.get("until"), cursor.get("cursor")
    return (f"{cursor.get('source', '?')}" + (f" until {until}" if until else "")
            + (f" at {position}" if position else ""))


def print_summary(run: dict[str, Any]) -> None:
    print_plain(summary_text(run))
