"""Airtable-style ids and timestamps, and the sandbox's clock, which tests may move forward.

Every time the sandbox shows (``createdTime``, last-modified times, ``LAST_MODIFIED_TIME()``,
``NOW()``, webhook expiry and payload retention, the ``Date`` header) comes from ``CLOCK``, so
``CLOCK.advance(days=8)`` makes a running sandbox live eight days later: hooks expire, old
payloads are dropped. Rate-limit windows and list offsets keep the real monotonic clock.
"""

from __future__ import annotations

import random
import string
import threading
import time
from datetime import UTC, datetime, timedelta

_ID_CHARS = string.ascii_letters + string.digits
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def make_id(prefix: str, rng: random.Random) -> str:
    """Return ``prefix`` plus 14 letters and digits (``rec…``, ``fld…``), as Airtable's ids are."""
    return prefix + "".join(rng.choices(_ID_CHARS, k=17 - len(prefix)))


class SandboxClock:
    """Wall-clock time plus an offset that only grows (``advance``) until ``reset``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset_ms = 0
        self._last_ms = 0

    def now_ms(self) -> int:
        """The sandbox's current time in whole epoch milliseconds, never going backwards."""
        # Airtable's timestamps carry milliseconds; storing more would make a record modified at
        # 12:00:00.0004 look newer than the "12:00:00.000Z" a client read back and filters on.
        with self._lock:
            self._last_ms = max(self._last_ms, time.time_ns() // 1_000_000 + self._offset_ms)
            return self._last_ms

    def advance(self, *, days: float = 0, hours: float = 0, seconds: float = 0) -> None:
        """Move the sandbox's time forward (time travel for expiry and retention tests)."""
        step = int((days * 86_400 + hours * 3_600 + seconds) * 1000)
        if step < 0:
            raise ValueError("the sandbox clock only moves forward")
        with self._lock:
            self._offset_ms += step

    def reset(self) -> None:
        """Back to real time (later readings may then repeat earlier ones until it catches up)."""
        with self._lock:
            self._offset_ms = 0
            self._last_ms = 0


#: The one clock of every sandbox in this process (the sandbox is a test and demo tool).
CLOCK = SandboxClock()


def now_ms() -> int:
    """The sandbox's current time in whole milliseconds since the epoch (see ``CLOCK``)."""
    return CLOCK.now_ms()


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
