"""Where a run records its progress and how it paces requests: local by default, shared (Redis)
when a plug-in provides it.

``app`` never imports the distribution layer; it finds a provider through the
``conveyor.services`` entry point group (the project's own points at ``broker.services``), so
an in-process run records its status where distributed runs do and shares their rate limiter
whenever one is configured.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Protocol

from app.contracts import BatchResult, TableRef
from app.extractors.ratelimit import RateLimiter
from app.sync.plan import RunPlan
from app.sync.states import RunState, TableState

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "conveyor.services"


class RunRecorder(Protocol):
    """Told what an in-process run does, so ``conveyor status`` and ``runs`` can show it."""

    def run_started(self, plan: RunPlan, workflow: str) -> None: ...

    def tables_planned(self, run_id: str, tables: list[TableRef]) -> None: ...

    def table_state(self, run_id: str, table_id: str, state: TableState, *,
                    error: str | None = None, sql_table: str | None = None) -> None: ...

    def batch_fetched(self, run_id: str, table_id: str, batch_no: int, count: int) -> None: ...

    def batch_loaded(self, run_id: str, table_id: str, result: BatchResult) -> None: ...

    def counts_reset(self, run_id: str, table_id: str) -> None: ...

    def run_finished(self, run_id: str, state: RunState, error: str | None) -> None: ...


class NoRecorder:
    """Records nothing (no shared run store configured)."""

    def run_started(self, plan: RunPlan, workflow: str) -> None:
        pass

    def tables_planned(self, run_id: str, tables: list[TableRef]) -> None:
        pass

    def table_state(self, run_id: str, table_id: str, state: TableState, *,
                    error: str | None = None, sql_table: str | None = None) -> None:
        pass

    def batch_fetched(self, run_id: str, table_id: str, batch_no: int, count: int) -> None:
        pass

    def batch_loaded(self, run_id: str, table_id: str, result: BatchResult) -> None:
        pass

    def counts_reset(self, run_id: str, table_id: str) -> None:
        pass

    def run_finished(self, run_id: str, state: RunState, error: str | None) -> None:
        pass


@dataclass(frozen=True)
class RunServices:
    """A run's recorder and rate limiter (None: the extractor's own, per process)."""

    recorder: RunRecorder = field(default_factory=NoRecorder)
    rate_limiter: RateLimiter | None = None
    #: Where the recorder writes, for people ("Redis at 127.0.0.1:6379/0"), or None.
    where: str | None = None


def local_services() -> RunServices:
    return RunServices()


def default_services() -> RunServices:
    """The services a provider plug-in offers for this process, or local ones."""
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            provider: Callable[[], RunServices | None] = point.load()
            services = provider()
        except Exception as exc:  # a broken provider must not stop an in-process run
            log.warning("run services %s unavailable (%s); recording locally only", point.name, exc)
            continue
        if services is not None:
            return services
    return local_services()
