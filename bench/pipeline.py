"""Whole-pipeline rate, no rate limit: Conveyor distributed and in-process against a naive loop.

The sandbox runs in its own process without a rate limit or latency, serving one base of
``--records`` records in two tables (Orders, and Clients with a twentieth of them). Measured
in the same run, each into its own SQLite file:

* baseline: a naive single-process loop, pyairtable's ``Table.iterate()`` page by page into one
  SQLAlchemy executemany per page of ``(id, createdTime, fields as JSON text)``: no typing, no
  batch bookkeeping, no rejection handling, nothing to resume;
* Conveyor in-process: ``ETLWorkflow(...).run(drop_tables=True)``, first sync (one listing per
  table) and second sync (Orders in creation-time partitions, paged one after another);
* Conveyor distributed: one extract and one load Celery worker, ``enqueue(...).wait()``, first
  and second sync (the second pages Orders' partitions in parallel on the extract worker's
  ``--concurrency`` processes);
* dlt (the ``bench`` extra): one ``dlt.pipeline`` over the same pyairtable pages into a SQLite
  file through dlt's sqlalchemy destination, records flattened to one column per field and
  nested values kept as JSON (Conveyor's table shape), run twice (first run, then a second
  ``replace`` run); only when dlt is installed. See ``with_dlt``.

The modes run ``--rounds`` times (default 3) in turn, each round into new SQLite files, and the
summary gives the median of the rounds' ratios: on a shared 2-core host one run of each mode
moved by 2x between runs minutes apart. Every mode's rate is records over wall time from the
run's start to its last row written, and
is printed with its ratio to the naive loop. Targets: ≥ 0.8× the naive loop, ≥ 2× dlt.

    pip install -e '.[bench]'   # dlt, for the dlt baseline
    python bench/pipeline.py [--records 21000] [--concurrency 2] [--rounds 3]
        [--redis redis://127.0.0.1:6379/7]   (the Redis DB is flushed)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.support import BASE_ID, TOKEN, SandboxProcess, SandboxSpec, Workers  # noqa: E402


def naive(api_url: str, tables: list[str], db: str) -> int:
    """pyairtable → SQLAlchemy executemany, one page at a time; returns records written."""
    import sqlalchemy as sa
    from pyairtable import Api

    engine = sa.create_engine(db)
    meta = sa.MetaData()
    written = 0
    api = Api(TOKEN, endpoint_url=api_url)
    for name in tables:
        table = sa.Table(name, meta, sa.Column("id", sa.Text, primary_key=True),
                         sa.Column("created_time", sa.Text), sa.Column("fields", sa.Text))
        meta.create_all(engine)
        with engine.begin() as conn:
            for page in api.table(BASE_ID, name).iterate(page_size=100):
                conn.execute(table.insert(), [
                    {"id": r["id"], "created_time": r["createdTime"],
                     "fields": json.dumps(r["fields"], default=str)} for r in page])
                written += len(page)
    engine.dispose()
    return written


def dlt_installed() -> bool:
    """Whether dlt (the ``bench`` extra) can be imported; imported here, outside any timing."""
    try:
        import dlt  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return False
    return True


def with_dlt(api_url: str, tables: list[str], tmp: Path, runs: int = 2) -> list[tuple[int, float]]:
    """The same pages through one dlt pipeline into a SQLite file, ``runs`` times in a row.

    Like for like with Conveyor's tables: pyairtable's ``iterate()`` (the naive loop's client)
    pages each table; each record becomes one row of ``id``, ``created_time`` and one column
    per field (dlt infers the types, as Conveyor does); ``max_table_nesting=0`` keeps lists and
    objects (attachments, links, multi-selects) as JSON in their column, as Conveyor stores
    them, instead of dlt's default child tables; ``write_disposition="replace"`` with the
    primary key ``id`` is ``run(drop_tables=True)``. dlt's sqlalchemy destination writes the
    SQLite file (dataset ``main``: the file itself, no attached database). Everything else is
    dlt's default (one normalize process, its load threads, typed-jsonl load files).

    Returns:
        (rows in the SQLite tables after the run, seconds) per run: extract, normalize and
        load, from ``pipeline.run`` being called to it returning.
    """
    import dlt
    import sqlalchemy as sa
    from pyairtable import Api

    api = Api(TOKEN, endpoint_url=api_url)

    def resource(name: str):  # type: ignore[no-untyped-def]
        @dlt.resource(name=name, write_disposition="replace", primary_key="id",
                      max_table_nesting=0)
        def pages():  # type: ignore[no-untyped-def]
            for page in api.table(BASE_ID, name).iterate(page_size=100):
                yield [{"id": r["id"], "created_time": r["createdTime"], **r["fields"]}
                       for r in page]
        return pages

    db = f"sqlite:///{tmp / 'dlt.db'}"
    pipeline = dlt.pipeline(pipeline_name="bench", pipelines_dir=str(tmp / "dlt"),
                            destination=dlt.destinations.sqlalchemy(db), dataset_name="main")
    engine = sa.create_engine(db)
    results = []
    for _ in range(runs):
        started = time.perf_counter()
        pipeline.run([resource(name) for name in tables])
        seconds = time.perf_counter() - started
        with engine.connect() as conn:
            rows = sum(conn.execute(sa.text(f'SELECT COUNT(*) FROM "{name.lower()}"')).scalar_one()
                       for name in tables)
        results.append((rows, seconds))
    engine.dispose()
    return results


def one_round(args: argparse.Namespace, tables: dict[str, int], api_url: str, tmp: Path,
              show: Callable[[str, int, float], None]) -> None:
    """Every mode once, each into its own new SQLite file under ``tmp``."""
    started = time.perf_counter()
    written = naive(api_url, list(tables), f"sqlite:///{tmp / 'naive.db'}")
    show("naive loop", written, time.perf_counter() - started)

    from app.extractors import AirtableExtractor
    from app.warehouses import SQLiteWarehouse
    from app.workflows import ETLWorkflow

    local = SQLiteWarehouse(f"sqlite:///{tmp / 'in_process.db'}")
    for run in ("first sync", "second sync (partitions)"):
        started = time.perf_counter()
        report = ETLWorkflow(AirtableExtractor(api_key=TOKEN, base_id=BASE_ID,
                                               api_url=api_url, requests_per_second=10_000),
                             local).run(drop_tables=True)
        show(f"in-process, {run}", sum(t.loaded for t in report.tables),
             time.perf_counter() - started)
    local.dispose()

    url = f"sqlite:///{tmp / 'workers.db'}"
    env = {"AIRTABLE_API_URL": api_url, "AIRTABLE_BASE_ID": BASE_ID,
           "AIRTABLE_API_KEY": TOKEN, "AIRTABLE_REQUESTS_PER_SECOND": "10000",
           "WAREHOUSE_URL": url}
    os.environ.update(env)
    from broker.producer import enqueue

    with Workers([("extract", args.concurrency), ("load", 1)], args.redis, env, tmp):
        for run in ("first sync", "second sync (partitions)"):
            started = time.perf_counter()
            final = enqueue(ETLWorkflow(AirtableExtractor, SQLiteWarehouse(url)),
                            drop_tables=True).wait(timeout=3600)
            show(f"distributed, {run}", sum(t["loaded"] for t in final["tables"]),
                 time.perf_counter() - started)

    if dlt_installed():
        os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"  # no network call inside the timing
        for run, (rows, seconds) in zip(("first run", "second run (replace)"),
                                        with_dlt(api_url, list(tables), tmp), strict=True):
            show(f"dlt, {run}", rows, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=21_000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3,
                        help="every mode once per round; medians of the rounds' ratios")
    parser.add_argument("--redis", default=os.environ.get(
        "CONVEYOR_BENCH_REDIS_URL", "redis://127.0.0.1:6379/7"))
    args = parser.parse_args()
    clients = args.records // 21
    tables = {"Clients": clients, "Orders": args.records - clients}
    total = sum(tables.values())
    os.environ["CELERY_BROKER_URL"] = args.redis
    spec = SandboxSpec(tables=tables, requests_per_second=0)
    print(f"{total} records ({tables}), no limit; {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}; {args.rounds} rounds")
    rounds: list[dict[str, float]] = []

    def show(name: str, records: int, seconds: float) -> None:
        rates = rounds[-1]
        rates[name] = records / seconds
        base = rates.get("naive loop")
        ratio = f"{rates[name] / base:.2f}× naive" if base else "baseline"
        print(f"  {name:<36} {rates[name]:>8,.0f} rec/s   {ratio}", flush=True)

    with tempfile.TemporaryDirectory() as tmp_dir, SandboxProcess(spec) as sandbox:
        for number in range(1, args.rounds + 1):
            print(f"round {number} (load {os.getloadavg()[0]:.1f})", flush=True)
            rounds.append({})
            round_dir = Path(tmp_dir) / f"round-{number}"
            round_dir.mkdir()
            one_round(args, tables, sandbox.url, round_dir, show)
    if not dlt_installed():
        print("dlt: not installed, not measured (pip install -e '.[bench]')")
    print(f"medians of {len(rounds)} rounds (each ratio against the same round's baseline):")
    for name in rounds[0]:
        against = [("naive loop", "naive"), ("dlt, first run", "dlt")]
        ratios = ", ".join(
            f"{statistics.median(r[name] / r[base] for r in rounds):.2f}× {label}"
            for base, label in against if name != base and base in rounds[0])
        print(f"  {name:<36} {statistics.median(r[name] for r in rounds):>8,.0f} rec/s   {ratios}")


if __name__ == "__main__":
    main()
