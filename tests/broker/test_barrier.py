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


def test_a_kept_copy_is_read_until_its_batch_is_loaded(redis_url):
    barrier = Barrier(redis_client(redis_url))
    barrier.keep_copy("r", "t", 1_000_003, ["sync", {"batch_no": 1_000_003, "records": [{}]}])
    assert barrier.kept_copy("r", "t", 1_000_003) == [
        "sync", {"batch_no": 1_000_003, "records": [{}]}]
    assert not barrier.is_loaded("r", "t", 1_000_003)
    barrier.mark_loaded("r", "t", 1_000_003)
    assert barrier.kept_copy("r", "t", 1_000_003) is None
    assert barrier.is_loaded("r", "t", 1_000_003)
    assert not barrier.is_loaded("r", "t", 3)  # the same number in another epoch


def test_the_last_table_finishes_the_run_once(redis_url):
    barrier = Barrier(redis_client(redis_url))
    assert not barrier.table_done("r", "a", 2)
    assert not barrier.table_done("r", "a", 2)  # the same table twice is one table
    assert barrier.table_done("r", "b", 2)
    assert not barrier.table_done("r", "b", 2)


def _windows(n):
    return [{"index": i, "start_ms": None if i == 0 else i * 1000,
             "end_ms": None if i == n - 1 else (i + 1) * 1000} for i in range(n)]


def test_a_partitioned_table_closes_only_when_every_partition_is_loaded(redis_url):
    from app.sync.rules import first_batch

    barrier = Barrier(redis_client(redis_url))
    assert barrier.claim_partitions("r", "t", _windows(3)) == _windows(3)
    p1, p2 = first_batch(1), first_batch(2)
    assert not barrier.mark_loaded("r", "t", 0)
    assert not barrier.mark_extracted("r", "t", 0, 1, 0)  # partition 0 done, the others not
    assert not barrier.mark_loaded("r", "t", p1)
    assert not barrier.mark_loaded("r", "t", p1 + 1)
    assert not barrier.mark_extracted("r", "t", 0, 2, 1)  # partitions 0 and 1 done
    assert not barrier.mark_extracted("r", "t", 0, 2, 2)  # partition 2 ended, none loaded
    assert not barrier.mark_loaded("r", "t", p2)
    assert barrier.mark_loaded("r", "t", p2 + 1)  # the very last batch closes it, once
    assert not barrier.mark_loaded("r", "t", p2 + 1)


def test_a_redelivered_start_gets_the_windows_of_the_first(redis_url):
    barrier = Barrier(redis_client(redis_url))
    assert barrier.claim_partitions("r", "t", _windows(4)) == _windows(4)
    assert barrier.claim_partitions("r", "t", _windows(2)) == _windows(4)
    assert barrier.state("r", "t")["partitions"] == "4"


def test_a_partition_restarted_in_a_new_epoch_counts_only_that_epoch(redis_url):
    from app.sync.rules import EPOCH_SIZE, first_batch

    barrier = Barrier(redis_client(redis_url))
    barrier.claim_partitions("r", "t", _windows(2))
    barrier.mark_loaded("r", "t", 0)
    assert not barrier.mark_extracted("r", "t", 0, 1, 0)
    barrier.mark_loaded("r", "t", first_batch(1))  # partition 1's listing expired after this
    assert not barrier.mark_extracted("r", "t", 1, 1, 1)  # its epoch 1 ended with one batch
    assert barrier.mark_loaded("r", "t", first_batch(1, 1))
    assert first_batch(1, 1) == EPOCH_SIZE + first_batch(1)


def test_each_partition_keeps_its_own_resume_point(redis_url):
    barrier = Barrier(redis_client(redis_url))
    barrier.set_resume("r", "t", "conveyor.extract_table", [{"p": 0}])
    barrier.set_resume("r", "t", "conveyor.extract_table", [{"p": 2}], partition=2)
    barrier.set_resume("r", "t", "conveyor.extract_table", [{"p": 1}], partition=1)
    assert [r["args"] for r in barrier.state("r", "t")["resumes"]] == [[{"p": 0}], [{"p": 1}],
                                                                       [{"p": 2}]]
    barrier.set_resume("r", "t", None, [], partition=1)  # partition 1's listing ended
    assert [r["args"] for r in barrier.state("r", "t")["resumes"]] == [[{"p": 0}], [{"p": 2}]]


def test_the_call_that_completes_a_table_records_its_finish_step_as_the_only_resume(redis_url):
    barrier = Barrier(redis_client(redis_url))
    finish = {"task": "conveyor.finish_table", "args": [{"sync": 1}]}
    barrier.claim_partitions("r", "t", _windows(2))
    barrier.set_resume("r", "t", "conveyor.extract_table", [{"p": 1}], partition=1)
    assert not barrier.mark_extracted("r", "t", 0, 1, 0, finish)
    assert barrier.state("r", "t")["resumes"] == [{"task": "conveyor.extract_table",
                                                   "args": [{"p": 1}]}]
    assert not barrier.mark_loaded("r", "t", 0, finish)  # partition 1 is still listing
    assert barrier.mark_extracted("r", "t", 0, 0, 1, finish)
    assert barrier.state("r", "t")["resumes"] == [finish]
    barrier.set_resume("r", "t", "conveyor.extract_table", [{"late": 1}])
    assert not barrier.mark_loaded("r", "t", 0, finish)  # a redelivery does not record it again
    assert barrier.state("r", "t")["resumes"] == [{"task": "conveyor.extract_table",
                                                   "args": [{"late": 1}]}]
