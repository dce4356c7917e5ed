"""Conveyor's Celery tasks. ``celery -A workers worker -Q extract`` (or ``-Q load``) runs a pool."""

from celery import signals

import app.workflows  # noqa: F401  (registers ETLWorkflow)
from app import gc_thresholds
from broker.celery_app import celery_app
from broker.recovery import RecoverySweep
from broker.shutdown import FinishPoolWrites
from workers import extract, load, runs  # noqa: F401  (registers the tasks)

celery_app.steps["worker"].add(RecoverySweep)
celery_app.steps["worker"].add(FinishPoolWrites)
# A worker process only syncs; prefork children inherit the threshold.
signals.worker_init.connect(lambda **_: gc_thresholds.raise_for_process(), weak=False)
app = celery_app

__all__ = ["app", "celery_app"]
