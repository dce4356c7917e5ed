"""Shared fixtures: real Redis (a dedicated DB, flushed), real PostgreSQL schemas, the sandbox."""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlsplit, urlunsplit


def _worker_redis_url(base: str, xdist_worker: str | None) -> str:
    """The base URL for a plain run; for pytest-xdist's worker gwN, the base's database + N,
    so parallel workers never flush or read each other's queues."""
    if not xdist_worker:
        return base
    parts = urlsplit(base)
    number = int(parts.path.strip("/") or 0) + int(xdist_worker.removeprefix("gw"))
    if number > 15:
        raise RuntimeError(f"CONVEYOR_TEST_REDIS_URL={base}: too few Redis databases for "
                           f"xdist worker {xdist_worker}; use a lower database number or fewer -n")
    return urlunsplit(parts._replace(path=f"/{number}"))


# Tests talk to their own Redis database; set before anything imports the Celery app.
TEST_REDIS_URL = _worker_redis_url(
    os.environ.get("CONVEYOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/10"),
    os.environ.get("PYTEST_XDIST_WORKER"))
TEST_PG_URL = os.environ.get("CONVEYOR_TEST_PG_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")
os.environ["CELERY_BROKER_URL"] = TEST_REDIS_URL
os.environ.pop("CELERY_RESULT_BACKEND", None)
for name in ("AIRTABLE_API_KEY", "AIRTABLE_BASE_ID", "AIRTABLE_API_URL", "AIRTABLE_TABLES",
             "WAREHOUSE_URL", "WAREHOUSE_SCHEMA"):
    os.environ.pop(name, None)

import pytest  # noqa: E402

# The helpers in tests/support assert too: their failures show the values compared.
pytest.register_assert_rewrite("tests.support")

from app.settings import reload_settings  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_settings():
    """Each test reads the environment afresh (monkeypatched variables included)."""
    reload_settings()
    yield
    reload_settings()


@pytest.fixture
def redis_url():
    """An empty Redis database, flushed before and after the test."""
    import redis

    client = redis.Redis.from_url(TEST_REDIS_URL)
    client.flushdb()
    yield TEST_REDIS_URL
    client.flushdb()


@pytest.fixture
def pg_schema():
    """A fresh PostgreSQL schema name, dropped after the test."""
    import sqlalchemy as sa

    schema = f"raw_test_{uuid.uuid4().hex[:8]}"
    yield schema
    engine = sa.create_engine(TEST_PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()
