"""Prometheus metrics read from the run store and the broker's Redis at each scrape.

Nothing is kept in the exporting process: ``conveyor metrics --serve PORT`` can be restarted,
scaled or run next to Flower, and every worker (prefork children and other hosts included)
contributes through Redis.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from app.sync.states import RunState
from broker import batch_latency, ratestats
from broker.queues import QUEUES

#: How many of the newest runs in the store a scrape reads.
DEFAULT_RUNS = 500


class ConveyorCollector(Collector):
    """Runs by state, records per table, Airtable requests and 429s, batch latency, queues."""

    def __init__(self, client: Any = None, runs: int = DEFAULT_RUNS) -> None:
        from broker.status import RunStatus, redis_client

        self.client = client or redis_client()
        self.store = RunStatus(self.client)
        self.runs = runs

    def collect(self) -> Iterator[Any]:
        recent = self.store.recent(self.runs)
        by_state = Counter(run["state"] for run in recent)
        runs = GaugeMetricFamily("conveyor_runs", "Runs in the run store by state", labels=["state"])
        for state in RunState:
            runs.add_metric([state.value], by_state.get(state.value, 0))
        yield runs

        families = {
            kind: CounterMetricFamily(f"conveyor_records_{kind}", f"Records {kind} per table, summed "
                                      "over the runs in the run store", labels=["table"])
            for kind in ("extracted", "loaded", "rejected")
        }
        totals: dict[str, Counter[str]] = {kind: Counter() for kind in families}
        for run in recent:
            for table in run.get("tables") or []:
                name = table["table"]["name"]
                totals["extracted"][name] += int(table.get("fetched") or 0)
                totals["loaded"][name] += int(table.get("loaded") or 0)
                totals["rejected"][name] += len(table.get("rejected") or [])
        for kind, family in families.items():
            for name, value in sorted(totals[kind].items()):
                family.add_metric([name], value)
            yield family

        latest = GaugeMetricFamily("conveyor_latest_run_records", "Records per table in the newest run "
                                   "that synced the table", labels=["table", "kind"])
        seen: set[str] = set()
        for run in recent:  # newest first
            for table in run.get("tables") or []:
                name = table["table"]["name"]
                if name in seen:
                    continue
                seen.add(name)
                for kind, value in (("extracted", table.get("fetched")), ("loaded", table.get("loaded")),
                                    ("rejected", len(table.get("rejected") or []))):
                    latest.add_metric([name, kind], int(value or 0))
        yield latest

        requests = CounterMetricFamily("conveyor_api_requests", "Requests sent to Airtable per base",
                                       labels=["base"])
        limited = CounterMetricFamily("conveyor_api_rate_limited", "429 answers from Airtable per base",
                                      labels=["base"])
        for counters in ratestats.base_counters(self.client):
            requests.add_metric([counters.base], counters.requests)
            limited.add_metric([counters.base], counters.rate_limited)
        yield requests
        yield limited

        penalty = GaugeMetricFamily("conveyor_rate_limit_penalty_seconds",
                                    "Seconds of 429 penalty a base still waits out", labels=["base"])
        for base, seconds in sorted(ratestats.penalties(self.client).items()):
            penalty.add_metric([base], round(seconds, 3))
        yield penalty

        buckets, total, _count = batch_latency.read(self.client)
        latency = HistogramMetricFamily("conveyor_batch_load_seconds",
                                        "Seconds a load worker took to load one batch")
        latency.add_metric([], buckets=buckets, sum_value=total)
        yield latency

        depth = GaugeMetricFamily("conveyor_queue_depth", "Messages waiting in each queue",
                                  labels=["queue"])
        for queue in QUEUES:
            depth.add_metric([queue.name], int(self.client.llen(queue.name)))
        yield depth
        unacked = GaugeMetricFamily("conveyor_unacked_messages",
                                    "Messages delivered to workers and not yet acknowledged")
        unacked.add_metric([], int(self.client.hlen("unacked")))
        yield unacked


def registry(runs: int = DEFAULT_RUNS) -> Any:
    """A registry holding only Conveyor's collector."""
    from prometheus_client import CollectorRegistry

    reg = CollectorRegistry(auto_describe=False)
    reg.register(ConveyorCollector(runs=runs))
    return reg
