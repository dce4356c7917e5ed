"""Security against real workers: JSON only, no secrets anywhere, registry-only names, and a
broker behind a password or TLS."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pickle
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import signature
from kombu import Connection, Producer

from app.extractors import AirtableExtractor
from app.warehouses import PostgresWarehouse, SQLiteWarehouse
from app.workflows import ETLWorkflow
from broker.celery_app import celery_app
from broker.producer import RunHandle, enqueue
from broker.status import TERMINAL, RunStatus, redis_client
from sandbox import SandboxConfig, build_base, run_sandbox
from tests.conftest import TEST_REDIS_URL
from tests.support.fixtures import BASE_ID
from tests.support.leaks import leaks
from tests.support.redis_servers import make_tls_files, password_redis, tls_redis
from tests.support.stack import running_stack
from tests.support.traffic import BrokerTap, scan_values
from tests.support.waiting import wait_for
from tests.support.workers import ROOT, BeatProcess, WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCHEDULES = Path(__file__).parent / "schedules_fixture"
REFUSED = "Refusing to deserialize untrusted content of type pickle"


#: Rich wraps and cuts tables to the terminal: scans must see every character of every cell.
WIDE = {"COLUMNS": "1000"}


def conveyor(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Any:
    """``python -m broker.cli ARGS`` as a separate process, output captured."""
    return subprocess.run([sys.executable, "-m", "broker.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, **WIDE, **(env or {})})


def shown(result: Any) -> str:
    """A command's whole output, for secret scans."""
    return f"$ {shlex.join(result.args[3:])}\n{result.stdout}\n{result.stderr}"




def etl_spec(run_id: str, extractor: str, warehouse: str | None = None) -> dict[str, Any]:
    """A plan_run message (a RunPlan) as the producer would write it, naming whatever the test
    likes."""
    return {"run_id": run_id, "workflow": "etl",
            "extractor": {"kind": extractor, "params": {}, "connection": "default"},
            "warehouse": {"kind": warehouse, "params": {}, "connection": "default"},
            "options": {"mode": "merge", "tables": []}, "batch_max_records": 500,
            "batch_max_bytes": 2_000_000, "overlap": "allow", "trigger": "manual", "v": 1}


class Workers:
    """Worker processes started by one test, every one stopped at the end, every log kept."""

    def __init__(self, env: dict[str, str], log_dir: Path, log_level: str = "info") -> None:
        self.env, self.log_dir, self.log_level = env, log_dir, log_level
        self.started: list[WorkerProcess] = []

    def start(self, queue: str, **env: str) -> WorkerProcess:
        worker = WorkerProcess(queue, {**self.env, **env}, self.log_dir, log_level=self.log_level)
        self.started.append(worker)
        return worker.start()

    def logs(self) -> dict[str, str]:
        return {f"log of {w.log_path.name}": w.log() for w in self.started}

    def stop_all(self) -> None:
        for worker in self.started:
            worker.stop()


@contextlib.contextmanager
def airtable_workers(
    tables: dict[str, int], token: str, env: dict[str, str], log_dir: Path, log_level: str = "info",
) -> Iterator[tuple[Any, Workers]]:
    """A sandbox with ``token`` and an extract and a load worker for it (broker from ``env``)."""
    base = build_base(BASE_ID, tables, seed=7)
    with run_sandbox([base], SandboxConfig(token=token, requests_per_second=0)) as sandbox:
        workers = Workers({
            "CELERY_BROKER_URL": TEST_REDIS_URL, "AIRTABLE_API_URL": sandbox.url,
            "AIRTABLE_BASE_ID": BASE_ID, "AIRTABLE_API_KEY": token,
            "AIRTABLE_REQUESTS_PER_SECOND": "1000", "AIRTABLE_MAX_ATTEMPTS": "2", **env,
        }, log_dir, log_level)
        try:
            workers.start("extract")
            workers.start("load")
            yield sandbox, workers
        finally:
            workers.stop_all()


# -- 1. JSON only ----------------------------------------------------------------------------

