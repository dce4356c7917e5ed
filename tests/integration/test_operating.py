"""Operating Conveyor on real workers: ``conveyor check``, exit codes and rejected records,
metrics that match the source, and JSON logs without secrets."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from app.warehouses import SQLiteWarehouse
from broker.local_stack import free_port
from sandbox import SandboxConfig, build_hostile_base, run_sandbox
from tests.conftest import TEST_PG_URL, TEST_REDIS_URL
from tests.support.fixtures import TOKEN
from tests.support.leaks import leaks
from tests.support.stack import running_stack
from tests.support.workers import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def conveyor(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "broker.cli", *args], cwd=ROOT,
                          env={**os.environ, "COLUMNS": "100", **env}, capture_output=True, text=True,
                          timeout=300)


def check_lines(result: subprocess.CompletedProcess[str]) -> dict[str, tuple[str, str]]:
    """``name -> (level, message)`` from ``conveyor check``'s output."""
    found = {}
    for line in result.stdout.splitlines():
        level, rest = line.split(None, 1)
        name, message = rest.split(": ", 1)
        found[name] = (level, message)
    return found


def test_check_names_each_broken_part_in_one_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    with running_stack({"Clients": 20}, SQLiteWarehouse(url), {"WAREHOUSE_URL": url}, tmp_path) as stack:
        good = conveyor("check", env=stack.env)
        assert good.returncode == 0, good.stdout + good.stderr
        lines = check_lines(good)
        assert {name for name, (level, _) in lines.items() if level == "ok"} >= {
            "settings", "airtable", "warehouse", "redis", "queue extract", "queue load", "versions",
            "schedules"}

        wrong_token = conveyor("check", env={**stack.env, "AIRTABLE_API_KEY": "not-the-token"})
        assert wrong_token.returncode == 1
        assert check_lines(wrong_token)["airtable"] == (
            "error", "Airtable rejected AIRTABLE_API_KEY (401 AUTHENTICATION_REQUIRED): check the token")

        no_warehouse = conveyor("check", env={**stack.env,
                                              "WAREHOUSE_URL": "postgresql://root@127.0.0.1:1/test"})
        assert no_warehouse.returncode == 1
        level, message = check_lines(no_warehouse)["warehouse"]
        assert level == "error"
        assert message.startswith("WAREHOUSE_URL postgresql+psycopg://root@127.0.0.1:1/test is unreachable")

        stack.workers["load"].stop()
        no_load = conveyor("check", env=stack.env)
        assert no_load.returncode == 1
        assert check_lines(no_load)["queue load"][0] == "error"
        assert "no worker consumes the load queue" in check_lines(no_load)["queue load"][1]
        assert check_lines(no_load)["queue extract"][0] == "ok"


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_check_warns_about_a_redis_that_evicts(tmp_path):
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--maxmemory-policy", "allkeys-lru",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        env = {"CELERY_BROKER_URL": f"redis://127.0.0.1:{port}/0",
               "WAREHOUSE_URL": f"sqlite:///{tmp_path / 'w.db'}"}
        result = conveyor("check", env=env)
        lines = check_lines(result)
        assert lines["redis-eviction"] == ("warning", "maxmemory-policy is allkeys-lru: a full Redis would "
                                           "evict queued tasks and run status; set maxmemory-policy "
                                           "noeviction")
        strict = conveyor("check", "--strict", "--json", env=env)
        assert strict.returncode == 1
        assert {"name": "redis-eviction", "level": "warning"}.items() <= next(
            c for c in json.loads(strict.stdout) if c["name"] == "redis-eviction").items()
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_run_with_rejected_records_exits_2_lists_them_and_shows_in_metrics(tmp_path, pg_schema):
    """On PostgreSQL the hostile base's five NUL records are rejected: the run says so."""
    base = build_hostile_base()
    redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    with run_sandbox([base], SandboxConfig(token=TOKEN, requests_per_second=0)) as sandbox:
        env = {"CELERY_BROKER_URL": TEST_REDIS_URL, "AIRTABLE_API_URL": sandbox.url,
               "AIRTABLE_BASE_ID": base.id, "AIRTABLE_API_KEY": TOKEN,
               "AIRTABLE_REQUESTS_PER_SECOND": "1000", "WAREHOUSE_URL": TEST_PG_URL,
               "WAREHOUSE_SCHEMA": pg_schema, "CONVEYOR_LOG_FORMAT": "json"}
        workers = [WorkerProcess(q, env, tmp_path, concurrency=2).start() for q in ("extract", "load")]
        try:
            result = conveyor("enqueue", "airtable", "--drop-tables", "--wait", env=env)
            logs = {w.queue: w.log() for w in workers}
        finally:
            for worker in workers:
                worker.stop()
        assert result.returncode == 2, result.stdout + result.stderr + str(logs)
        run_id = result.stdout.splitlines()[0]
        assert f"run {run_id}: succeeded_with_rejections" in result.stdout
        assert "5 records rejected:" in result.stdout
        assert "holds a NUL character" in result.stdout
        assert f"all of them: conveyor rejected {run_id}" in result.stdout

        listed = conveyor("rejected", run_id, env=env)
        assert listed.returncode == 0, listed.stderr
        rows = [line.split("\t") for line in listed.stdout.splitlines()]
        text = next(t for t in base.tables if t.name == "Text")
        nul_ids = {r["id"] for r in text.records if "\x00" in json.dumps(r["fields"], ensure_ascii=False)
                   or "\\u0000" in json.dumps(r["fields"])}
        assert {row[1] for row in rows} == nul_ids and len(rows) == 5
        assert all(row[0] == "Text" and "NUL" in row[2] for row in rows)

        metrics = conveyor("metrics", env=env)
        assert metrics.returncode == 0, metrics.stderr
        values = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                  for line in metrics.stdout.splitlines() if line and not line.startswith("#")}
        for table in base.tables:
            loaded = values[f'conveyor_records_loaded_total{{table="{table.name}"}}']
            rejected = values[f'conveyor_records_rejected_total{{table="{table.name}"}}']
            assert loaded + rejected == len(table.records), table.name
            assert values[f'conveyor_records_extracted_total{{table="{table.name}"}}'] == len(table.records)
        assert values['conveyor_records_rejected_total{table="Text"}'] == 5
        assert values['conveyor_runs{state="succeeded_with_rejections"}'] == 1
        requests = [v for k, v in values.items() if k.startswith("conveyor_api_requests_total{")]
        assert requests and requests[0] >= 1 + len(base.tables)
        status = json.loads(conveyor("status", run_id, "--json", env=env).stdout)
        assert values["conveyor_batch_load_seconds_count"] == sum(t["batches"] for t in status["tables"])
        assert values['conveyor_batch_load_seconds_bucket{le="+Inf"}'] == sum(
            t["batches"] for t in status["tables"])
        assert values['conveyor_queue_depth{queue="load"}'] == 0

    for queue, text_log in logs.items():
        records = [json.loads(line) for line in text_log.splitlines() if line.strip()]
        assert any(r.get("run_id") == run_id and "table" in r for r in records), queue
        assert leaks({queue: text_log}, [TOKEN]) == []
    assert any("batch" in json.loads(line) for line in logs["load"].splitlines() if line.strip())


def test_an_in_process_run_with_rejections_exits_2_and_conveyor_rejected_reads_its_history(
        tmp_path, pg_schema):
    base = build_hostile_base()
    with run_sandbox([base], SandboxConfig(token=TOKEN, requests_per_second=0)) as sandbox:
        env = {"AIRTABLE_API_URL": sandbox.url, "AIRTABLE_BASE_ID": base.id, "AIRTABLE_API_KEY": TOKEN,
               "WAREHOUSE_URL": TEST_PG_URL, "WAREHOUSE_SCHEMA": pg_schema}
        result = conveyor("run", "airtable", "--tables", "Text", env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    run_id = result.stdout.splitlines()[0]
    assert f"run {run_id}: succeeded_with_rejections" in result.stdout
    assert "5 records rejected:" in result.stdout
    listed = conveyor("rejected", run_id, "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 5
    unknown = conveyor("rejected", "f" * 32, env=env)
    assert unknown.returncode == 1 and unknown.stderr.startswith("error: unknown run")
