"""Many bases at once: aggregate extraction rate of N bases synced together against N × 500 rec/s.

Airtable's limit is per base (5 req/s, 100 records a page: 500 rec/s each) and 50 req/s per
token, so a deployment with many bases goes faster by adding extract workers. The sandbox runs
in its own process at the real limits (rolling one-second window per base, 30 s penalty) with
``--latency`` per request, serving N bases of one ``--records``-record table each. For N in
``--bases`` (1, 2, 4): N extract workers (``--concurrency`` prefork processes each) and one
load worker; each base's first sync (one listing, the baseline), then its second sync with
partitions, all N runs enqueued at once. Printed per N: the aggregate rate sustained between
10 % and 90 % of all records served, as a ratio of N × 500, the whole-run rate, and 429s.

Target: N bases ≥ 0.95 × N × 500 rec/s (with 0 × 429).

    python bench/bases.py [--bases 1,2,4] [--records 6000] [--concurrency 2]
        [--redis redis://127.0.0.1:6379/7]   (the Redis DB is flushed)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.support import TOKEN, SandboxProcess, SandboxSpec, Workers, sustained_rate  # noqa: E402

CEILING = 500.0


def sync_all(sandbox: SandboxProcess, base_ids: list[str], tmp: Path) -> tuple[float, float, int]:
    """Sync every base at once; (sustained, whole-run rec/s, 429s) over all of them."""
    from app.extractors import AirtableExtractor
    from app.warehouses import SQLiteWarehouse
    from app.workflows import ETLWorkflow
    from broker.producer import enqueue

    sandbox.reset()
    started = time.perf_counter()
    handles = [enqueue(ETLWorkflow(AirtableExtractor(base_id=base_id, api_url=sandbox.url),
                                   SQLiteWarehouse(f"sqlite:///{tmp / base_id}.db")),
                       drop_tables=True) for base_id in base_ids]
    records = sum(t["fetched"] for h in handles for t in h.wait(timeout=3600)["tables"])
    whole = records / (time.perf_counter() - started)
    sustained, rejected = sustained_rate(sandbox.log())
    return sustained, whole, rejected


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--bases", default="1,2,4")
    parser.add_argument("--records", type=int, default=6000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--redis", default=os.environ.get(
        "CONVEYOR_BENCH_REDIS_URL", "redis://127.0.0.1:6379/7"))
    args = parser.parse_args()
    counts = [int(n) for n in args.bases.split(",")]
    os.environ["CELERY_BROKER_URL"] = args.redis
    print(f"{args.records} records per base, 5 req/s per base, {args.latency * 1000:.0f} ms "
          f"latency; {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(f"{'bases':<6} {'run':<12} {'sustained rec/s':>16} {'/ N×500':>8} {'whole-run':>10} "
          f"{'429s':>5}")
    for n in counts:
        base_ids = [f"appBENCHBASES{i:04d}" for i in range(n)]
        spec = SandboxSpec(tables={"Records": args.records}, requests_per_second=5.0,
                           penalty_seconds=30.0, latency_seconds=args.latency,
                           base_ids=tuple(base_ids))
        with tempfile.TemporaryDirectory() as tmp_dir, SandboxProcess(spec) as sandbox:
            tmp = Path(tmp_dir)
            env = {"AIRTABLE_API_URL": sandbox.url, "AIRTABLE_API_KEY": TOKEN,
                   "AIRTABLE_REQUESTS_PER_SECOND": "5",
                   "WAREHOUSE_URL": f"sqlite:///{tmp / 'default.db'}"}
            os.environ.update(env)
            queues = [("extract", args.concurrency)] * n + [("load", 1)]
            with Workers(queues, args.redis, env, tmp):
                for run in ("first sync", "partitioned"):
                    sustained, whole, rejected = sync_all(sandbox, base_ids, tmp)
                    print(f"{n:<6} {run:<12} {sustained:>16,.0f} "
                          f"{sustained / (n * CEILING):>8.2f} {whole:>10,.0f} {rejected:>5}",
                          flush=True)


if __name__ == "__main__":
    main()
