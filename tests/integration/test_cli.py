"""The ``conveyor`` command as an operator runs it: one meaning per flag, errors naming their
source, ids and names never cut, one line when a service is down, clean help, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.sync.states import FINAL_RUN_STATES, RunState
from tests.conftest import TEST_REDIS_URL
from tests.support.fixtures import BASE_ID, TOKEN, sandbox_with

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration
DOWN_BROKER = "redis://127.0.0.1:1/0"


def conveyor(*args: str, columns: int = 80, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "COLUMNS": str(columns), "CELERY_BROKER_URL": TEST_REDIS_URL, **env}
    return subprocess.run([sys.executable, "-m", "broker.cli", *args], cwd=ROOT, env=full,
                          capture_output=True, text=True, timeout=120)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


@pytest.fixture
def sandbox_env():
    with sandbox_with({"Clients": 30}) as (sandbox, _):
        yield {"AIRTABLE_API_URL": sandbox.url, "AIRTABLE_BASE_ID": BASE_ID, "AIRTABLE_API_KEY": TOKEN}


def test_help_is_clean_text():
    result = conveyor("--help")
    assert result.returncode == 0
    assert "``" not in result.stdout and "[bold" not in result.stdout
    assert result.stdout.startswith("Usage: conveyor")
    assert "Exit codes: 0 succeeded, 1 failed" in " ".join(result.stdout.split())


@pytest.mark.parametrize("command", ["run", "enqueue"])
def test_run_and_enqueue_take_the_same_warehouse_and_tables_options(command):
    text = " ".join(conveyor(command, "--help", columns=200).stdout.split())
    assert ("--warehouse <str> Warehouse: a URL (sqlite:///file.db, postgresql://…) "
            "or a registered name") in text
    assert "--tables <str> Comma-separated table names or ids" in text


@pytest.mark.parametrize("command", ["run", "enqueue"])
def test_a_bad_warehouse_flag_is_blamed_on_the_flag(command, sandbox_env):
    line = one_error_line(conveyor(command, "airtable", "--warehouse", "nosuchdb:///x.db", **sandbox_env))
    assert line.startswith("error: --warehouse nosuchdb:///x.db names an unsupported database"), line
    assert "WAREHOUSE_URL" not in line
    line = one_error_line(conveyor(command, "airtable", "--warehouse", "oracle", **sandbox_env))
    assert "--warehouse 'oracle' is neither a URL nor a registered warehouse (" in line


def test_the_warehouse_flag_takes_a_url_or_a_name_on_run(sandbox_env, tmp_path):
    by_url = conveyor("run", "airtable", "--warehouse", f"sqlite:///{tmp_path / 'a.db'}", **sandbox_env)
    assert by_url.returncode == 0, by_url.stderr
    by_name = conveyor("run", "airtable", "--warehouse", "sqlite", **sandbox_env,
                       WAREHOUSE_URL=f"sqlite:///{tmp_path / 'b.db'}")
    assert by_name.returncode == 0, by_name.stderr
    assert (tmp_path / "a.db").exists() and (tmp_path / "b.db").exists()


def test_an_unknown_table_given_by_flag_is_blamed_on_the_flag(sandbox_env, tmp_path):
    line = one_error_line(conveyor("run", "airtable", "--tables", "Nope", **sandbox_env,
                                   WAREHOUSE_URL=f"sqlite:///{tmp_path / 'w.db'}"))
    assert line.startswith("error: --tables names unknown table 'Nope'"), line


def test_run_syncs_only_the_tables_given(tmp_path):
    with sandbox_with({"Clients": 30, "Orders": 20}) as (sandbox, _):
        env = {"AIRTABLE_API_URL": sandbox.url, "AIRTABLE_BASE_ID": BASE_ID, "AIRTABLE_API_KEY": TOKEN,
               "WAREHOUSE_URL": f"sqlite:///{tmp_path / 'w.db'}"}
        result = conveyor("run", "airtable", "--tables", "Orders", **env)
    assert result.returncode == 0, result.stderr
    assert "Orders" in result.stdout and "Clients" not in result.stdout


def test_runs_and_status_never_cut_run_ids_or_table_names(redis_url):
    from app.contracts import TableRef
    from broker.status import RunStatus

    store = RunStatus()
    run_id = "0123456789abcdef0123456789abcdef"
    store.create_run(run_id, "etl", {})
    long_name = "Quarterly invoices for the northern region, with notes"
    store.set_tables(run_id, [TableRef(source="airtable", table_id="tblLONG", name=long_name)])
    store.update_table(run_id, "tblLONG", sql_table="airtable__quarterly_invoices_for_the_northern_region")
    runs = conveyor("runs", columns=60)
    assert runs.returncode == 0, runs.stderr
    assert run_id in runs.stdout.splitlines()[1]
    status = conveyor("status", run_id, columns=40)
    assert long_name in status.stdout
    assert "airtable__quarterly_invoices_for_the_northern_region" in status.stdout
    assert json.loads(conveyor("runs", "--json").stdout)[0]["run_id"] == run_id


@pytest.mark.parametrize("args", [["runs"], ["status", "x" * 32], ["cancel", "x" * 32],
                                  ["enqueue", "airtable"], ["metrics"], ["rejected", "x" * 32]])
def test_with_the_broker_down_every_command_prints_one_line(args, sandbox_env):
    line = one_error_line(conveyor(*args, **sandbox_env, CELERY_BROKER_URL=DOWN_BROKER))
    assert f"CELERY_BROKER_URL {DOWN_BROKER}" in line


def test_with_the_warehouse_down_run_prints_one_line_naming_the_flag(sandbox_env):
    line = one_error_line(conveyor("run", "airtable", "--warehouse",
                                   "postgresql://root:s3cret-pw@127.0.0.1:1/test", **sandbox_env))
    assert line.startswith("error: --warehouse postgresql+psycopg://root:***@127.0.0.1:1/test is unreachable")
    assert "s3cret-pw" not in line


def test_the_sandbox_prints_a_copy_pasteable_export_line_at_any_width():
    from broker.local_stack import free_port

    port = free_port()
    env = {**os.environ, "COLUMNS": "30"}
    proc = subprocess.Popen([sys.executable, "-m", "broker.cli", "sandbox", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        line = ""
        while not line.startswith("export ") and time.monotonic() < deadline:
            line = proc.stdout.readline()
    finally:
        proc.terminate()
        proc.wait(10)
    assert line.rstrip("\n") == (f"export AIRTABLE_API_URL=http://127.0.0.1:{port} "
                                 "AIRTABLE_BASE_ID=appSANDBOX0000001 AIRTABLE_API_KEY=sandbox-token")


def test_every_final_state_has_its_own_documented_exit_code():
    from broker.cli.exits import EXIT_CODES, TIMED_OUT
    from broker.cli.exits import __doc__ as table

    assert set(EXIT_CODES) == set(FINAL_RUN_STATES)
    codes = list(EXIT_CODES.values()) + [TIMED_OUT]
    assert len(set(codes)) == len(codes)
    assert EXIT_CODES[RunState.SUCCEEDED] == 0
    for state, code in EXIT_CODES.items():
        assert f"| {code} | {state.value}" in (table or ""), state
