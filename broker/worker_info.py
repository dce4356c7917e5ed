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


def _version_info(state: Any) -> dict[str, str]:
    """``celery inspect conveyor_version_info``: this worker's Conveyor version."""
    return {"version": conveyor_version()}


_version_info.__name__ = "conveyor_version_info"  # the remote-control command's name
conveyor_version_info = inspect_command()(_version_info)
