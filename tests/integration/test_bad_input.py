"""Bad input: one clear line naming what to fix, a non-zero exit, and nothing lost."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import sqlalchemy as sa

from tests.support.fixtures import BASE_ID, TOKEN, sandbox_with

pytestmark = pytest.mark.integration


def conveyor(*args, env):
    full_env = {**os.environ, "AIRTABLE_MAX_ATTEMPTS": "2", **env}
    return subprocess.run([sys.executable, "-m", "broker.cli", *args], env=full_env,
                          capture_output=True, text=True, timeout=120)


def rows(db_path):
    engine = sa.create_engine(f"sqlite:///{db_path}")
    with engine.connect() as conn:
        result = sorted(conn.execute(sa.text('SELECT "__id" FROM "airtable__clients"')).scalars())
    engine.dispose()
    return result


@pytest.fixture(scope="module")
def loaded():
    """A sandbox and a warehouse that already holds a good sync of it."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, sandbox_with({"Clients": 120}) as (sandbox, _):
        db = os.path.join(tmp, "w.db")
        env = {"AIRTABLE_API_URL": sandbox.url, "AIRTABLE_BASE_ID": BASE_ID,
               "AIRTABLE_API_KEY": TOKEN, "WAREHOUSE_URL": f"sqlite:///{db}"}
        done = conveyor("run", "airtable", "--drop-tables", env=env)
        assert done.returncode == 0, done.stderr
        yield env, db, rows(db)


def the_error_line(result):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.mark.parametrize(("change", "names"), [
    ({"AIRTABLE_API_KEY": "wrong-token"}, "AIRTABLE_API_KEY"),
    ({"AIRTABLE_BASE_ID": "appNOSUCHBASE0000"}, "AIRTABLE_BASE_ID"),
    ({"AIRTABLE_TABLES": "Clients,No Such Table"}, "AIRTABLE_TABLES"),
    ({"AIRTABLE_API_URL": "http://127.0.0.1:9"}, "AIRTABLE_API_URL"),
    ({"AIRTABLE_API_KEY": ""}, "AIRTABLE_API_KEY"),
])
def test_bad_airtable_settings(loaded, change, names):
    env, db, before = loaded
    line = the_error_line(conveyor("run", "airtable", "--drop-tables", env={**env, **change}))
    assert names in line
    assert rows(db) == before


def test_unknown_table_names_the_table(loaded):
    env, _, _ = loaded
    line = the_error_line(conveyor("run", "airtable", env={**env, "AIRTABLE_TABLES": "Nope"}))
    assert "'Nope'" in line and "'Clients'" in line


@pytest.mark.parametrize("url", ["nosuchdb://whatever", "sqlite:////proc/conveyor/w.db",
                                 "postgresql://root:s3cret@127.0.0.1:1/test"])
def test_bad_warehouse_url(loaded, url):
    env, db, before = loaded
    line = the_error_line(conveyor("run", "airtable", "--warehouse", url, env=env))
    # The value came from the flag, so the error names the flag, not WAREHOUSE_URL.
    assert line.startswith("error: --warehouse ") and "WAREHOUSE_URL" not in line
    assert "s3cret" not in line
    assert rows(db) == before
