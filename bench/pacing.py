"""How close to Airtable's 5 req/s per base can the Redis limiter pace without a 429?

The sandbox runs in its own process and counts, like Airtable, a rolling one-second window
on arrival (the answer's latency after the count; ``--jitter`` before it, so jitter moves
arrivals) with a 30 s penalty after a
429. ``--procs`` processes each hammer one base through ``broker.ratelimit.RedisRateLimiter``
and the extractor's ``RateLimitedSession`` (which penalises every process on a 429) for
``--seconds``, once per margin. Printed per margin: the rate the sandbox accepted, as % of
the limit, over the run after a one-second warm-up, and the 429s it answered.

Target: ≥ 98 % of the limit with 0 × 429; the chosen margin is ``PACING_MARGIN`` in
app/extractors/ratelimit.py, and the figures are in docs/performance.md.

    python bench/pacing.py [--procs 4] [--seconds 20] [--margins 0.9,0.95,0.98,0.99,1.0]
                           [--latency 0.3] [--jitter 0.0] [--redis redis://127.0.0.1:6379/7]
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
    accepted_rate,
    add_redis_option,
    describe,
    host,
)

RATE = 5.0
PENALTY = 30.0


def hammer(url: str, redis_url: str, margin: float, prefix: str, nice: int, ready: Any,
           go: Any) -> None:
    """Send list requests to one base through the shared limiter from ``go`` to its stop time."""
    if nice:
        os.nice(nice)
    from app.extractors.airtable_session import RateLimitedSession
    from broker.ratelimit import RedisRateLimiter
    from broker.status import redis_client

    limiter = RedisRateLimiter(redis_client(redis_url), RATE, prefix, margin=margin)
    session = RateLimitedSession(limiter, base_key=f"{url}/{BASE_ID}", token_key="bench",
                                 penalty_seconds=PENALTY)
    session.headers["Authorization"] = f"Bearer {TOKEN}"
    ready.put(os.getpid())
    start_at, stop_at = go.get()
    time.sleep(max(start_at - time.monotonic(), 0))
    while time.monotonic() < stop_at:
        session.get(f"{url}/v0/{BASE_ID}/Items", params={"pageSize": 1})


def measure(sandbox: SandboxProcess, args: argparse.Namespace, margin: float) -> tuple[float, int]:
    """Accepted rate (% of the limit) and 429 count of one bounded run at ``margin``."""
    sandbox.reset()
    prefix = f"bench:pacing:{os.getpid()}:{margin}:{time.time_ns()}"
    context = mp.get_context("spawn")
    ready, go = context.Queue(), context.Queue()
    procs = [context.Process(target=hammer, args=(sandbox.url, args.redis, margin, prefix,
                                                  args.client_nice, ready, go), daemon=True)
             for _ in range(args.procs)]
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.get(timeout=120)  # every process has imported and built its session
    start_at = time.monotonic() + 0.2
    stop_at = start_at + args.seconds
    for _ in procs:
        go.put((start_at, stop_at))
    time.sleep(max(stop_at - time.monotonic(), 0) + 0.1)
    log = sandbox.log()
    for proc in procs:
        proc.terminate()  # one may be sleeping out a 30 s penalty
    for proc in procs:
        proc.join(10)
    time.sleep(args.latency + 0.5)  # requests still in flight land before the next reset
    rate = accepted_rate(log, start_at + 1.0, stop_at)
    if args.detail:
        print(describe(log, start_at, int(RATE)))
    return 100.0 * rate / RATE, sum(1 for _, _, status, _ in log if status == 429)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--procs", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--margins", default="0.9,0.95,0.98,0.99,1.0")
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--jitter", type=float, default=0.0,
                        help="extra uniform latency before the sandbox counts a request (s)")
    parser.add_argument("--sandbox-nice", type=int, default=0,
                        help="niceness of the sandbox process (negative needs root)")
    parser.add_argument("--client-nice", type=int, default=0,
                        help="niceness of the hammering processes (negative needs root)")
    parser.add_argument("--detail", action="store_true",
                        help="print the tightest spans and when the 429s came")
    add_redis_option(parser)
    args = parser.parse_args()
    spec = SandboxSpec(tables={"Items": 10}, requests_per_second=RATE, penalty_seconds=PENALTY,
                       latency_seconds=args.latency, latency_jitter_seconds=args.jitter,
                       nice=args.sandbox_nice)
    print(f"{args.procs} processes, {args.seconds:.0f} s per margin, limit {RATE:g} req/s, "
          f"latency {args.latency * 1000:.0f} ms + jitter {args.jitter * 1000:.0f} ms, "
          f"penalty {PENALTY:.0f} s; {host()}, "
          f"sandbox nice {args.sandbox_nice}, clients nice {args.client_nice}")
    print(f"{'margin':>7} {'accepted % of limit':>20} {'429s':>5}")
    with SandboxProcess(spec) as sandbox:
        for margin in (float(m) for m in args.margins.split(",")):
            percent, rejected = measure(sandbox, args, margin)
            print(f"{margin:>7.3f} {percent:>19.1f}% {rejected:>5}", flush=True)


if __name__ == "__main__":
    main()
