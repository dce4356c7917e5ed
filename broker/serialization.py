"""``conveyor-json``: plain JSON for task messages and results.

kombu's own JSON decoder turns any object shaped ``{"__type__": …, "__value__": …}`` into a
Python value (or refuses the whole message for an unknown type), and source records may hold
exactly such objects. This serializer decodes JSON as JSON; Celery's few non-JSON values
(datetimes in result metadata) are written as ISO strings, which Celery parses back.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Any

from kombu.serialization import register

NAME = "conveyor-json"
CONTENT_TYPE = "application/x-conveyor-json"


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> str:
    return json.dumps(value, default=_default, ensure_ascii=False)


def loads(data: str | bytes) -> Any:
    return json.loads(data.decode("utf-8") if isinstance(data, bytes | bytearray) else data)


register(NAME, dumps, loads, content_type=CONTENT_TYPE, content_encoding="utf-8")
