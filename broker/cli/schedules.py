"""``conveyor schedules``: the beat entries and when each is next due."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from broker.cli.display import aligned, print_plain
from broker.scheduling import ScheduledRun, load_schedules


def last_run_at(entry: ScheduledRun) -> datetime | None:
    """When beat last fired the entry, from RedBeat's record in Redis (None if never)."""
    from redbeat.schedulers import RedBeatSchedulerEntry, ensure_conf

    from broker.celery_app import celery_app

    ensure_conf(celery_app)
    try:
        stored = RedBeatSchedulerEntry.from_key(
            RedBeatSchedulerEntry.generate_key(celery_app, entry.name), app=celery_app)
    except KeyError:
        return None
    value: Any = stored.last_run_at
    return value if isinstance(value, datetime) else None


def next_due(entry: ScheduledRun, now: datetime) -> datetime:
    """The next time beat fires ``entry`` (UTC)."""
    last = last_run_at(entry) or now
    due = now + entry.celery_schedule.remaining_estimate(last)
    return datetime.fromtimestamp(round(due.timestamp()), UTC)


def schedules() -> None:
    """List the beat entries with their next due time (UTC)."""
    now = datetime.now(UTC)
    rows = [(entry.name, type(entry.workflow).__name__, str(entry.celery_schedule), str(entry.options),
             entry.overlap, f"{next_due(entry, now):%Y-%m-%d %H:%M:%S}") for entry in load_schedules()]
    print_plain(f"schedules (now {now:%Y-%m-%d %H:%M:%S} UTC)\n"
                + aligned(("name", "workflow", "every", "options", "overlap", "next due (UTC)"), rows))


def register(cli: Any) -> None:
    cli.command()(schedules)
