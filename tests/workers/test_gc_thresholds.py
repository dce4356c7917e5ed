"""A worker raises the collector's threshold before its pool starts (children inherit it)."""

import gc

from celery import signals

import workers  # noqa: F401  (connects the worker's signal handlers)
from app.gc_thresholds import SYNC_THRESHOLD


def test_starting_a_worker_raises_the_threshold_for_the_process():
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    try:
        signals.worker_init.send(sender=None)
        assert gc.get_threshold() == (SYNC_THRESHOLD, 10, 10)
    finally:
        gc.set_threshold(*saved)