class Tripwire:
    """Unpickling this runs a shell command that creates ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, (f"touch {shlex.quote(self.path)}",)


def publish_pickled(queue: str, task: str, payload: Any, protocol: int) -> str:
    """Put a pickled Celery task message straight on ``queue`` (exchange ``conveyor``)."""
    task_id = uuid.uuid4().hex
    if protocol == 2:
        headers = {"lang": "py", "task": task, "id": task_id, "root_id": task_id,
                   "parent_id": None, "group": None, "retries": 0, "eta": None, "expires": None,
                   "timelimit": [None, None], "argsrepr": "(...)", "kwargsrepr": "{}",
                   "origin": "attacker@nowhere", "ignore_result": False}
        body: Any = ((payload,), {}, {"callbacks": None, "errbacks": None, "chain": None,
                                      "chord": None})
    else:  # protocol 1: everything in the (pickled) body
        headers = {}
        body = {"task": task, "id": task_id, "args": [payload], "kwargs": {}, "retries": 0}
    with Connection(TEST_REDIS_URL) as conn:
        Producer(conn).publish(body, exchange="conveyor", routing_key=queue, serializer="pickle",
                               headers=headers, correlation_id=task_id, declare=[])
    return task_id


def test_a_pickled_task_message_is_refused_and_the_workers_go_on(tmp_path):
    marker = tmp_path / "unpickled"
    armed = tmp_path / "control"
    pickle.loads(pickle.dumps(Tripwire(armed)))  # noqa: S301  (proves the payload would fire)
    assert armed.exists()
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    with running_stack({"Clients": 60}, SQLiteWarehouse(url), {"WAREHOUSE_URL": url},
                       tmp_path) as stack:
        sent = [
            publish_pickled("load", "conveyor.load_batch", Tripwire(marker), protocol=2),
            publish_pickled("load", "conveyor.load_batch", Tripwire(marker), protocol=1),
            publish_pickled("extract", "conveyor.plan_run", Tripwire(marker), protocol=2),
        ]
        load, extract = stack.workers["load"], stack.workers["extract"]
        wait_for(lambda: load.log().count(REFUSED) >= 2 and extract.log().count(REFUSED) >= 1,
                 30, f"the refusals in the worker logs\n{stack.logs()}")
        # Each refusal names the message it drops: its body holds the marker's path.
        assert str(marker) in load.log() and str(marker) in extract.log()

        client = redis.Redis.from_url(TEST_REDIS_URL)

        def still_queued() -> list[str]:
            held = [*client.lrange("load", 0, -1), *client.lrange("extract", 0, -1),
                    *client.hvals("unacked")]
            return [t for t in sent for m in held if t.encode() in m]

        wait_for(lambda: not still_queued(), 10, "the refused messages leaving Redis")
        handle = enqueue(ETLWorkflow(AirtableExtractor, SQLiteWarehouse), drop_tables=True)
        final = handle.wait(timeout=60)
        assert final["state"] == "succeeded"
        assert final["tables"][0]["loaded"] == 60
        assert stack.workers["load"].proc.poll() is None
    assert not marker.exists()


# -- 2. No secrets in Redis, on the wire, in logs, status or the run history -----------------

def test_no_secret_reaches_redis_logs_status_or_history(tmp_path, pg_schema):
    token = f"patConveyorTok{uuid.uuid4().hex[:12]}"
    pg_password = f"S3cretPgPw{uuid.uuid4().hex[:8]}"
    pg_url = f"postgresql://root:{pg_password}@127.0.0.1:5432/test"
    secrets = [token, pg_password]
    redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    env = {"WAREHOUSE_URL": pg_url, "WAREHOUSE_SCHEMA": pg_schema}
    # The producer's environment holds the secrets too, as a shared .env file would.
    cli_env = {**env, "AIRTABLE_API_KEY": token}
    seen: dict[str, str] = {}
    with BrokerTap(TEST_REDIS_URL) as tap, airtable_workers(
        {"Clients": 250, "Orders": 2000}, token, env, tmp_path, log_level="debug",
    ) as (sandbox, workers):
        # A: a good run through the CLI, Redis scanned while it goes.
        proc = subprocess.Popen(
            [sys.executable, "-m", "broker.cli", "enqueue", "airtable", "--drop-tables", "--wait",
             "--timeout", "90"], cwd=ROOT, env={**os.environ, **WIDE, **cli_env}, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        snapshots = []
        while proc.poll() is None:
            snapshots.append(scan_values(TEST_REDIS_URL))
            time.sleep(0.3)
        out, err = proc.communicate()
        assert proc.returncode == 0, f"{out}\n{err}\n{workers.logs()}"
        good = out.splitlines()[0]
        seen["conveyor enqueue --wait"] = out + err
        seen.update({f"Redis during run A #{i}": s for i, s in enumerate(snapshots)})

        # B: a run that fails (an unknown table), so errors reach the status and the history.
        failed = enqueue(ETLWorkflow(AirtableExtractor), tables=["Clients", "No Such Table"])
        assert failed.wait(timeout=60, raise_on_failure=False)["state"] == "failed"

        # C: Airtable refuses the workers' token.
        sandbox.config.token = "someone-elses-token"
        refused = enqueue(ETLWorkflow(AirtableExtractor), tables=["Clients"])
        refused_status = refused.wait(timeout=60, raise_on_failure=False)
        sandbox.config.token = token
        assert refused_status["state"] == "failed"
        assert "AIRTABLE_API_KEY" in refused_status["error"]

        # D: a load worker whose warehouse URL (with the password) points at a closed port.
        load = next(w for w in workers.started if w.queue == "load")
        load.stop()
        workers.start("load", WAREHOUSE_URL=f"postgresql://root:{pg_password}@127.0.0.1:1/test")
        unreachable = enqueue(ETLWorkflow(AirtableExtractor), tables=["Clients"])

        def retrying_step() -> dict[str, Any] | None:
            steps = unreachable.status()["steps"]
            return next((s for s in steps if s["state"] == "retrying"), None)

        step = wait_for(retrying_step, 30, f"a retrying step\n{workers.logs()}")
        assert "root:***@127.0.0.1:1" in step["error"]  # the URL is shown, masked
        wait_for(lambda: "retry: Retry in" in workers.started[-1].log(), 10, "the retry log line")

        runs = [good, failed.id, refused.id, unreachable.id]
        for run_id in runs:
            seen[f"conveyor status {run_id} --json"] = shown(
                conveyor("status", run_id, "--json", env=cli_env))
            seen[f"conveyor status {run_id}"] = shown(conveyor("status", run_id, env=cli_env))
            seen[f"RunHandle({run_id}).status()"] = json.dumps(RunHandle(run_id).status())
        listing = conveyor("runs", env=cli_env)
        assert good in listing.stdout
        seen["conveyor runs"] = shown(listing)
        seen["Redis after the runs"] = scan_values(TEST_REDIS_URL)
    seen["broker traffic (MONITOR, bodies decoded)"] = tap.decoded_text()
    seen.update(workers.logs())
    warehouse = PostgresWarehouse("postgresql://root@127.0.0.1:5432/test", schema=pg_schema)
    try:
        history = warehouse.list_runs(limit=20)
    finally:
        warehouse.dispose()
    assert {good, failed.id} <= {r["run_id"] for r in history}
    seen["warehouse run history"] = json.dumps(history, default=str)

    assert "Airtable rejected AIRTABLE_API_KEY" in seen["Redis after the runs"]
    assert "root:***@127.0.0.1:1" in seen["Redis after the runs"]
    assert len(tap.commands) > 100 and "DEBUG/MainProcess" in workers.started[0].log()
    # The scan finds a secret in what it scans, even base64-encoded as kombu stores bodies.
    planted = base64.b64encode(json.dumps({"token": token}).encode()).decode()
    assert leaks({"control": seen["Redis after the runs"] + planted}, [token])
    assert leaks(seen, secrets) == []


# -- 3. A password-protected Redis -----------------------------------------------------------

def test_a_password_protected_redis_works_and_its_password_stays_hidden(tmp_path):
    password = f"RedisPw{uuid.uuid4().hex[:12]}"
    with password_redis(password) as url:
        port = url.rsplit(":", 1)[1].split("/")[0]
        env = {"CELERY_BROKER_URL": url,
               "WAREHOUSE_URL": f"sqlite:///{tmp_path / 'warehouse.db'}"}
        with airtable_workers({"Clients": 120, "Orders": 700}, "tok-pw-test", env,
                              tmp_path) as (_, workers):
            done = conveyor("enqueue", "airtable", "--drop-tables", "--wait", "--timeout", "60",
                            env=env)
            assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{workers.logs()}"
            run_id = done.stdout.splitlines()[0]
            status = conveyor("status", run_id, "--json", env=env)
            assert json.loads(status.stdout)["state"] == "succeeded"
            assert [t["loaded"] for t in json.loads(status.stdout)["tables"]] == [120, 700]
            listing = conveyor("runs", env=env)
            assert run_id in listing.stdout
            # Errors: the broker unreachable (a URL with the password), a wrong password.
            closed = url.replace(f":{port}/", ":1/")
            down = conveyor("status", run_id, env={"CELERY_BROKER_URL": closed})
            wrong = conveyor("status", run_id, env={
                "CELERY_BROKER_URL": url.replace(password, password + "Wrong")})
            assert down.returncode != 0 and wrong.returncode != 0
            assert "Connection refused" in down.stderr
            assert "invalid" in wrong.stderr.lower() or "auth" in wrong.stderr.lower()
            lost = WorkerProcess("load", {**workers.env, "CELERY_BROKER_URL": closed}, tmp_path)
            workers.started.append(lost)
            with pytest.raises(RuntimeError, match="Cannot connect to redis://:\\*\\*@"):
                lost.start(timeout=8)
        banner = workers.started[0].log()
        assert f"redis://:**@127.0.0.1:{port}/0" in banner  # Celery's banner masks it
        seen = {**workers.logs(), "enqueue --wait": shown(done), "status --json": shown(status),
                "runs": shown(listing), "status, broker down": shown(down),
                "status, wrong password": shown(wrong)}
    assert leaks(seen, [password]) == []


# -- 4. TLS (rediss://) ----------------------------------------------------------------------

@pytest.fixture
def tls_server(tmp_path):
    """A TLS-only redis-server: its CA and server files, its bare rediss:// URL and port."""
    with contextlib.ExitStack() as stack:
        try:
            tls = make_tls_files(tmp_path)
            bare, port = stack.enter_context(tls_redis(tls))
        except (FileNotFoundError, RuntimeError, subprocess.CalledProcessError) as exc:
            pytest.skip(f"no TLS-capable redis-server or openssl here: {exc}")
        yield tls, bare, port


