"""Bench plumbing: the sandbox in its own process, and rates sampled from its request log.

Benches must not share a process (and a GIL) with the sandbox they measure, so
``SandboxProcess`` runs ``python bench/support.py serve`` and talks to it over a pipe:
``log`` returns every request the sandbox answered with the monotonic time it was counted
against the rate limit (the same clock for every process on one Linux host).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

BASE_ID = "appBENCH000000001"
TOKEN = "bench-token"
#: The Redis DB a bench's workers and limiter use unless ``--redis`` or CONVEYOR_BENCH_REDIS_URL
#: names another; it is flushed.
REDIS_URL = "redis://127.0.0.1:6379/7"


def add_redis_option(parser: argparse.ArgumentParser) -> None:
    """``--redis``: the Redis DB the bench uses (flushed)."""
    parser.add_argument("--redis", default=os.environ.get("CONVEYOR_BENCH_REDIS_URL", REDIS_URL))


def host() -> str:
    """This host's cores and load average, printed with every figure: on a shared host only
    ratios measured in the same run compare."""
    return f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"


def worker_env(sandbox_url: str, warehouse_url: str, requests_per_second: str,
               more: dict[str, str] | None = None) -> dict[str, str]:
    """The settings the bench's workers run with: the sandbox, its token, their pace and the
    default warehouse (and ``more``). Set in this process too, since the producer builds each
    run's plan from the same settings."""
    env = {"AIRTABLE_API_URL": sandbox_url, "AIRTABLE_API_KEY": TOKEN,
           "AIRTABLE_REQUESTS_PER_SECOND": requests_per_second, "WAREHOUSE_URL": warehouse_url,
           **(more or {})}
    os.environ.update(env)
    return env


@dataclass(frozen=True)
class SandboxSpec:
    """What the sandbox process serves and how it limits."""

    tables: dict[str, int]
    requests_per_second: float = 5.0
    penalty_seconds: float = 30.0
    latency_seconds: float = 0.0
    latency_jitter_seconds: float = 0.0
    base_ids: tuple[str, ...] = (BASE_ID,)
    # Serve each table as ``sandbox.generated.GeneratedTable`` (records made when asked for,
    # from this many generated templates) instead of holding every record: for a million.
    templates: int | None = None
    # Niceness of the sandbox process: negative (root only) keeps the stand-in for Airtable's
    # servers from being slowed by whatever else loads this host (see docs/performance.md).
    nice: int = 0


class SandboxProcess:
    """A sandbox served by a child process; use as a context manager."""

    def __init__(self, spec: SandboxSpec) -> None:
        self.spec = spec
        self._proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "serve", json.dumps(asdict(spec))],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line.startswith("http://"):
            self._proc.kill()
            raise RuntimeError(f"the sandbox process did not start: {line!r}")
        self.url = line.strip()
        self.pid = self._proc.pid
        self._lock = threading.Lock()

    def _ask(self, command: str) -> Any:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        with self._lock:
            self._proc.stdin.write(command + "\n")
            self._proc.stdin.flush()
            return json.loads(self._proc.stdout.readline())

    def log(self) -> list[tuple[float, str, int, int]]:
        """(arrived, kind, status, records) for every request answered since the last reset."""
        return [tuple(entry) for entry in self._ask("log")]  # type: ignore[misc]

    def log_targets(self) -> list[tuple[float, str, int, int, float]]:
        """(arrived, target, status, records, received) for every request answered since the
        last reset; the target is the method, path with query string, and body; ``received`` is
        when the sandbox began serving it, before its simulated latency."""
        return [tuple(entry) for entry in self._ask("log_targets")]  # type: ignore[misc]

    def reset(self) -> None:
        """Forget windows, penalties and the log."""
        self._ask("reset")

    def stop(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class Workers:
    """Celery worker processes (``celery -A workers worker``), one per (queue, concurrency),
    on a flushed Redis DB; stopped by pid on exit. Use as a context manager."""

    def __init__(self, queues: list[tuple[str, int]], redis_url: str, env: dict[str, str],
                 log_dir: Path) -> None:
        import redis

        redis.Redis.from_url(redis_url).flushdb()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        full = {**os.environ, **env, "CELERY_BROKER_URL": redis_url, "PYTHONUNBUFFERED": "1"}
        for n, (queue, concurrency) in enumerate(queues):
            log = log_dir / f"worker-{queue}-{n}.log"
            self.logs.append(log)
            with open(log, "ab") as out:
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "workers", "worker", "-Q", queue,
                     "-n", f"{queue}{n}@bench", "-c", str(concurrency), "--pool", "prefork",
                     "--without-gossip", "--without-mingle", "-l", "warning"],
                    cwd=ROOT, env=full, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True))
        time.sleep(0.5)

    def ready(self, timeout: float = 90) -> None:
        """Wait until every worker's pool answers a ping."""
        from broker.celery_app import celery_app

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            replies = celery_app.control.ping(timeout=1.0) or []
            if len(replies) >= len(self.procs):
                return
        raise RuntimeError("workers did not start: " + " | ".join(
            log.read_text(errors="replace")[-500:] for log in self.logs))

    def __enter__(self) -> Workers:
        self.ready()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def sustained_rate(log: list[tuple[float, str, int, int]], low: float = 0.1,
                   high: float = 0.9) -> tuple[float, int]:
    """Records per second served between ``low`` and ``high`` of all records served.

    Returns:
        The rate and the number of 429 answers in the whole log.
    """
    served = sorted((at, n) for at, _, status, n in log if status == 200 and n)
    rejected = sum(1 for _, _, status, _ in log if status == 429)
    total = sum(n for _, n in served)
    if total == 0:
        return 0.0, rejected
    seen, start, end, start_count, end_count = 0, None, None, 0, 0
    for at, n in served:
        seen += n
        if start is None and seen >= low * total:
            start, start_count = at, seen
        if end is None and seen >= high * total:
            end, end_count = at, seen
    if start is None or end is None or end <= start:
        return 0.0, rejected
    return (end_count - start_count) / (end - start), rejected


