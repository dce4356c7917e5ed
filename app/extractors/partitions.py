"""Split one Airtable table into disjoint listings by creation time, so they can page in parallel.

A partition is a half-open window ``[start, end)`` of ``CREATED_TIME()`` in epoch
milliseconds; the first window has no start and the last no end, so together they cover every
record exactly once, including records created while the sync runs (they fall in the last,
open-ended window). Each window becomes a ``filterByFormula`` that compares whole
milliseconds, ``VALUE(DATETIME_FORMAT(CREATED_TIME(), 'x'))`` (Airtable formats dates with
Moment.js, whose ``x`` is the Unix time in ms), so a record created exactly on a boundary
matches ``>=`` in the window above and ``<`` nowhere else: no overlap, no gap, no rounding.

Boundaries come from the previous sync's ``__created_time`` values (``plan_from_created``:
equal record counts per window) or, with nothing better, from the earliest creation time
seen and the current time (``plan_from_range``: equal time spans, uneven counts but still
exact). Everything here is pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

# The record's creation time in whole epoch milliseconds, as a number, on Airtable and the sandbox.
CREATED_MS = "VALUE(DATETIME_FORMAT(CREATED_TIME(),'x'))"
# Below this many records a table stays one listing: a partition costs at least one request
# and a 100-record page is the unit anyway.
MIN_RECORDS_PER_PARTITION = 1000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class CreatedWindow:
    """Records created at ``start_ms <= t < end_ms``; None leaves that side open."""

    index: int
    start_ms: int | None = None
    end_ms: int | None = None

    def contains(self, created_ms: int) -> bool:
        """Whether a record created at ``created_ms`` belongs to this window."""
        return ((self.start_ms is None or created_ms >= self.start_ms)
                and (self.end_ms is None or created_ms < self.end_ms))

    def formula(self) -> str | None:
        """The ``filterByFormula`` selecting this window, or None for the whole table."""
        parts = []
        if self.start_ms is not None:
            parts.append(f"{CREATED_MS}>={self.start_ms}")
        if self.end_ms is not None:
            parts.append(f"{CREATED_MS}<{self.end_ms}")
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else f"AND({','.join(parts)})"

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (for task messages)."""
        return {"index": self.index, "start_ms": self.start_ms, "end_ms": self.end_ms}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CreatedWindow:
        """The window ``to_json`` wrote."""
        return cls(int(data["index"]), _optional_int(data.get("start_ms")),
                   _optional_int(data.get("end_ms")))


def created_ms(value: str | datetime | int) -> int:
    """Epoch milliseconds of a creation time (``createdTime`` text, a datetime, or ms already).

    Raises:
        ValueError: for text that is not an ISO 8601 time.
    """
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // timedelta(milliseconds=1)


def windows(boundaries: Iterable[int]) -> list[CreatedWindow]:
    """The windows cut at ``boundaries``: (-inf, b1), [b1, b2), …, [bn, +inf).

    Duplicate boundaries are dropped, so no window is empty by construction.
    """
    cuts = sorted(set(boundaries))
    starts: list[int | None] = [None, *cuts]
    ends: list[int | None] = [*cuts, None]
    return [CreatedWindow(i, start, end) for i, (start, end) in enumerate(zip(starts, ends, strict=True))]


def plan_from_created(created: Iterable[str | datetime | int], parts: int,
                      min_records: int = MIN_RECORDS_PER_PARTITION) -> list[CreatedWindow]:
    """Windows holding about equal numbers of the given records (the previous sync's).

    Args:
        created: Creation times of the records last synced (``__created_time``), any order.
        parts: How many partitions are wanted at most.
        min_records: Fewest records per partition; a smaller table stays one listing.

    Returns:
        At most ``parts`` windows covering all time; one open window for a small table.
    """
    times = sorted(created_ms(value) for value in created)
    parts = max(1, min(parts, len(times) // max(min_records, 1)))
    if parts == 1:
        return windows([])
    # A boundary equal to the smallest time would leave the first window empty.
    cuts = {times[len(times) * k // parts] for k in range(1, parts)} - {times[0]}
    return windows(cuts)


def plan_from_range(earliest_ms: int, latest_ms: int, parts: int) -> list[CreatedWindow]:
    """Windows of equal time spans between two creation times (a probe's, or now).

    Records before ``earliest_ms`` fall in the first window and after ``latest_ms`` in the
    last, so a wrong guess only unbalances the partitions; it never loses a record.
    """
    span = latest_ms - earliest_ms
    parts = max(1, parts)
    if span < parts:
        return windows([])
    return windows(earliest_ms + span * k // parts for k in range(1, parts))


def owner(windows_: Sequence[CreatedWindow], created: str | datetime | int) -> CreatedWindow:
    """The one window a record created at ``created`` belongs to.

    Raises:
        ValueError: if the windows do not cover that time (they were not made by ``windows``).
    """
    moment = created_ms(created)
    found = [w for w in windows_ if w.contains(moment)]
    if len(found) != 1:
        raise ValueError(f"{len(found)} windows hold creation time {moment}; expected 1")
    return found[0]


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)
