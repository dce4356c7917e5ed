"""Run status in Redis: readable by any process, surviving worker restarts.

Every write is idempotent (counts are stored per batch number and summed on read), so a
redelivered task never double-counts progress.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import redis

from app.contracts import RejectedRecord, TableRef
from app.settings import get_settings
from app.sync import rules
from app.sync.states import FINAL_RUN_STATES
from broker import policies
from broker.config import redis_py_url

PREFIX = "conveyor"
TERMINAL = frozenset(state.value for state in FINAL_RUN_STATES)

# Sets the run state unless it is already final: a run finishes exactly once.
_SET_STATE = """
local current = redis.call('HGET', KEYS[1], 'state')
for _, final in ipairs(cjson.decode(ARGV[1])) do
  if current == final then return 0 end
end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
return 1
"""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def redis_client(url: str | None = None) -> redis.Redis:
    """A Redis client for ``url`` (default: the broker), with timeouts and health checks.

    ``rediss://`` URLs verify the server's certificate (redis-py's default); their ``ssl_*``
    query parameters are read the same way as by Celery and kombu.
    """
    return redis.Redis.from_url(
        redis_py_url(url or get_settings().celery_broker_url),
        socket_timeout=30,
        socket_connect_timeout=10,
        health_check_interval=25,
        decode_responses=True,
    )


class RunStatus:
    """Reads and writes the status of runs, their tables and their steps."""

    def __init__(self, client: redis.Redis | None = None) -> None:
        self.r = client or redis_client()
        self._set_state = self.r.register_script(_SET_STATE)

    # keys
    def _run(self, run_id: str) -> str:
        return f"{PREFIX}:run:{run_id}"

    def _table(self, run_id: str, table_id: str, part: str = "") -> str:
        return f"{PREFIX}:run:{run_id}:table:{table_id}{':' + part if part else ''}"

    def _finished(self, run_id: str) -> str:
        return f"{PREFIX}:run:{run_id}:finished"

    def _alive(self, run_id: str) -> None:
        self.r.hset(self._run(run_id), "last_seen_at", now_iso())

    def _touch(self, *keys: str) -> None:
        pipe = self.r.pipeline()
        for key in keys:
            pipe.expire(key, policies.STATUS_TTL_SECONDS)
        pipe.execute()

    # runs
    def create_run(
        self, run_id: str, workflow: str, options: dict[str, Any], *, trigger: str = "manual",
        spec: dict[str, Any] | None = None,
    ) -> None:
        key = self._run(run_id)
        self.r.hset(key, mapping={
            "run_id": run_id, "workflow": workflow, "state": "queued", "trigger": trigger,
            "spec": json.dumps(spec or {}),
            "options": json.dumps(options), "created_at": now_iso(), "tables": "[]",
        })
        self.r.zadd(f"{PREFIX}:runs", {run_id: time.time()})
        self._touch(key)

    def set_state(
        self, run_id: str, state: str, *, error: str | None = None, reason: str | None = None
    ) -> bool:
        """Move a run to ``state``; False (and no change) if it had already finished."""
        fields: dict[str, str] = {"state": state}
        if reason is not None:
            fields["reason"] = reason
        if state == "running":
            fields["started_at"] = now_iso()
        if state in TERMINAL:
            fields["finished_at"] = now_iso()
        if error is not None:
            fields["error"] = error
        argv = [json.dumps(sorted(TERMINAL))] + [item for pair in fields.items() for item in pair]
        changed = bool(self._set_state(keys=[self._run(run_id)], args=argv))
        if changed and state in TERMINAL:
            self.r.publish(self._finished(run_id), state)
        return changed

    @contextmanager
    def finish_notices(self, run_id: str) -> Iterator[Callable[[float], None]]:
        """A way to sleep until the run finishes: the function given returns when the run's
        finish is announced, or after the seconds it is given.

        Subscribe before looking at the state: a run that finishes in between still wakes the
        sleeper. A notice can be lost (the connection drops), so sleep in bounded steps and
        look at the state after each one.
        """
        pubsub = self.r.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        pubsub.subscribe(self._finished(run_id))

        def sleep(seconds: float) -> None:
            deadline = time.monotonic() + seconds
            while (left := deadline - time.monotonic()) > 0:
                if pubsub.get_message(timeout=left) is not None:
                    return

        try:
            yield sleep
        finally:
            pubsub.close()

    def update_run(self, run_id: str, **fields: str) -> None:
        """Set informational fields of a run (not its state)."""
        self.r.hset(self._run(run_id), mapping=dict(fields.items()))

    def set_guards(self, run_id: str, names: list[str]) -> None:
        """The overlap guards the run holds (released when it finishes)."""
        self.r.hset(self._run(run_id), "guards", json.dumps(names))

    def guards(self, run_id: str) -> list[str]:
        value = self.r.hget(self._run(run_id), "guards")
        return list(json.loads(value)) if value else []

    def claim_plan(self, run_id: str) -> bool:
        """True for the one caller that gets to launch the run's canvas."""
        return bool(self.r.hsetnx(self._run(run_id), "planned_at", now_iso()))

    def set_tables(self, run_id: str, tables: list[TableRef]) -> None:
        self.r.hset(self._run(run_id), mapping={
            "tables": json.dumps([t.to_json() for t in tables]), "table_count": len(tables)})
        for table in tables:
            key = self._table(run_id, table.table_id)
            self.r.hsetnx(key, "state", "pending")
            self._touch(key)

    def table_count(self, run_id: str) -> int:
        return int(self.r.hget(self._run(run_id), "table_count") or 0)

    def request_cancel(self, run_id: str) -> None:
        self.r.hset(self._run(run_id), "cancel_requested", now_iso())

    def is_cancelled(self, run_id: str) -> bool:
        return bool(self.r.hexists(self._run(run_id), "cancel_requested"))

    # tables
    def update_table(self, run_id: str, table_id: str, **fields: str | None) -> None:
        key = self._table(run_id, table_id)
        self.r.hset(key, mapping={k: v for k, v in fields.items() if v is not None})
        self._touch(key)

    def run_field(self, run_id: str, name: str) -> str | None:
        """One field of a run's status (``planned_at``, ``sent_at``…)."""
        value = self.r.hget(self._run(run_id), name)
        return str(value) if value is not None else None

    def count_requests(self, run_id: str, table_id: str, count: int, *, recovery: bool = False) -> None:
        """Count listing requests made for a table (and those a recovery cost)."""
        if count:
            key = self._table(run_id, table_id)
            self.r.hincrby(key, "requests", count)
            if recovery:
                self.r.hincrby(key, "recovery_requests", count)

    def run_state(self, run_id: str) -> str | None:
        """The run's state alone (None if unknown), without reading its tables and steps."""
        value = self.r.hget(self._run(run_id), "state")
        return str(value) if value is not None else None

    def table_field(self, run_id: str, table_id: str, name: str) -> str | None:
        """One field of a table's status (``state``, ``error``, ``sql_table``…)."""
        value = self.r.hget(self._table(run_id, table_id), name)
        return str(value) if value is not None else None

    def table_state(self, run_id: str, table_id: str) -> str | None:
        return self.table_field(run_id, table_id, "state")

    def reset_table_counts(self, run_id: str, table_id: str, partition: int | None = None) -> None:
        """Forget a table's counts: its listing restarts from the beginning. With
        ``partition``, only that partition's listing restarts: only its batches are forgotten."""
        keys = [self._table(run_id, table_id, part)
                for part in ("fetched", "loaded", "rejected", "created")]
        if partition is None:
            self.r.delete(*keys)
            return
        for key in keys:
            stale = [no for no in self.r.hkeys(key) if rules.partition_of(int(no)) == partition]
            if stale:
                self.r.hdel(key, *stale)

    def record_fetched(self, run_id: str, table_id: str, batch_no: int, count: int) -> None:
        key = self._table(run_id, table_id, "fetched")
        self.r.hset(key, str(batch_no), count)
        self._touch(key)
        self._alive(run_id)

    def record_loaded(
        self, run_id: str, table_id: str, batch_no: int, loaded: int,
        rejected: tuple[RejectedRecord, ...] = (), *, created: int = 0,
    ) -> None:
        loaded_key = self._table(run_id, table_id, "loaded")
        rejected_key = self._table(run_id, table_id, "rejected")
        self.r.hset(loaded_key, str(batch_no), loaded)
        if created:
            created_key = self._table(run_id, table_id, "created")
            self.r.hset(created_key, str(batch_no), created)
            self._touch(created_key)
        if rejected:
            payload = [{"record_id": r.record_id, "reason": r.reason} for r in rejected]
            self.r.hset(rejected_key, str(batch_no), json.dumps(payload))
        self._touch(loaded_key, rejected_key)
        self._alive(run_id)

    # steps
    def record_step(
        self, run_id: str, step: str, *, table_id: str | None, batch_no: int | None,
        hostname: str | None, queue: str | None, state: str, error: str | None = None,
    ) -> None:
        key = f"{self._run(run_id)}:steps"
        ident = f"{step}:{table_id or ''}:{'' if batch_no is None else batch_no}"
        entry = {"step": step, "table_id": table_id, "batch_no": batch_no, "hostname": hostname,
                 "queue": queue, "state": state, "at": now_iso()}
        if error:
            entry["error"] = error
        self.r.hset(key, ident, json.dumps(entry))
        self._touch(key)
        self._alive(run_id)

    # reading
    def get(self, run_id: str, *, steps: bool = True) -> dict[str, Any] | None:
        """The whole status of a run as JSON-ready data (its step list only with ``steps``),
        or None if unknown."""
        run: dict[str, str] = self.r.hgetall(self._run(run_id))  # type: ignore[assignment]
        if not run:
            return None
        tables = json.loads(run.pop("tables", "[]"))
        data: dict[str, Any] = dict(run)
        data["options"] = json.loads(run.get("options", "{}"))
        data["spec"] = json.loads(run.get("spec", "{}"))
        data["tables"] = [self._table_status(run_id, TableRef.from_json(t)) for t in tables]
        if steps:
            entries = self.r.hvals(f"{self._run(run_id)}:steps")
            data["steps"] = sorted((json.loads(e) for e in entries), key=lambda e: e["at"])
        return data

    def _table_status(self, run_id: str, table: TableRef) -> dict[str, Any]:
        info = self.r.hgetall(self._table(run_id, table.table_id))
        counts = {part: self._per_batch(run_id, table.table_id, part)
                  for part in ("fetched", "loaded", "created")}
        newest = rules.newest_epochs(b for part in counts.values() for b in part)
        fetched, loaded, created = (rules.last_epoch(counts[part], newest)
                                    for part in ("fetched", "loaded", "created"))
        rejected_raw = self.r.hgetall(self._table(run_id, table.table_id, "rejected"))
        current = rules.last_epoch({int(batch): 0 for batch in rejected_raw}, newest)
        rejected = [r for batch, raw in rejected_raw.items() if int(batch) in current
                    for r in json.loads(raw)]
        loaded_total, created_total = sum(loaded.values()), sum(created.values())
        sync = self.r.hmget(self._table(run_id, table.table_id, "sync"),
                            ["recoveries", "recovered_batches"])
        return {
            "table": table.to_json(),
            "sql_table": info.get("sql_table"),
            "target": info.get("target"),
            "requests": int(info.get("requests", 0)),
            "partitions": int(info.get("partitions", 1)),
            "recoveries": int(sync[0] or 0),
            "recovered_batches": int(sync[1] or 0),
            "recovery_requests": int(info.get("recovery_requests", 0)),
            "state": info.get("state", "pending"),
            "error": info.get("error"),
            "fetched": sum(fetched.values()),
            "loaded": loaded_total,
            "batches": len(loaded),
            "rejected": rejected,
            "mode": info.get("mode"),
            "change_source": info.get("change_source"),
            "resync": info.get("resync"),
            "created": created_total,
            "updated": max(loaded_total - created_total, 0),
            "deleted": int(info.get("deleted", 0)),
            "cursor": json.loads(info["cursor"]) if info.get("cursor") else None,
        }

    def _per_batch(self, run_id: str, table_id: str, part: str) -> dict[int, int]:
        raw: dict[str, str] = self.r.hgetall(self._table(run_id, table_id, part))  # type: ignore[assignment]
        return {int(batch_no): int(count) for batch_no, count in raw.items()}

    def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest runs first, without their step lists."""
        ids: list[str] = self.r.zrevrange(f"{PREFIX}:runs", 0, limit - 1)  # type: ignore[assignment]
        runs = (self.get(run_id, steps=False) for run_id in ids)
        return [run for run in runs if run is not None]
