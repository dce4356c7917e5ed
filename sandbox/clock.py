"""Airtable-style ids and timestamps: 17-character ids, ISO times with milliseconds and a Z."""

from __future__ import annotations

import random
import string
import time
from datetime import UTC, datetime, timedelta

_ID_CHARS = string.ascii_letters + string.digits
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def make_id(prefix: str, rng: random.Random) -> str:
    """Return ``prefix`` plus 14 letters and digits (``rec…``, ``fld…``), as Airtable's ids are."""
    return prefix + "".join(rng.choices(_ID_CHARS, k=17 - len(prefix)))


def now_ms() -> int:
    """The current time in whole milliseconds since the epoch."""
    # Airtable's timestamps carry milliseconds; storing more would make a record modified at
    # 12:00:00.0004 look newer than the "12:00:00.000Z" a client read back and filters on.
    return time.time_ns() // 1_000_000


def iso_from_ms(ms: int) -> str:
    """Format epoch milliseconds as Airtable does: ``2024-05-01T09:30:00.000Z``."""
    secs, rem = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{rem:03d}Z"


def date_from_ms(ms: int) -> str:
    """Format epoch milliseconds as a date field value: ``2024-05-01``."""
    return time.strftime("%Y-%m-%d", time.gmtime(ms // 1000))


def parse_iso(text: str) -> datetime:
    """Parse an ISO date or date-time; a value without a zone is taken as UTC.

    Raises:
        ValueError: if ``text`` is not ISO 8601.
    """
    value = datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def datetime_from_ms(ms: int) -> datetime:
    """Epoch milliseconds as an aware UTC datetime."""
    return EPOCH + timedelta(milliseconds=ms)


def ms_from_iso(text: str) -> int:
    """Epoch milliseconds of an ISO time (``createdTime`` and time field values)."""
    return (parse_iso(text) - EPOCH) // timedelta(milliseconds=1)
