"""The one settings object, read from the environment (and ``.env``) once per process."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from typing import Literal

from dotenv import dotenv_values
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REAL_AIRTABLE_API_URL = "https://api.airtable.com"


class Settings(BaseSettings):
    """Every knob Conveyor reads from the environment; names are the upper-cased field names."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    airtable_api_key: SecretStr | None = None
    airtable_base_id: str | None = None
    airtable_api_url: str = REAL_AIRTABLE_API_URL
    airtable_tables: str | None = Field(
        default=None, description="Comma-separated table names or ids; empty means every table."
    )
    # Airtable's limit is 5 requests/s per base, shared by every client of that base.
    airtable_requests_per_second: float = 5.0
    # After a 429 the real API refuses the base for 30 s: waiting less only earns more 429s.
    airtable_rate_limit_penalty_seconds: float = 30.0
    airtable_timeout_seconds: float = 30.0
    # Attempts per request on connection errors and 5xx before the source counts as down.
    airtable_max_attempts: int = 6
    # Airtable's second limit: 50 requests/s per token, across every base it reads.
    airtable_token_requests_per_second: float = 50.0
    # HMAC key naming tokens in Redis (rate-limit keys hold a fingerprint, never the token);
    # unset, a fixed context key is used, which still cannot be reversed into the token.
    conveyor_token_fingerprint_key: SecretStr | None = None

    warehouse_url: str = "sqlite:///data/warehouse.db"
    warehouse_schema: str = "raw"

    batch_max_records: int = 500
    # A table whose previous sync left at least 2 × 1,000 records is split into up to this
    # many creation-time partitions that extract workers page in parallel (1: never split).
    conveyor_partitions: int = Field(default=4, ge=1, le=16)
    batch_max_bytes: int = 2_000_000

    celery_broker_url: str = "redis://127.0.0.1:6379/0"
    celery_result_backend: str | None = None
    # Redis hands an unacknowledged message to another worker after this long; every task
    # limit derives from it (see broker/policies.py). Short means a killed worker's work
    # comes back soon; it must still exceed the longest task.
    conveyor_visibility_timeout_seconds: int = 120
    # The watchdog fails a running run that showed no sign of life for this long.
    conveyor_stalled_run_seconds: int = 900
    # A run holds its workflow's overlap guard this long past its last sign of life.
    conveyor_guard_ttl_seconds: int = 120
    # Where the beat schedules are declared: "module:attribute" (a list of ScheduledRun).
    conveyor_schedules: str = "broker.schedules:SCHEDULES"
    # Modules the workers import at start (comma-separated), so user workflows and extractors
    # register themselves; a message can only name what is registered.
    conveyor_imports: str | None = None
    # "text" (Celery's usual lines) or "json": one JSON object per line from workers, beat and
    # the CLI, with run id, table and batch where they apply.
    conveyor_log_format: Literal["text", "json"] = "text"

    def connection_secret(self, connection: str, name: str) -> str | None:
        """A secret of a named connection, e.g. ``CONVEYOR_CONNECTION_SALES_AIRTABLE_API_KEY``.

        A run names a connection, never carries its secrets: each worker resolves them from
        its own environment (or ``.env``). The ``default`` connection also reads the plain
        variable (``AIRTABLE_API_KEY``).
        """
        variable = connection_variable(connection, name)
        value = os.environ.get(variable) or _dotenv().get(variable)
        if value or connection != "default":
            return value or None
        return os.environ.get(name) or _dotenv().get(name) or None

    @property
    def fingerprint_key(self) -> bytes | None:
        """``CONVEYOR_TOKEN_FINGERPRINT_KEY`` as bytes, or None."""
        key = self.conveyor_token_fingerprint_key
        return key.get_secret_value().encode("utf-8") if key else None

    @property
    def airtable_table_list(self) -> list[str]:
        """The tables named in ``AIRTABLE_TABLES``, or an empty list for every table."""
        if not self.airtable_tables:
            return []
        return [name.strip() for name in self.airtable_tables.split(",") if name.strip()]


def connection_variable(connection: str, name: str) -> str:
    """The environment variable holding secret ``name`` of ``connection``."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", connection):
        raise ValueError(f"connection names are letters, digits and _, not {connection!r}")
    return f"CONVEYOR_CONNECTION_{connection.upper()}_{name}"


@lru_cache(maxsize=1)
def _dotenv() -> dict[str, str | None]:
    return dotenv_values(".env") if os.path.exists(".env") else {}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()


def reload_settings() -> Settings:
    """Forget the cached settings and read the environment again (tests, CLI overrides)."""
    get_settings.cache_clear()
    _dotenv.cache_clear()
    return get_settings()