def test_a_tls_only_redis_carries_runs_status_and_beat(tmp_path, tls_server):
    tls, bare, port = tls_server
    url = f"{bare}?ssl_cert_reqs=required&ssl_ca_certs={tls.ca}"
    env = {"CELERY_BROKER_URL": url, "WAREHOUSE_URL": f"sqlite:///{tmp_path / 'w.db'}",
           "PYTHONPATH": str(SCHEDULES)}
    with airtable_workers({"Clients": 120, "Orders": 700}, "tok-tls-test", env,
                          tmp_path) as (_, workers):
        assert f"rediss://127.0.0.1:{port}/0" in workers.started[0].log()
        done = conveyor("enqueue", "airtable", "--drop-tables", "--wait", "--timeout", "60",
                        env=env)
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{workers.logs()}"
        status = json.loads(conveyor("status", done.stdout.splitlines()[0], "--json",
                                     env=env).stdout)
        assert status["state"] == "succeeded"
        assert [t["loaded"] for t in status["tables"]] == [120, 700]

        # Celery's spelling of the option, and a bare rediss:// URL trusting the CA through
        # the system store (SSL_CERT_FILE), work for the producer and the status client too.
        celery_spelling = url.replace("=required", "=CERT_REQUIRED")
        again = conveyor("enqueue", "airtable", "--tables", "Clients", "--wait",
                         "--timeout", "60", env={**env, "CELERY_BROKER_URL": celery_spelling})
        assert again.returncode == 0, again.stderr
        bare_run = conveyor("enqueue", "airtable", "--tables", "Orders", "--wait",
                            "--timeout", "60",
                            env={**env, "CELERY_BROKER_URL": bare, "SSL_CERT_FILE": str(tls.ca)})
        assert bare_run.returncode == 0, bare_run.stderr

        # RedBeat keeps its schedule and lock in the same Redis, over TLS too.
        beat = BeatProcess({**workers.env, "CONVEYOR_SCHEDULES": "conveyor_test_schedules:FAST"},
                           tmp_path).start()
        store = RunStatus(redis_client(url))
        try:
            wait_for(lambda: [r for r in store.recent(50)
                              if r.get("trigger") == "schedule:fast-clients"
                              and r["state"] == "succeeded"],
                     30, f"a scheduled run over TLS\n{beat.log()}")
        finally:
            beat.stop()


