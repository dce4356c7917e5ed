"""Procfile: the four processes, and ``honcho start extract load`` running a real sync."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from app.extractors import AirtableExtractor
from app.warehouses import SQLiteWarehouse
from app.workflows import ETLWorkflow
from broker.producer import enqueue
from tests.conftest import TEST_REDIS_URL
from tests.deploy.files import PROCFILE, ROOT, procfile
from tests.support.fixtures import BASE_ID, TOKEN, extractor_for, sandbox_with

COMMANDS = {
    "extract": "celery -A workers worker -Q extract -n extract@%h -l info",
    "load": "celery -A workers worker -Q load -n load@%h -l info",
    "beat": "celery -A workers beat -l info",
    "flower": "celery -A workers flower --port=5555",
}
TABLES = {"Empty": 0, "Clients": 250, "Orders": 1200}


def test_the_procfile_runs_the_four_processes():
    assert procfile() == COMMANDS


def test_honcho_accepts_the_procfile():
    result = subprocess.run([sys.executable, "-m", "honcho", "check", "-f", str(PROCFILE)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "extract, load, beat, flower" in result.stderr + result.stdout


# -- honcho start extract load -------------------------------------------------------------

class Honcho:
    """``honcho start`` in a session of its own, its output in a log file."""

    def __init__(self, env_file: Path, log_path: Path, *processes: str) -> None:
        self.log_path = log_path
        # The interpreter's directory first, so the Procfile's `celery` is this environment's
        # (CI runs pytest through the venv's python without activating it).
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        env = {**os.environ, "PATH": path, "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "honcho", "start", "-f", str(PROCFILE),
                   "-e", str(env_file), "--no-colour", *processes]
        self.log = open(log_path, "wb")  # noqa: SIM115  (owned by the process)
        self.proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.children: set[int] = set()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def lines_of(self, process: str) -> list[str]:
        return [line for line in self.output().splitlines() if f" {process}.1 " in line]

    def wait_ready(self, processes: tuple[str, ...], timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.children |= child_pids(self.proc.pid)
            if self.proc.poll() is not None:
                raise AssertionError(f"honcho exited {self.proc.returncode}:\n{self.output()}")
            if all(any(" ready." in line for line in self.lines_of(p)) for p in processes):
                return
            time.sleep(0.2)
        raise AssertionError(f"not ready after {timeout} s:\n{self.output()}")

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM honcho (it stops its processes, SIGKILLing them after 5 s); then SIGKILL."""
        self.children |= child_pids(self.proc.pid)
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        # honcho starts each process in a session of its own: reach them if honcho could not
        for pgid in self.children:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()
        return self.proc.returncode


def child_pids(pid: int) -> set[int]:
    try:
        return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    except OSError:
        return set()


@pytest.mark.integration
@pytest.mark.slow
def test_honcho_start_extract_load_syncs_a_base(tmp_path):
    warehouse_url = f"sqlite:///{tmp_path / 'w.db'}"
    # Workers must start on an empty database: kombu keeps its queue bindings in Redis.
    redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    with sandbox_with(TABLES) as (sandbox, base):
        env_file = tmp_path / "honcho.env"
        env_file.write_text("\n".join(f"{k}={v}" for k, v in {
            "CELERY_BROKER_URL": TEST_REDIS_URL,
            "AIRTABLE_API_URL": sandbox.url,
            "AIRTABLE_BASE_ID": BASE_ID,
            "AIRTABLE_API_KEY": TOKEN,
            "AIRTABLE_REQUESTS_PER_SECOND": "1000",
            "WAREHOUSE_URL": warehouse_url,
            # empty, so that a developer's own .env cannot narrow or redirect the run
            "AIRTABLE_TABLES": "",
            "CELERY_RESULT_BACKEND": "",
            "CONVEYOR_IMPORTS": "",
        }.items()) + "\n")
        honcho = Honcho(env_file, tmp_path / "honcho.log", "extract", "load")
        try:
            honcho.wait_ready(("extract", "load"))
            handle = enqueue(ETLWorkflow(AirtableExtractor, SQLiteWarehouse), drop_tables=True)
            try:
                final = handle.wait(timeout=120)
            except Exception:
                print(honcho.output()[-6000:])
                raise
        finally:
            returncode = honcho.stop()
            redis.Redis.from_url(TEST_REDIS_URL).flushdb()
        refs = extractor_for(sandbox).list_tables()

    assert final["state"] == "succeeded"
    warehouse = SQLiteWarehouse(warehouse_url)
    try:
        landed = {ref.name: warehouse.row_count(ref) for ref in refs}
    finally:
        warehouse.dispose()
    assert landed == TABLES
    assert {t.name: len(t.records) for t in base.tables} == TABLES
    # each pool ran under its Procfile name, with its own node name
    assert any("extract@" in line for line in honcho.lines_of("extract"))
    assert any("load@" in line for line in honcho.lines_of("load"))
    # honcho stopped both workers when told to; none is left behind
    assert returncode is not None
    assert not [pid for pid in honcho.children if Path(f"/proc/{pid}").exists()
                and "zombie" not in Path(f"/proc/{pid}/status").read_text()]
