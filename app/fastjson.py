"""JSON text at orjson's speed, meaning what the standard library's ``json`` means.

Every record is written as JSON at least once on its way to the warehouse (its size, the copy
the barrier keeps, its JSON columns) and read at least once; with ``json`` that was a third of
a sync's CPU. orjson does the same 2-25× faster but differs on edge values: it writes NaN and
±Infinity as ``null``, refuses ints beyond 64 bits, non-string keys and lone surrogates, and
reads an int beyond 64 bits as a float. So each function here takes orjson's answer only where
it is the one ``json`` gives, and returns None (``dumps``) or asks ``json`` (``loads``) for
the rest, which Airtable's values never are.

Text written here is compact (``json``'s ``separators=(",", ":")``, ``ensure_ascii=False``):
the same value as ``json``'s text, not the same characters. Unlike ``json``, orjson writes an
``enum.Enum`` member and a ``uuid.UUID`` as their values (records are JSON-shaped, so neither
comes from Airtable).
"""

from __future__ import annotations

import json
from typing import Any, Final

import orjson

#: Values ``json`` would not write as orjson does go to the caller's own way: ``str``, ``int``
#: and ``dict`` subclasses (``IntEnum``, ``JSONText``…), datetimes and dataclasses.
_OPTIONS: Final = (orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATETIME
                   | orjson.OPT_PASSTHROUGH_DATACLASS)
#: orjson reads every int of up to 18 digits exactly (it keeps 64 bits); a longer run of
#: digits may be an int it would read as a float. The run is looked for with every digit
#: made "0" and every other byte "x": a regex took four times as long as orjson's reading.
_DIGITS_AS_ZEROS: Final = bytes(0x30 if 0x30 <= b <= 0x39 else 0x78 for b in range(256))
_LONG_DIGITS: Final = b"0" * 19


def dumps(value: Any) -> str | None:
    """``value`` as strict, compact JSON text, or None when orjson cannot tell it is that.

    None for whatever ``json.dumps(value, allow_nan=False)`` refuses (NaN, ±Infinity, lone
    surrogates, values that are not JSON) and for some values it accepts (ints beyond 64 bits,
    non-string keys, subclasses of the JSON types, any ``null``, which may have been a NaN):
    the caller then writes it its own way, as it did before.
    """
    try:
        data = orjson.dumps(value, option=_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError is one
        return None
    if b"null" in data:
        return None
    return data.decode("utf-8")


def loads(data: str | bytes) -> Any:
    """The value of JSON text, exactly as ``json.loads`` reads it (and raising what it raises).

    orjson reads it unless the text holds a run of 19 digits (a false alarm, such as a long
    numeric string, only costs ``json``'s speed); what orjson refuses (NaN, lone surrogates,
    numbers beyond a double, bad text) ``json`` reads or refuses in its own words.
    """
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    if _LONG_DIGITS not in raw.translate(_DIGITS_AS_ZEROS):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)
