"""What a run did, per table: counts, rejected records, state and error."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from app.contracts import BatchResult, RejectedRecord, TableRef
from app.sync.states import TableState


@dataclass
class TableReport:
    """Progress and outcome of one table in one run."""

    table: TableRef
    sql_table: str | None = None
    state: str = TableState.PENDING
    fetched: int = 0
    loaded: int = 0
    batches: int = 0
    rejected: list[RejectedRecord] = field(default_factory=list)
    error: str | None = None
    #: How the table was written (``merge``, ``replace``, ``incremental``).
    mode: str | None = None
    #: What its listing read: ``full`` (every record) or a change source (``window``…).
    change_source: str | None = None
    #: Why the change source's state was lost and the table listed whole (e.g. the webhook
    #: expired); None when nothing was lost.
    resync: str | None = None
    #: Of ``loaded``: records new to the table; the others were updated.
    created: int = 0
    #: Rows found deleted at the source (marked ``__deleted_at``, or deleted).
    deleted: int = 0
    #: Requests made for the table: its listing and its change feed reads (the run's one
    #: metadata read aside).
    requests: int = 0
    #: The sync state committed with the table's data.
    cursor: dict[str, Any] | None = None

    @property
    def updated(self) -> int:
        return max(self.loaded - self.created, 0)

    def add(self, result: BatchResult) -> None:
        """Count one loaded batch."""
        self.batches += 1
        self.loaded += result.loaded
        self.created += result.created
        self.rejected.extend(result.rejected)

    def reset_counts(self) -> None:
        """Forget the counts: the listing starts again from the beginning."""
        self.fetched = self.loaded = self.batches = self.created = 0
        self.rejected = []

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["table"] = self.table.to_json()
        data["state"] = str(self.state)
        data["updated"] = self.updated
        return data


@dataclass
class RunReport:
    """The outcome of a whole run."""

    run_id: str
    workflow: str
    options: dict[str, Any]
    state: str = "running"
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None
    tables: list[TableReport] = field(default_factory=list)

    @property
    def failed_tables(self) -> list[TableReport]:
        return [t for t in self.tables if t.state == TableState.FAILED]

    @property
    def rejected_count(self) -> int:
        return sum(len(t.rejected) for t in self.tables)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "options": self.options,
            "state": str(self.state),
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "error": self.error,
            "tables": [t.to_json() for t in self.tables],
        }


class ProgressListener(Protocol):
    """Told about progress as a run goes; the CLI draws it, workers publish it."""

    def table_started(self, report: TableReport) -> None: ...

    def table_progress(self, report: TableReport) -> None: ...

    def table_finished(self, report: TableReport) -> None: ...


class SilentProgress:
    """A listener that ignores everything."""

    def table_started(self, report: TableReport) -> None:
        pass

    def table_progress(self, report: TableReport) -> None:
        pass

    def table_finished(self, report: TableReport) -> None:
        pass
