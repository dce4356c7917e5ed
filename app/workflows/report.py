"""What a run did, per table: counts, rejected records, state and error."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from app.contracts import RejectedRecord, TableRef


@dataclass
class TableReport:
    """Progress and outcome of one table in one run."""

    table: TableRef
    sql_table: str | None = None
    state: str = "pending"  # pending, running, succeeded, failed, cancelled
    fetched: int = 0
    loaded: int = 0
    batches: int = 0
    rejected: list[RejectedRecord] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["table"] = self.table.to_json()
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
        return [t for t in self.tables if t.state == "failed"]

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "options": self.options,
            "state": self.state,
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
