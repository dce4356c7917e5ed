"""A distributed test stack: the sandbox, real Redis, and one real worker process per queue."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from app.warehouses import Warehouse
from sandbox import Sandbox, SandboxBase
from tests.conftest import TEST_REDIS_URL
from tests.support.fixtures import BASE_ID, TOKEN, sandbox_with
from tests.support.workers import WorkerProcess


@dataclass
class Stack:
    sandbox: Sandbox
    base: SandboxBase
    warehouse: Warehouse
    env: dict[str, str]
    log_dir: Path
    workers: dict[str, WorkerProcess] = field(default_factory=dict)

    def start_worker(self, queue: str, **extra_env: str) -> WorkerProcess:
        worker = WorkerProcess(queue, {**self.env, **extra_env}, self.log_dir).start()
        self.workers[queue] = worker
        return worker

    def logs(self) -> str:
        return "\n".join(f"--- {q}\n{w.log()[-3000:]}" for q, w in self.workers.items())


@contextlib.contextmanager
def running_stack(
    tables: dict[str, int], warehouse: Warehouse, warehouse_env: dict[str, str], log_dir: Path,
    *, redis_url: str = TEST_REDIS_URL, **sandbox_config: Any,
) -> Iterator[Stack]:
    """Flush the Redis DB, start the sandbox and an extract and a load worker."""
    redis.Redis.from_url(redis_url).flushdb()
    with sandbox_with(tables, **sandbox_config) as (sandbox, base):
        env = {
            "CELERY_BROKER_URL": redis_url,
            "AIRTABLE_API_URL": sandbox.url,
            "AIRTABLE_BASE_ID": BASE_ID,
            "AIRTABLE_API_KEY": TOKEN,
            "AIRTABLE_REQUESTS_PER_SECOND": "1000",
            "AIRTABLE_MAX_ATTEMPTS": "3",
            **warehouse_env,
        }
        stack = Stack(sandbox, base, warehouse, env, log_dir)
        try:
            stack.start_worker("extract")
            stack.start_worker("load")
            yield stack
        finally:
            for worker in stack.workers.values():
                worker.stop()
            warehouse.dispose()


@contextlib.contextmanager
def serving_base(
    base: SandboxBase, warehouse_env: dict[str, str], log_dir: Path, *, redis_url: str = TEST_REDIS_URL
) -> Iterator[tuple[Sandbox, list[WorkerProcess]]]:
    """The sandbox serving ``base``, a flushed Redis DB, and an extract and a load worker."""
    from sandbox import SandboxConfig, run_sandbox

    redis.Redis.from_url(redis_url).flushdb()
    with run_sandbox([base], SandboxConfig(token=TOKEN, requests_per_second=0)) as sandbox:
        env = {
            "CELERY_BROKER_URL": redis_url,
            "AIRTABLE_API_URL": sandbox.url,
            "AIRTABLE_BASE_ID": base.id,
            "AIRTABLE_API_KEY": TOKEN,
            "AIRTABLE_REQUESTS_PER_SECOND": "1000",
            "AIRTABLE_MAX_ATTEMPTS": "3",
            **warehouse_env,
        }
        workers: list[WorkerProcess] = []
        try:
            for queue in ("extract", "load"):
                workers.append(WorkerProcess(queue, env, log_dir).start())
            yield sandbox, workers
        finally:
            for worker in workers:
                worker.stop()
            redis.Redis.from_url(redis_url).flushdb()
