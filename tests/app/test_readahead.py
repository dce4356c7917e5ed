"""read_ahead: same items, same order, errors where they happened, and a clean early stop."""

from __future__ import annotations

import threading

import pytest

from app.sync.readahead import read_ahead


def test_items_come_in_order_and_all_of_them():
    assert list(read_ahead(iter(range(1000)))) == list(range(1000))
    assert list(read_ahead(iter([]))) == []


def test_the_next_item_is_made_while_the_caller_holds_this_one():
    made = threading.Semaphore(0)

    def items():
        for n in range(3):
            yield n
            made.release()

    reader = read_ahead(items())
    assert next(reader) == 0
    # Item 1 is produced without the caller asking: the generator went past item 0.
    assert made.acquire(timeout=10)
    assert list(reader) == [1, 2]


def test_an_error_is_raised_after_the_items_before_it():
    def items():
        yield 1
        yield 2
        raise LookupError("cursor expired")

    seen = []
    with pytest.raises(LookupError, match="cursor expired"):
        for item in read_ahead(items()):
            seen.append(item)
    assert seen == [1, 2]


def test_a_caller_that_stops_early_stops_and_closes_the_source():
    produced, closed = [], threading.Event()

    def items():
        try:
            for n in range(1000):
                produced.append(n)
                yield n
        finally:
            closed.set()

    reader = read_ahead(items())
    assert next(reader) == 0
    reader.close()
    assert closed.is_set()
    # one handed over, one waiting to be, and the one being made when the caller stopped
    assert len(produced) <= 3
