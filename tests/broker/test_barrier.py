"""The barrier: the last batch to land, or the end of the listing if it comes last, closes a
table exactly once; the last table to end finishes the run exactly once."""

from broker.barrier import Barrier
from broker.status import redis_client


def test_the_last_loaded_batch_closes_the_table_once(redis_url):
    barrier = Barrier(redis_client(redis_url))
    assert not barrier.mark_loaded("r", "t", 0)
    assert not barrier.mark_loaded("r", "t", 1)
    assert not barrier.mark_extracted("r", "t", 0, 3)
    assert barrier.mark_loaded("r", "t", 2)
    assert not barrier.mark_loaded("r", "t", 2)  # redelivered: closed already
    assert barrier.is_closed("r", "t")


def test_a_listing_that_ends_after_its_batches_closes_the_table(redis_url):
    barrier = Barrier(redis_client(redis_url))
    barrier.mark_loaded("r", "t", 0)
    barrier.mark_loaded("r", "t", 1)
    assert barrier.mark_extracted("r", "t", 0, 2)
    assert not barrier.mark_extracted("r", "t", 0, 2)


def test_batches_of_an_abandoned_epoch_do_not_count(redis_url):
    barrier = Barrier(redis_client(redis_url))
    for n in range(3):
        barrier.mark_loaded("r", "t", n)  # epoch 0, whose listing expired
    assert not barrier.mark_extracted("r", "t", 1, 2)  # epoch 1 ended with 2 batches
    assert not barrier.mark_loaded("r", "t", 1_000_000)
    assert barrier.mark_loaded("r", "t", 1_000_001)


def test_copies_are_kept_until_loaded(redis_url):
    barrier = Barrier(redis_client(redis_url))
    barrier.keep_copy("r", "t", 0, ["sync", {"batch_no": 0}])
    barrier.keep_copy("r", "t", 1, ["sync", {"batch_no": 1}])
    barrier.mark_loaded("r", "t", 0)
    assert barrier.pending("r", "t") == {1: ["sync", {"batch_no": 1}]}
    barrier.close("r", "t", "failed")
    assert barrier.pending("r", "t") == {}


def test_the_last_table_finishes_the_run_once(redis_url):
    barrier = Barrier(redis_client(redis_url))
    assert not barrier.table_done("r", "a", 2)
    assert not barrier.table_done("r", "a", 2)  # the same table twice is one table
    assert barrier.table_done("r", "b", 2)
    assert not barrier.table_done("r", "b", 2)
