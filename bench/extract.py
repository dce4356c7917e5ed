"""Extraction rate of one big table against Airtable's ceiling (5 req/s × 100 records = 500 rec/s).

The sandbox runs in its own process at the real limits (5 req/s per base counted on arrival in
a rolling one-second window, 30 s penalty after a 429) with 300 ms latency per request, serving
one table of ``--records`` records. Measured, through the shared Redis limiter
(``broker.ratelimit.RedisRateLimiter``) and ``AirtableExtractor.iter_pages``:

* baseline: one sequential listing in one process (a listing cannot beat one page per round
  trip, so 300 ms latency caps it near 1/0.3 s × 100 = 330 rec/s);
* partitioned: the table split by ``app.extractors.partitions.plan_from_created`` (boundaries
  from the baseline's ``createdTime`` values, as the previous sync's would be) into N windows,
  each listed by its own process, all sharing the base's budget through Redis.

Printed per run: the sustained rate (records the sandbox served between 10 % and 90 % of the
table, over the time between those two moments, so start-up and the last stragglers do not
hide the pacing) as % of the 500 rec/s ceiling, the whole-run rate (first request to last
page) beside it, and the 429 count from the sandbox's log.

Target: partitioned extraction sustains ≥ 98 % of the ceiling with 0 × 429.

    python bench/extract.py [--records 20000] [--partitions 2] [--redis redis://127.0.0.1:6379/7]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.support import (  # noqa: E402
    BASE_ID,
    TOKEN,
    SandboxProcess,
    SandboxSpec,
    describe,
    sustained_rate,
)

CEILING = 500.0  # 5 requests/s × 100 records per page
TABLE = "Records"


def list_window(url: str, redis_url: str, prefix: str, formula: str | None, ready: Any,
                go: Any, done: Any) -> None:
    """List one window of the table (None: all of it); report its (id, createdTime) pairs."""
    from app.extractors import AirtableExtractor
    from broker.ratelimit import RedisRateLimiter
    from broker.status import redis_client

    limiter = RedisRateLimiter(redis_client(redis_url), 5.0, prefix)
    extractor = AirtableExtractor(api_key=TOKEN, base_id=BASE_ID, api_url=url, tables=[TABLE],
                                  rate_limiter=limiter)
    table = extractor.find_table(TABLE)  # metadata is read before the clock starts
    ready.put(os.getpid())
    go.get()
    started = time.monotonic()
    created = [(record["id"], record["createdTime"])
               for page in extractor.iter_pages(table, formula=formula)
               for record in page.records]
    done.put((created, started, time.monotonic()))


def run(sandbox: SandboxProcess, redis_url: str, formulas: list[str | None], detail: bool = False,
        ) -> tuple[list[tuple[str, str]], float, float, int]:
    """List ``formulas`` in one process each; return (id, createdTime) pairs, sustained and
    whole-run rates (rec/s) and the 429 count."""
    context = mp.get_context("spawn")
    ready, go, done = context.Queue(), context.Queue(), context.Queue()
    prefix = f"bench:extract:{os.getpid()}:{time.time_ns()}"
    procs = [context.Process(target=list_window,
                             args=(sandbox.url, redis_url, prefix, formula, ready, go, done))
             for formula in formulas]
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.get(timeout=120)
    sandbox.reset()  # metadata requests are not part of the listing
    start_at = time.monotonic()
    for _ in procs:
        go.put(True)
    results = [done.get(timeout=3600) for _ in procs]
    for proc in procs:
        proc.join(30)
    created = [stamp for stamps, _, _ in results for stamp in stamps]
    whole = len(created) / (max(end for _, _, end in results) - min(s for _, s, _ in results))
    log = sandbox.log()
    sustained, rejected = sustained_rate(log)
    if detail:
        print(describe(log, start_at, 5))
        origin = min(start for _, start, _ in results)
        print("    listings (start s, end s, records): " + ", ".join(
            f"({start - origin:.1f}, {end - origin:.1f}, {len(pairs)})"
            for pairs, start, end in results))
    return created, sustained, whole, rejected


def main() -> None:
    from app.extractors.partitions import plan_from_created

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--partitions", default="2", help="comma-separated partition counts")
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--sandbox-nice", type=int, default=0,
                        help="niceness of the sandbox process (negative needs root)")
    parser.add_argument("--detail", action="store_true",
                        help="print the tightest 5-request spans and when the 429s came")
    parser.add_argument("--redis", default=os.environ.get(
        "CONVEYOR_BENCH_REDIS_URL", "redis://127.0.0.1:6379/7"))
    args = parser.parse_args()
    spec = SandboxSpec(tables={TABLE: args.records}, requests_per_second=5.0,
                       penalty_seconds=30.0, latency_seconds=args.latency, nice=args.sandbox_nice)
    print(f"{args.records} records, 5 req/s, {args.latency * 1000:.0f} ms latency, 30 s penalty; "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, sandbox nice {args.sandbox_nice}")
    print(f"{'listing':<24} {'sustained % of 500':>19} {'whole-run rec/s':>16} {'429s':>5}")
    with SandboxProcess(spec) as sandbox:
        created, sustained, whole, rejected = run(sandbox, args.redis, [None], args.detail)
        assert len(created) == args.records, len(created)
        print(f"{'sequential (baseline)':<24} {100 * sustained / CEILING:>18.1f}% "
              f"{whole:>16.0f} {rejected:>5}", flush=True)
        for parts in (int(n) for n in args.partitions.split(",") if n.strip()):
            plan = plan_from_created([stamp for _, stamp in created], parts)
            got, sustained, whole, rejected = run(sandbox, args.redis,
                                                  [w.formula() for w in plan], args.detail)
            ids = [record_id for record_id, _ in got]
            assert len(ids) == len(set(ids)), "a record was listed by two partitions"
            assert set(ids) == {record_id for record_id, _ in created}, "partitions left a gap"
            print(f"{f'{len(plan)} partitions, {len(plan)} procs':<24} "
                  f"{100 * sustained / CEILING:>18.1f}% {whole:>16.0f} {rejected:>5}", flush=True)


if __name__ == "__main__":
    main()
