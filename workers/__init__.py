"""Conveyor's Celery tasks. ``celery -A workers worker -Q extract`` (or ``-Q load``) runs a pool."""

import app.workflows  # noqa: F401  (registers ETLWorkflow)
from broker.celery_app import celery_app
from broker.recovery import RecoverySweep
from broker.shutdown import FinishPoolWrites
from workers import extract, load, runs  # noqa: F401  (registers the tasks)

celery_app.steps["worker"].add(RecoverySweep)
celery_app.steps["worker"].add(FinishPoolWrites)
app = celery_app

__all__ = ["app", "celery_app"]
