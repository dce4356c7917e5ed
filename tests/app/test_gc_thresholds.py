"""The collector's threshold while syncing: raised for the block, restored after it."""

from __future__ import annotations

import gc
import threading

import pytest

from app import gc_thresholds
from app.gc_thresholds import SYNC_THRESHOLD


@pytest.fixture(autouse=True)
def default_threshold():
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


def test_the_threshold_is_raised_inside_the_block_and_restored_after_it():
    with gc_thresholds.raised():
        assert gc.get_threshold() == (SYNC_THRESHOLD, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)


def test_it_is_restored_when_the_block_raises():
    with pytest.raises(RuntimeError), gc_thresholds.raised():
        raise RuntimeError("a failed sync")
    assert gc.get_threshold() == (700, 10, 10)


def test_blocks_running_at_once_restore_it_only_when_the_last_one_ends():
    inside, release = threading.Event(), threading.Event()

    def other_sync() -> None:
        with gc_thresholds.raised():
            inside.set()
            release.wait(5)

    thread = threading.Thread(target=other_sync)
    thread.start()
    assert inside.wait(5)
    with gc_thresholds.raised():
        pass
    assert gc.get_threshold()[0] == SYNC_THRESHOLD  # the other sync still runs
    release.set()
    thread.join(5)
    assert gc.get_threshold() == (700, 10, 10)


def test_a_threshold_set_by_the_program_meanwhile_is_left_as_it_set_it():
    with gc_thresholds.raised():
        gc.set_threshold(1234, 5, 5)
    assert gc.get_threshold() == (1234, 5, 5)


def test_a_higher_threshold_is_not_lowered():
    gc.set_threshold(10 * SYNC_THRESHOLD, 10, 10)
    with gc_thresholds.raised():
        assert gc.get_threshold()[0] == 10 * SYNC_THRESHOLD
    gc_thresholds.raise_for_process()
    assert gc.get_threshold() == (10 * SYNC_THRESHOLD, 10, 10)


def test_a_worker_process_keeps_the_raised_threshold():
    gc_thresholds.raise_for_process()
    assert gc.get_threshold() == (SYNC_THRESHOLD, 10, 10)
