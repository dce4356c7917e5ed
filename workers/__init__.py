"""Conveyor's Celery tasks. ``celery -A workers worker -Q extract`` (or ``-Q load``) runs a pool."""

from broker.celery_app import celery_app
from workers import extract, load, runs  # noqa: F401  (registers the tasks)

app = celery_app

__all__ = ["app", "celery_app"]
