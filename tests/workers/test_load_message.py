"""A load message names its batch; the records come from the batch's kept copy, once."""

import pytest

import workers  # noqa: F401  (registers the tasks)
from app.contracts import Batch, TableRef
from app.errors import TerminalError
from app.sync.plan import ComponentConfig, RunOptions, RunPlan, TableSync
from broker.barrier import Barrier
from broker.status import redis_client
from workers import load
from workers.handoff import kept_reference

SYNC = TableSync(RunPlan("r1", "etl", ComponentConfig("airtable"), ComponentConfig(None),
                         RunOptions(), 100, 10_000), TableRef("airtable", "tbl1", "Orders"))
RECORDS = [{"id": "rec1", "createdTime": "2024-01-01T00:00:00.000Z", "fields": {"Name": "a"}}]


@pytest.fixture
def kept(redis_url, monkeypatch):
    barrier = Barrier(redis_client(redis_url))
    monkeypatch.setattr(load, "barrier", lambda: barrier)
    return barrier


def test_a_reference_reads_the_batch_from_its_kept_copy(kept):
    batch = SYNC.batch(7, RECORDS, seen=True)
    kept.keep_copy("r1", "tbl1", 7, [SYNC.to_json(), batch.to_json()])
    reference = kept_reference(batch)
    assert "records" not in reference
    assert load._batch_of(SYNC, reference) == batch


def test_a_whole_batch_in_the_message_is_used_as_it_is(kept):
    batch = SYNC.batch(3, RECORDS)
    assert load._batch_of(SYNC, batch.to_json()) == batch


def test_a_reference_to_a_loaded_batch_or_a_closed_table_is_nothing_to_load(kept):
    batch = SYNC.batch(0, RECORDS)
    kept.keep_copy("r1", "tbl1", 0, [SYNC.to_json(), batch.to_json()])
    kept.mark_loaded("r1", "tbl1", 0)  # an earlier delivery loaded it
    assert load._batch_of(SYNC, kept_reference(batch)) is None
    kept.keep_copy("r1", "tbl1", 1, [SYNC.to_json(), SYNC.batch(1, RECORDS).to_json()])
    kept.close("r1", "tbl1", "failed")
    assert load._batch_of(SYNC, kept_reference(SYNC.batch(1, RECORDS))) is None


def test_a_reference_whose_copy_expired_unloaded_fails_saying_so(kept):
    with pytest.raises(TerminalError, match="neither loaded nor kept"):
        load._batch_of(SYNC, kept_reference(Batch("r1", SYNC.table, 5, [])))


@pytest.mark.parametrize("records", [
    RECORDS,
    [{"id": "rec1", "fields": {"Name": "Zoë ☃ 日本", "n": float("nan"), "x": [1.5, None]}}],
    [{"id": "rec1", "fields": {"Name": "lone \ud800 surrogate"}}],
    [{"id": "rec1", "fields": {}}, {"id": "rec2", "fields": {"when": object()}}],
    [],
])
def test_the_kept_message_is_the_json_of_the_load_message(records):
    """The kept copy splices in the records' text made while sizing them: it must read back
    as the message itself would (a record JSON cannot write fails as ``json.dumps`` does)."""
    import json

    from app.sync import steps
    from workers.extract import kept_message

    (item,) = steps.iter_batches([_page(records)], SYNC, 0)
    message = [SYNC.to_json(), item.batch.to_json()]
    try:
        expected = json.loads(json.dumps(message))
    except TypeError:
        assert item.record_texts is None
        with pytest.raises(TypeError):
            kept_message(SYNC.to_json(), item)
        return
    text = kept_message(SYNC.to_json(), item)
    text.decode("utf-8")  # UTF-8, as the load step reads it
    # (compared as sorted text: NaN != NaN)
    assert json.dumps(json.loads(text), sort_keys=True) == json.dumps(expected, sort_keys=True)
    assert item.record_texts is not None  # plain JSON: sized and spliced from one encoding


def _page(records):
    from app.extractors.base import Page

    return Page(records=records, next_cursor=None)
