"""Peak RSS of each worker process (prefork children included) for a large vs a small table.

The sandbox runs in its own process and serves one table, ``Orders``, whose records it makes
when asked for (``sandbox.generated.GeneratedTable``, from 1,000 generated templates with
every field type), so a million records cost it no more memory than a thousand. For each
size, fresh Celery workers (one extract worker with ``--concurrency`` prefork processes, one
load worker with one) sync the table into a fresh SQLite file (``enqueue(...).wait()``); every
half second the bench reads ``VmHWM`` (the kernel's peak resident set) of every process of
each worker's tree, so a child that exits still counts. Printed: each process's peak at each
size, then per worker its main process and its largest child, small → large, with the ratio.

Targets: ratio ≤ 1.1 and ≤ 200 MB per worker process.

    python bench/memory.py [--records 100000,1000000] [--concurrency 2]
        [--redis redis://127.0.0.1:6379/7]   (the Redis DB is flushed)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.support import (  # noqa: E402
    BASE_ID,
    SandboxProcess,
    SandboxSpec,
    Workers,
    add_redis_option,
    host,
    worker_env,
)

TEMPLATES = 1_000


def peak_kib(pid: int) -> int | None:
    """The process's peak resident set (``VmHWM``) in KiB, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    todo += [int(child) for child in children.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


class PeakSampler:
    """Samples the peak RSS of every process of each worker's tree until stopped."""

    def __init__(self, workers: dict[str, int], every: float = 0.5) -> None:
        self.workers = workers
        self.peaks: dict[str, dict[int, int]] = {name: {} for name in workers}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)
        self._thread.start()

    def _run(self, every: float) -> None:
        while True:
            self.sample()
            if self._stop.wait(every):
                return

    def sample(self) -> None:
        for name, root in self.workers.items():
            for pid in tree(root):
                kib = peak_kib(pid)
                if kib is not None:
                    self.peaks[name][pid] = max(kib, self.peaks[name].get(pid, 0))

    def stop(self) -> dict[str, dict[int, int]]:
        self._stop.set()
        self._thread.join()
        self.sample()
        return self.peaks


def run(records: int, concurrency: int,
        redis_url: str) -> tuple[dict[str, dict[int, int]], float, int, dict[str, int]]:
    """One first sync of ``records`` on fresh workers: peak KiB per worker and pid, seconds,
    the sandbox's peak KiB, and each worker's main pid."""
    from app.extractors import AirtableExtractor
    from app.warehouses import SQLiteWarehouse
    from app.workflows import ETLWorkflow

    spec = SandboxSpec(tables={"Orders": records}, requests_per_second=0, templates=TEMPLATES)
    with tempfile.TemporaryDirectory() as tmp_dir, SandboxProcess(spec) as sandbox:
        tmp = Path(tmp_dir)
        url = f"sqlite:///{tmp / 'workers.db'}"
        env = worker_env(sandbox.url, url, "10000", {"AIRTABLE_BASE_ID": BASE_ID})
        from broker.producer import enqueue

        workers = Workers([("extract", concurrency), ("load", 1)], redis_url, env, tmp)
        with workers:
            roots = {"extract": workers.procs[0].pid, "load": workers.procs[1].pid}
            sampler = PeakSampler(roots)
            started = time.perf_counter()
            final = enqueue(ETLWorkflow(AirtableExtractor, SQLiteWarehouse(url)),
                            drop_tables=True).wait(timeout=6 * 3600)
            seconds = time.perf_counter() - started
            peaks = sampler.stop()
        loaded = sum(t["loaded"] for t in final["tables"])
        if loaded != records:
            raise RuntimeError(f"loaded {loaded} of {records} records: {final}")
        return peaks, seconds, peak_kib(sandbox.pid) or 0, roots


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", default="100000,1000000",
                        help="comma-separated sizes; the first is the baseline")
    parser.add_argument("--concurrency", type=int, default=2)
    add_redis_option(parser)
    args = parser.parse_args()
    sizes = [int(size) for size in args.records.split(",")]
    os.environ["CELERY_BROKER_URL"] = args.redis
    print(f"sizes {sizes}; extract ×{args.concurrency}, load ×1; {host()}", flush=True)
    # peak KiB per size, per (worker, role): its main process, and the largest prefork child
    roles: dict[int, dict[tuple[str, str], int]] = {}
    for records in sizes:
        peaks, seconds, sandbox_kib, roots = run(records, args.concurrency, args.redis)
        roles[records] = {}
        for name, by_pid in peaks.items():
            children = [kib for pid, kib in by_pid.items() if pid != roots[name]]
            roles[records][(name, "main")] = by_pid[roots[name]]
            roles[records][(name, "child")] = max(children, default=0)
        print(f"{records:>9,} records in {seconds:,.0f} s ({records / seconds:,.0f} rec/s), "
              f"load {os.getloadavg()[0]:.1f}; sandbox peak {sandbox_kib / 1024:.0f} MiB",
              flush=True)
        for name, by_pid in peaks.items():
            each = ", ".join(f"{kib / 1024:.0f}" for _, kib in sorted(by_pid.items()))
            print(f"  {name:<8} peak RSS per process (MiB, main first): {each}", flush=True)
    base = sizes[0]
    for records in sizes[1:]:
        for (name, role), kib in roles[records].items():
            small = roles[base][(name, role)]
            print(f"{name:<8} {role:<6} {small / 1024:>4.0f} MiB at {base:,} → {kib / 1024:>4.0f} MiB "
                  f"at {records:,}: ratio {kib / small:.2f}, {kib * 1024 / 1e6:.0f} MB "
                  f"(targets ≤ 1.1 and ≤ 200 MB)", flush=True)

if __name__ == "__main__":
    main()
