"""What a worker tells ``conveyor check`` about itself through Celery's remote control."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from celery.worker.control import inspect_command


def conveyor_version() -> str:
    """The installed Conveyor version ("unknown" when run from an uninstalled tree)."""
    try:
        return version("conveyor")
    except PackageNotFoundError:
        return "unknown"


@inspect_command()  # type: ignore[misc]
def conveyor_version_info(state: Any) -> dict[str, str]:
    """``celery inspect conveyor_version_info``: this worker's Conveyor version."""
    return {"version": conveyor_version()}
