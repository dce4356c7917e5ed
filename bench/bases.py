"""Many bases at once: aggregate extraction rate of N bases synced together against N × 500 rec/s.

Airtable's limit is per base (5 req/s, 100 records a page: 500 rec/s each) and 50 req/s per
token, so a deployment with many bases goes faster by adding extract workers. The sandbox runs
in its own process at the real limits (rolling one-second window per base, 30 s penalty) with
``--latency`` per request, serving N bases of one ``--records``-record table each. For N in
``--bases`` (1, 2, 4): N extract workers (``--concurrency`` prefork processes each) and one
load worker; each base's first sync (one listing, the baseline), then its second sync with
partitions, all N runs enqueued at once. Printed per N: the aggregate rate sustained between
10 % and 90 % of all records served, as a ratio of N × 500, the whole-run rate, and 429s.

``--concurrency`` is 4 by default (it was 2): a partitioned base pages its 4 windows at once
only with 4 processes free for it, and at 300 ms latency one base needs about 3 requests in
flight to keep 5 req/s. With 2 processes per worker one base sustained 0.86-0.92 of 500 rec/s
with no 429 and the limiter's spacing intact (tightest 5-request spans ≥ 1000 ms): the
processes, not the pacing, were the limit (docs/performance.md, "Many bases").

``--detail`` prints, per N and run, the CPU share of the sandbox and of each worker's process
tree and the host's busy share and load average, and per base its own sustained rate, when
its pages were served, its tightest 5-request spans as the sandbox counted them and as they
reached its handler, how long after arriving they reached it, and for each 429
the six requests of the window that refused it. ``--sandbox-nice -10`` (root) runs the
stand-in for Airtable's servers ahead of the host's other load; the figures say which.

Target: N bases ≥ 0.95 × N × 500 rec/s (with 0 × 429).

``--partitioned-runs K`` repeats the partitioned sync K times on the same workers;
``--new-workers`` then runs one more on newly started workers, the sandbox kept (whether the
429s at N = 4 come from freshly started pool processes: not only, docs/performance.md).

    python bench/bases.py [--bases 1,2,4] [--records 6000] [--concurrency 4] [--detail]
        [--partitioned-runs 1] [--new-workers] [--sandbox-nice 0]
        [--redis redis://127.0.0.1:6379/7]   (the Redis DB is flushed)
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.memory import tree  # noqa: E402
from bench.support import TOKEN, SandboxProcess, SandboxSpec, Workers, sustained_rate  # noqa: E402

CEILING = 500.0
LIMIT = 5  # requests per base in any second, as the sandbox counts them
_BASE_IN_PATH = re.compile(r"^\S+ /v0/(?:meta/bases/)?(app[A-Za-z0-9]+)/")
_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by ``pid`` and its descendants."""
    total = 0
    for member in tree(pid):
        try:
            with open(f"/proc/{member}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICKS


def host_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all cores since boot, from /proc/stat."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return sum(values) - idle, sum(values)


class CpuMeter:
    """CPU share of each named process tree, and of the whole host, between start and stop."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.started = time.perf_counter()
        self.before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        self.host_before = host_busy()

    def report(self) -> str:
        wall = time.perf_counter() - self.started
        shares = ", ".join(f"{name} {(cpu_seconds(pid) - self.before[name]) / wall:.0%}"
                           for name, pid in self.pids.items())
        busy, total = host_busy()
        host = (busy - self.host_before[0]) / max(total - self.host_before[1], 1)
        return (f"    CPU over {wall:.0f} s (100 % = one core): {shares}; host busy {host:.0%} "
                f"of {os.cpu_count()} cores; load {os.getloadavg()[0]:.1f}")


def _page_kind(target: str) -> str:
    """'meta' for a metadata read, 'first' for a listing's first page, 'next' for a later one."""
    if "/meta/" in target:
        return "meta"
    return "next" if "offset" in target else "first"


def per_base(entries: list[tuple[float, str, int, int, float]], start_at: float) -> list[str]:
    """One line per base: its own sustained rate, requests, when its pages were served, the
    tightest 5-request spans and its 429s; then, for each 429 the window caused (not those
    answered during a penalty), the 5 requests the sandbox had accepted in the second before
    it: when they were counted (on arrival: the kernel's receive time, sandbox/arrival.py),
    when they reached the sandbox's handler, how long after arriving they reached it (the
    simulated latency comes after that), and which page each of the 6 was."""
    by_base: dict[str, list[tuple[float, str, int, int, float]]] = defaultdict(list)
    for at, target, status, records, received in entries:
        match = _BASE_IN_PATH.match(target)
        by_base[match.group(1) if match else "-"].append(
            (at, target, status, records, received))
    lines = []
    for base_id, log in sorted(by_base.items()):
        plain = [(at, kind, status, n) for at, kind, status, n, _ in log]
        sustained, rejected = sustained_rate(plain)
        accepted = sorted(at for at, _, status, _ in plain if status != 429)
        spans = sorted(accepted[i + LIMIT] - accepted[i] for i in range(len(accepted) - LIMIT))
        tight = ", ".join(f"{span * 1000:.0f}" for span in spans[:3])
        reached = sorted(received for _, _, status, _, received in log if status != 429)
        reached_spans = sorted(reached[i + LIMIT] - reached[i]
                               for i in range(len(reached) - LIMIT))
        tight_reached = ", ".join(f"{span * 1000:.0f}" for span in reached_spans[:3])
        behind = sorted(received - at for at, _, _, _, received in log)
        served = [at for at, _, status, n in plain if status == 200 and n]
        refused = ", ".join(f"{at - start_at:.1f}" for at, _, status, _ in sorted(plain)
                            if status == 429)
        window = (f"{min(served) - start_at:.1f}-{max(served) - start_at:.1f} s"
                  if served else "nothing served")
        lines.append(f"    {base_id}: {sustained:,.0f} rec/s sustained ({sustained / CEILING:.0%}), "
                     f"{len(log)} requests, pages {window}, tightest {LIMIT}-spans {tight} ms "
                     f"as counted, {tight_reached} ms as received; handler after arrival "
                     f"median {behind[len(behind) // 2] * 1000:.0f} ms, "
                     f"max {behind[-1] * 1000:.0f} ms; "
                     f"429s {rejected}" + (f" at {refused} s" if refused else ""))
        ordered = sorted(log)
        for i, (at, _, status, _, received) in enumerate(ordered):
            if status != 429:
                continue
            before = [entry for entry in ordered[:i] if entry[2] != 429 and at - entry[0] < 1.0]
            if len(before) < LIMIT:
                continue  # answered during the penalty a previous 429 started
            first = before[0]
            six = [*before, ordered[i]]
            behind_six = ", ".join(f"{(e[4] - e[0]) * 1000:.0f}" for e in six)
            lines.append(
                f"      429 at {at - start_at:.2f} s: counted {(at - first[0]) * 1000:.0f} ms after "
                f"the 5th request before it, reached the sandbox {(received - first[4]) * 1000:.0f} "
                f"ms after it; they reached the handler {behind_six} ms after arriving (6 requests: "
                f"{' '.join(_page_kind(e[1]) for e in six)})")
    return lines


def sync_all(sandbox: SandboxProcess, base_ids: list[str], tmp: Path,
             meter: dict[str, int] | None = None) -> tuple[float, float, int, list[str]]:
    """Sync every base at once; (sustained, whole-run rec/s, 429s) over all of them, and the
    detail lines (per base, and CPU of each process tree in ``meter``) when ``meter`` is given."""
    from app.extractors import AirtableExtractor
    from app.warehouses import SQLiteWarehouse
    from app.workflows import ETLWorkflow
    from broker.producer import enqueue

    sandbox.reset()
    cpu = CpuMeter(meter) if meter is not None else None
    start_at = time.monotonic()
    started = time.perf_counter()
    handles = [enqueue(ETLWorkflow(AirtableExtractor(base_id=base_id, api_url=sandbox.url),
                                   SQLiteWarehouse(f"sqlite:///{tmp / base_id}.db")),
                       drop_tables=True) for base_id in base_ids]
    records = sum(t["fetched"] for h in handles for t in h.wait(timeout=3600)["tables"])
    whole = records / (time.perf_counter() - started)
    sustained, rejected = sustained_rate(sandbox.log())
    detail = [] if cpu is None else [
        cpu.report(), *per_base(sandbox.log_targets(), start_at)]
    return sustained, whole, rejected, detail


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--bases", default="1,2,4")
    parser.add_argument("--records", type=int, default=6000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--partitioned-runs", type=int, default=1,
                        help="partitioned syncs after the first sync, on the same workers")
    parser.add_argument("--new-workers", action="store_true",
                        help="then one more partitioned sync on newly started workers")
    parser.add_argument("--sandbox-nice", type=int, default=0,
                        help="niceness of the sandbox process (negative needs root)")
    parser.add_argument("--detail", action="store_true",
                        help="per base: rate, 429s and their times; CPU share of each process")
    parser.add_argument("--redis", default=os.environ.get(
        "CONVEYOR_BENCH_REDIS_URL", "redis://127.0.0.1:6379/7"))
    args = parser.parse_args()
    counts = [int(n) for n in args.bases.split(",")]
    os.environ["CELERY_BROKER_URL"] = args.redis
    print(f"{args.records} records per base, 5 req/s per base, {args.latency * 1000:.0f} ms "
          f"latency; extract workers × {args.concurrency} processes, sandbox nice "
          f"{args.sandbox_nice}; {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(f"{'bases':<6} {'run':<12} {'sustained rec/s':>16} {'/ N×500':>8} {'whole-run':>10} "
          f"{'429s':>5}")
    for n in counts:
        base_ids = [f"appBENCHBASES{i:04d}" for i in range(n)]
        spec = SandboxSpec(tables={"Records": args.records}, requests_per_second=5.0,
                           penalty_seconds=30.0, latency_seconds=args.latency,
                           base_ids=tuple(base_ids), nice=args.sandbox_nice)
        with tempfile.TemporaryDirectory() as tmp_dir, SandboxProcess(spec) as sandbox:
            tmp = Path(tmp_dir)
            env = {"AIRTABLE_API_URL": sandbox.url, "AIRTABLE_API_KEY": TOKEN,
                   "AIRTABLE_REQUESTS_PER_SECOND": "5",
                   "WAREHOUSE_URL": f"sqlite:///{tmp / 'default.db'}"}
            os.environ.update(env)
            queues = [("extract", args.concurrency)] * n + [("load", 1)]
            runs = ["first sync", *["partitioned"] * args.partitioned_runs]
            # Each group runs on workers started for it (the sandbox, its caches and the
            # warehouses stay): the last group's workers are fresh when --new-workers is given.
            groups = [runs] + ([["partitioned, new workers"]] if args.new_workers else [])
            for group in groups:
                with Workers(queues, args.redis, env, tmp) as workers:
                    meter = None
                    if args.detail:
                        meter = {"sandbox": sandbox.pid,
                                 **{f"{queue}{i}": proc.pid for i, ((queue, _), proc)
                                    in enumerate(zip(queues, workers.procs, strict=True))}}
                    for run in group:
                        sustained, whole, rejected, detail = sync_all(sandbox, base_ids, tmp,
                                                                      meter)
                        print(f"{n:<6} {run:<12} {sustained:>16,.0f} "
                              f"{sustained / (n * CEILING):>8.2f} {whole:>10,.0f} "
                              f"{rejected:>5}", flush=True)
                        for line in detail:
                            print(line, flush=True)

if __name__ == "__main__":
    main()