def accepted_rate(log: list[tuple[float, str, int, int]], since: float,
                  until: float) -> float:
    """Requests per second the sandbox accepted (not 429) between two monotonic times.

    Without a 429 it is measured between the first and last accepted arrivals in the span,
    (n - 1) / (last - first), so it does not move by a whole request with where the span cuts;
    with one, over the whole span, so the penalty's silence counts.
    """
    times = sorted(at for at, _, status, _ in log if status != 429 and since <= at < until)
    if any(status == 429 for _, _, status, _ in log):
        return len(times) / (until - since) if until > since else 0.0
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0


def describe(log: list[tuple[float, str, int, int]], start_at: float, limit: int) -> str:
    """Where the margin went: the tightest spans between request i and i+limit, and the 429s."""
    accepted = sorted(at for at, _, status, _ in log if status != 429)
    gaps = sorted((accepted[i + limit] - accepted[i], accepted[i] - start_at)
                  for i in range(len(accepted) - limit))
    tight = ", ".join(f"{gap * 1000:.1f} ms at {at:.1f} s" for gap, at in gaps[:3])
    refused = ", ".join(f"{at - start_at:.2f} s" for at, _, status, _ in sorted(log)
                        if status == 429)
    return f"    tightest {limit}-request spans: {tight}; 429s at: {refused or 'none'}"


def _generated_base(base_id: str, tables: dict[str, int], templates: int) -> Any:
    """A base whose tables make their records when asked for, from generated templates."""
    from sandbox import SandboxBase, build_base
    from sandbox.generated import GeneratedTable

    made = build_base(base_id, {name: min(count, templates) for name, count in tables.items()},
                      hostile=False)
    return SandboxBase(base_id, made.name, [GeneratedTable(table, tables[table.name])
                                            for table in made.tables])


def _serve(spec_json: str) -> None:
    from sandbox import Sandbox, SandboxConfig, build_base

    raw = json.loads(spec_json)
    spec = SandboxSpec(**{**raw, "base_ids": tuple(raw["base_ids"])})
    if spec.nice:
        os.nice(spec.nice)
    if spec.templates is None:
        bases = [build_base(base_id, dict(spec.tables), hostile=False)
                 for base_id in spec.base_ids]
    else:
        bases = [_generated_base(base_id, spec.tables, spec.templates)
                 for base_id in spec.base_ids]
    config = SandboxConfig(token=TOKEN, requests_per_second=spec.requests_per_second,
                           penalty_seconds=spec.penalty_seconds,
                           latency_seconds=spec.latency_seconds,
                           latency_jitter_seconds=spec.latency_jitter_seconds)
    # The generated tables are a few hundred thousand long-lived objects: left to the cyclic
    # collector, a full pass freezes every sandbox thread for tens of ms and delays arrivals,
    # a pause of the stand-in for Airtable's servers that their clients would never see.
    gc.collect()
    gc.freeze()
    sandbox = Sandbox.start(bases, config)
    sandbox.stats.keep_log()
    print(sandbox.url, flush=True)
    for command in sys.stdin:
        command = command.strip()
        if command == "log":
            entries = [[e.arrived, e.kind, e.status, e.records] for e in sandbox.stats.log or []]
            print(json.dumps(entries), flush=True)
        elif command == "log_targets":
            entries = [[e.arrived, e.target, e.status, e.records, e.received]
                       for e in sandbox.stats.log or []]
            print(json.dumps(entries), flush=True)
        elif command == "reset":
            sandbox.reset()
            print("true", flush=True)
    sandbox.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        _serve(sys.argv[2])
