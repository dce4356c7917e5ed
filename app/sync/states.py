"""The states of a run and of a table: one definition, used by code, tests, the CLI and Lua (by value)."""

from __future__ import annotations

from enum import StrEnum


class RunState(StrEnum):
    """Where a run is. The last five are final: a run reaches one of them exactly once."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    #: Every table landed, but some records could not be stored; they are reported by id.
    SUCCEEDED_WITH_REJECTIONS = "succeeded_with_rejections"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"

    @property
    def is_final(self) -> bool:
        return self in FINAL_RUN_STATES

    @property
    def landed(self) -> bool:
        """The run's data is all in the warehouse (rejected records aside)."""
        return self in (RunState.SUCCEEDED, RunState.SUCCEEDED_WITH_REJECTIONS)


FINAL_RUN_STATES = frozenset({
    RunState.SUCCEEDED, RunState.SUCCEEDED_WITH_REJECTIONS, RunState.FAILED,
    RunState.CANCELLED, RunState.SKIPPED,
})


class TableState(StrEnum):
    """Where one table of a run is."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (TableState.SUCCEEDED, TableState.FAILED, TableState.CANCELLED)


class WriteMode(StrEnum):
    """How a table's batches are written."""

    #: Upsert on ``__id`` (Arkalos' default, without ``drop_tables``).
    MERGE = "merge"
    #: Load a staging table and swap it in atomically (``drop_tables=True``).
    REPLACE = "replace"
    #: Merge only what changed since the table's last successful sync, deletes included
    #: (``incremental=True``); a table without sync state gets a full merge.
    INCREMENTAL = "incremental"
