"""The shared run store and rate limiter, offered to in-process runs (entry point
``conveyor.services``): with a configured Redis, ``conveyor run`` shows up in ``conveyor
status``/``runs`` and paces its requests with the workers."""

from __future__ import annotations

import json
import logging
from typing import Any

import redis

from app.contracts import BatchResult, TableRef
from app.redact import mask_url
from app.settings import get_settings
from app.sync.plan import RunPlan
from app.sync.services import RunServices
from app.sync.states import RunState, TableState
from broker.ratelimit import shared_rate_limiter
from broker.status import RunStatus, now_iso, redis_client

log = logging.getLogger(__name__)


class RedisRecorder:
    """Records an in-process run where distributed runs are recorded."""

    def __init__(self, store: RunStatus) -> None:
        self.store = store

    def run_started(self, plan: RunPlan, workflow: str) -> None:
        spec = {**plan.to_json(), "driver": "in-process"}
        self.store.create_run(plan.run_id, workflow, plan.options.to_user(), trigger=plan.trigger,
                              spec=spec)
        self.store.update_run(plan.run_id, sent_at=now_iso(), driver="in-process")
        self.store.set_state(plan.run_id, RunState.RUNNING)

    def tables_planned(self, run_id: str, tables: list[TableRef]) -> None:
        self.store.set_tables(run_id, tables)

    def table_state(self, run_id: str, table_id: str, state: TableState, *,
                    error: str | None = None, sql_table: str | None = None) -> None:
        self.store.update_table(run_id, table_id, state=state.value, error=error, sql_table=sql_table)

    def batch_fetched(self, run_id: str, table_id: str, batch_no: int, count: int) -> None:
        self.store.record_fetched(run_id, table_id, batch_no, count)

    def batch_loaded(self, run_id: str, table_id: str, result: BatchResult) -> None:
        self.store.record_loaded(run_id, table_id, result.batch_no, result.loaded, result.rejected,
                                 created=result.created)

    def table_changes(self, run_id: str, table_id: str, changes: dict[str, Any]) -> None:
        """The table's mode, change source, requests, deletes and cursor, as workers record them."""
        requests = int(changes.pop("requests", 0) or 0)
        cursor = changes.pop("cursor", None)
        self.store.count_requests(run_id, table_id, requests)
        self.store.update_table(run_id, table_id, cursor=json.dumps(cursor) if cursor else None,
                                **{k: str(v) for k, v in changes.items() if v is not None})

    def counts_reset(self, run_id: str, table_id: str) -> None:
        self.store.reset_table_counts(run_id, table_id)

    def run_finished(self, run_id: str, state: RunState, error: str | None) -> None:
        self.store.set_state(run_id, state, error=error)


def redis_services() -> RunServices | None:
    """Redis-backed services when a broker is configured and answers; None otherwise."""
    settings = get_settings()
    if "celery_broker_url" not in settings.model_fields_set:
        return None
    url = settings.celery_broker_url
    client = redis_client(url)
    try:
        client.ping()
    except redis.RedisError as exc:
        log.warning("Redis at %s does not answer (%s): this run is recorded in the warehouse only",
                    mask_url(url), exc)
        return None
    return RunServices(recorder=RedisRecorder(RunStatus(client)),
                       rate_limiter=shared_rate_limiter(client),
                       where=mask_url(url))



