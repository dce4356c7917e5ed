"""Scheduled runs: what a beat entry is, where the entries are declared, and firing one."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from celery.schedules import BaseSchedule, schedule

from app.errors import ConfigurationError
from app.settings import get_settings
from app.workflows.base import Workflow


@dataclass(frozen=True)
class ScheduledRun:
    """One beat entry: run ``workflow`` with ``options`` on ``every`` (Celery's schedule types).

    Args:
        name: unique entry name; scheduled runs show ``schedule:<name>`` as their trigger.
        workflow: e.g. ``ETLWorkflow(AirtableExtractor, PostgresWarehouse)``.
        every: a ``crontab(...)``, ``schedule(...)``, ``solar(...)``, timedelta or seconds (UTC).
        options: run options (``drop_tables``, ``tables``, ``incremental``, ``hard_deletes``,
            ``deletes_every``, ``computed_every``); a frequent schedule wants
            ``{"incremental": True}`` with ``deletes_every`` and ``computed_every`` above 1,
            since their due runs list every record (README, "Write modes, change sources…").
        overlap: while the previous run still goes, ``skip`` this tick (default) or ``queue`` it.
    """

    name: str
    workflow: Workflow
    every: BaseSchedule | timedelta | float
    options: dict[str, Any] = field(default_factory=dict)
    overlap: str = "skip"

    @property
    def celery_schedule(self) -> BaseSchedule:
        if isinstance(self.every, BaseSchedule):
            return self.every
        seconds = self.every.total_seconds() if isinstance(self.every, timedelta) else self.every
        return schedule(run_every=timedelta(seconds=seconds))


def load_schedules(spec: str | None = None) -> list[ScheduledRun]:
    """The entries declared at ``CONVEYOR_SCHEDULES`` (``module:attribute``)."""
    spec = spec or get_settings().conveyor_schedules
    module_name, _, attribute = spec.partition(":")
    try:
        entries = getattr(importlib.import_module(module_name), attribute or "SCHEDULES")
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"CONVEYOR_SCHEDULES {spec!r} cannot be loaded: {exc}") from exc
    names = [e.name for e in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigurationError(f"CONVEYOR_SCHEDULES has duplicate entry names: {duplicates}")
    return list(entries)


WATCHDOG_ENTRY = "conveyor-watchdog"


def beat_entries(entries: list[ScheduledRun]) -> dict[str, dict[str, Any]]:
    """Celery ``beat_schedule`` entries: each tick sends ``conveyor.scheduled_run(name)``, and
    the watchdog runs every WATCHDOG_EVERY_SECONDS."""
    from broker import policies

    beat = {
        e.name: {"task": "conveyor.scheduled_run", "schedule": e.celery_schedule, "args": [e.name],
                 "options": {"queue": "load"}}
        for e in entries
    }
    beat[WATCHDOG_ENTRY] = {"task": "conveyor.watchdog",
                            "schedule": timedelta(seconds=policies.WATCHDOG_EVERY_SECONDS),
                            "options": {"queue": "load"}}
    return beat


def fire(name: str) -> Any:
    """Enqueue one tick of entry ``name`` through the producer (so it gets a run id and status)."""
    from broker.producer import enqueue

    entry = next((e for e in load_schedules() if e.name == name), None)
    if entry is None:
        raise ConfigurationError(f"no schedule entry named {name!r} in CONVEYOR_SCHEDULES")
    return enqueue(entry.workflow, overlap=entry.overlap, trigger=f"schedule:{name}", **entry.options)