def test_a_bare_rediss_url_verifies_the_server_certificate(tls_server, monkeypatch):
    """Without our CA the broker connection, the result backend and the status client refuse
    the server: no ``rediss://`` client silently skips certificate checks."""
    from celery import Celery

    from app.settings import Settings
    from broker.config import celery_config

    _, bare, _ = tls_server
    # Celery reads CELERY_BROKER_URL itself, over its configuration.
    monkeypatch.setenv("CELERY_BROKER_URL", bare)
    app = Celery("tls-check", config_source=celery_config(Settings()), set_as_current=False)
    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"), \
            app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=0)
    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        app.backend.client.ping()
    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        redis_client(bare).ping()


# -- 5. Names resolve only through the registry ----------------------------------------------

def test_messages_can_only_name_registered_classes(tmp_path):
    tripwire = tmp_path / "imported"
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    env = {"WAREHOUSE_URL": url, "CONVEYOR_TRIPWIRE": str(tripwire)}
    with running_stack({"Clients": 30}, SQLiteWarehouse(url), env, tmp_path) as stack:
        store = RunStatus()
        bad_names = {"os-system": "os:system",
                     "dotted": "tests.support.import_tripwire:Extractor"}
        for run_id, name in bad_names.items():
            store.create_run(run_id, "etl", {})
            signature("conveyor.plan_run", args=(etl_spec(run_id, name),),
                      app=celery_app).apply_async()
        store.create_run("step", "tests.support.import_tripwire:Workflow", {})
        signature("conveyor.run_step", args=(None, "step", "tests.support.import_tripwire:Workflow",
                                             "fetch"), app=celery_app, queue="load").apply_async()
        store.create_run("warehouse", "etl", {})
        signature("conveyor.plan_run", args=(
            etl_spec("warehouse", "airtable", "tests.support.import_tripwire:Warehouse"),),
            app=celery_app).apply_async()

        def final(run_id: str) -> dict[str, Any]:
            return wait_for(lambda: (s := store.get(run_id)) and s["state"] in TERMINAL and s,
                            30, f"run {run_id} to finish\n{stack.logs()}")

        for run_id, name in bad_names.items():
            assert final(run_id)["error"] == f"unknown extractor {name!r}: registered are airtable"
        step = final("step")
        assert step["state"] == "failed"
        assert "unknown workflow 'tests.support.import_tripwire:Workflow'" in step["error"]
        refused = final("warehouse")
        assert refused["state"] == "failed"
        assert "unknown warehouse 'tests.support.import_tripwire:Warehouse'" in refused["error"]
        extract_log = stack.workers["extract"].log()
        assert "unknown extractor" in extract_log and "os:system" in extract_log
    assert not tripwire.exists(), tripwire.read_text()


def test_a_run_naming_an_unregistered_warehouse_ends_failed_with_the_reason(tmp_path):
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    with running_stack({"Clients": 10}, SQLiteWarehouse(url), {"WAREHOUSE_URL": url},
                       tmp_path) as stack:
        store = RunStatus()
        store.create_run("bad-warehouse", "etl", {})
        signature("conveyor.plan_run", args=(etl_spec("bad-warehouse", "airtable", "os:system"),),
                  app=celery_app).apply_async()
        final = wait_for(lambda: (s := store.get("bad-warehouse")) and s["state"] in TERMINAL and s,
                         30, f"the run to end\n{stack.logs()}")
    assert final.get("state") == "failed", final.get("state")
    assert "unknown warehouse 'os:system'" in final.get("error", "")
