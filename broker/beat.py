"""The beat scheduler: RedBeat's Redis lock (one ticking beat however many run), with each tick
enqueued through the producer."""

from __future__ import annotations

import logging
from typing import Any

from redbeat import RedBeatScheduler

from app.errors import ConveyorError
from broker.scheduling import WATCHDOG_ENTRY, beat_entries, fire, load_schedules

log = logging.getLogger(__name__)


class ConveyorScheduler(RedBeatScheduler):  # RedBeat is untyped: Any to mypy
    """Schedules from CONVEYOR_SCHEDULES; a due entry becomes a producer run."""

    def __init__(self, app: Any, *args: Any, **kwargs: Any) -> None:
        app.conf.beat_schedule = beat_entries(load_schedules())
        super().__init__(app, *args, **kwargs)

    def apply_async(self, entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any) -> Any:
        if entry.name == WATCHDOG_ENTRY:
            return super().apply_async(entry, producer=producer, advance=advance, **kwargs)
        entry = self.reserve(entry) if advance else entry
        try:
            handle = fire(entry.name)
        except ConveyorError as exc:
            log.error("schedule %s not enqueued: %s", entry.name, exc)
            return None
        log.info("schedule %s enqueued run %s", entry.name, handle.id)
        return handle
