"""Cost of an incremental run against a full merge run, with 1 % of a big table changed.

A sandbox (in this process, no rate limit unless ``--rate``) serves one table of
``--records`` records. After a first full sync (which leaves the table's sync state), 1 % of
the records change (updates, creates and deletes in the ratio 5:2:1, through the API as a
person's tools would), then each run below is measured on its own fresh 1 % change:

* ``window, deletes due``: the modified-time window plus the ids-only delete listing
  (``deletes_every=1``, the default), with a token that may not manage webhooks;
* ``window, deletes not due``: the window alone;
* ``webhook``: the webhook change feed (the token may manage webhooks): the payloads since
  the stored cursor, the changed records' rows updated from the payloads' values and the
  created (or unreadable) ones listed by id; deletes come from the payloads.
  Its first incremental run lists everything (it takes the hook's cursor), so one such run
  precedes the measured one;
* ``full merge``: every record listed and upserted (what every run cost before).

Printed per run: Airtable requests (from the sandbox's count), bytes of response bodies
(counted on the client), seconds; then each incremental run as a ratio of the full merge.
The default is 20,000 records: a 100,000-record table takes several minutes to generate and
sync on this project's shared 2-core machine; ``--records 100000`` runs the issue's size.

Change sources: ``SOURCES`` maps a name to whether the sandbox's token may manage webhooks
(which chooses the source: ``app.sync.webhook.candidates``) and the measured variants' run
options.

    python bench/incremental.py [--records 20000] [--rate 0] [--warehouse sqlite:///x.db]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pyairtable import Api  # noqa: E402

from app.extractors import AirtableExtractor  # noqa: E402
from app.sync.services import RunServices  # noqa: E402
from app.warehouses import warehouse_for_url  # noqa: E402
from app.workflows import ETLWorkflow  # noqa: E402
from sandbox import SandboxConfig, build_base, run_sandbox  # noqa: E402

BASE_ID = "appBENCHINCREMENT1"
TOKEN = "bench-token"
TABLE = "Orders"
#: Each change source measured against the full merge: whether the token may manage webhooks
#: (the feed is chosen when it may) and the run options of each measured variant.
SOURCES: dict[str, tuple[bool, dict[str, dict[str, Any]]]] = {
    "window": (False, {
        "deletes due": {"incremental": True, "computed_every": 1000, "deletes_every": 1},
        "deletes not due": {"incremental": True, "computed_every": 1000, "deletes_every": 1000},
    }),
    "webhook": (True, {"": {"incremental": True}}),
}


def change_one_percent(api: Api, rng: random.Random) -> None:
    """Update, create and delete 1 % of the table's records (5:2:1), in API batches of 10."""
    table = api.table(BASE_ID, TABLE)
    ids = [r["id"] for r in table.all(fields=["Name"])]
    count = max(len(ids) // 100, 8)
    picked = rng.sample(ids, count * 6 // 8)
    updates, deletes = picked[: count * 5 // 8], picked[count * 5 // 8:]
    table.batch_update([{"id": i, "fields": {"Quantity": rng.randint(1, 999)}} for i in updates])
    table.batch_create([{"Name": f"bench {rng.random():.6f}"} for _ in range(count * 2 // 8)])
    table.batch_delete(deletes)


def measured(label: str, sandbox: Any, workflow: ETLWorkflow, counter: list[int],
             **options: Any) -> dict[str, Any]:
    """Run ``workflow`` with ``options``; its requests, bytes and seconds."""
    sandbox.stats.reset()
    counter[0] = 0
    started = time.perf_counter()
    report = workflow.run(services=RunServices(), **options)
    seconds = time.perf_counter() - started
    table = next(t for t in report.tables if t.table.name == TABLE)
    row = {"run": label, "requests": sandbox.stats.requests, "bytes": counter[0],
           "seconds": seconds, "created": table.created, "updated": table.updated,
           "deleted": table.deleted}
    print(f"{label:<40} {row['requests']:>8} {row['bytes']:>12} {seconds:>9.1f}"
          f" {table.created:>8} {table.updated:>8} {table.deleted:>8}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=0.0, help="sandbox requests/s (0: none)")
    parser.add_argument("--warehouse", default=None, help="warehouse URL (a temporary SQLite)")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()

    print(f"generating {args.records} records...", flush=True)
    base = build_base(BASE_ID, {TABLE: args.records}, seed=args.seed)
    url = args.warehouse or f"sqlite:///{tempfile.mkdtemp(prefix='bench-incremental-')}/w.db"
    warehouse = warehouse_for_url(url)
    rng = random.Random(args.seed)
    config = SandboxConfig(token=TOKEN, requests_per_second=args.rate or None)
    with run_sandbox([base], config) as sandbox:
        api = Api(TOKEN, endpoint_url=sandbox.url)
        counter = [0]

        def workflow() -> ETLWorkflow:
            extractor = AirtableExtractor(api_key=TOKEN, base_id=BASE_ID, api_url=sandbox.url,
                                          requests_per_second=args.rate or 1000)
            extractor.session.hooks["response"].append(
                lambda response, *a, **k: counter.__setitem__(0, counter[0] + len(response.content)))
            return ETLWorkflow(extractor, warehouse)

        print(f"{'run':<40} {'requests':>8} {'bytes':>12} {'seconds':>9}"
              f" {'created':>8} {'updated':>8} {'deleted':>8}")
        measured("first full sync", sandbox, workflow(), counter)
        rows: dict[str, dict[str, Any]] = {}
        for name, (webhooks, variants) in SOURCES.items():
            sandbox.config.webhooks_allowed = webhooks
            if webhooks:  # no webhook state yet: this run lists everything, from the hook's cursor
                measured(f"first run ({name}, full)", sandbox, workflow(), counter,
                         incremental=True)
            for variant, options in variants.items():
                time.sleep(1.1)  # the Date header counts whole seconds
                change_one_percent(api, rng)
                label = f"{name}, {variant}" if variant else name
                rows[label] = measured(f"incremental ({label})", sandbox, workflow(), counter,
                                       **options)
        change_one_percent(api, rng)
        full = measured("full merge", sandbox, workflow(), counter)
    print("\nincremental / full merge:")
    for label, row in rows.items():
        print(f"  {label:<28} requests {row['requests'] / full['requests']:6.1%}"
              f"   bytes {row['bytes'] / max(full['bytes'], 1):6.1%}"
              f"   seconds {row['seconds'] / full['seconds']:6.1%}")
    warehouse.dispose()


if __name__ == "__main__":
    main()
