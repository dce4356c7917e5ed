"""conveyor-json leaves record data alone, where kombu's JSON would reinterpret it."""

import datetime as dt

from kombu.serialization import dumps, loads
from kombu.utils.json import loads as kombu_json_loads

from broker.serialization import CONTENT_TYPE, NAME

LOOKALIKE = {"fields": {"Note": {"__type__": "datetime", "__value__": "2024-01-01T00:00:00"}}}


def test_marker_shaped_values_stay_data():
    content_type, encoding, body = dumps(LOOKALIKE, serializer=NAME)
    assert content_type == CONTENT_TYPE
    assert loads(body, content_type, encoding, accept=[CONTENT_TYPE]) == LOOKALIKE


def test_kombus_json_would_have_changed_them():
    import json

    decoded = kombu_json_loads(json.dumps(LOOKALIKE))
    assert decoded != LOOKALIKE


def test_datetimes_in_celery_metadata_become_iso_strings():
    _, _, body = dumps({"date_done": dt.datetime(2026, 1, 2, 3, 4, 5)}, serializer=NAME)
    assert loads(body, CONTENT_TYPE, "utf-8", accept=[CONTENT_TYPE]) == {
        "date_done": "2026-01-02T03:04:05"}
