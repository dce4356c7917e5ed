"""JSON as the warehouse stores it: every float kept exactly, even where JSON has no number for it.

JSON (and PostgreSQL's JSONB) has no NaN or Infinity, and JSONB turns ``-0.0`` into ``0``.
Such a float is stored as a marker object, ``{"__conveyor_float__": "NaN"}`` (or
``"Infinity"``, ``"-Infinity"``, ``"-0.0"``), and decoded back to the float when read.
A source object that could be mistaken for a marker (one key, ``__conveyor_float__`` or
``__conveyor_escaped__``) is stored as ``{"__conveyor_escaped__": [key, value]}``, so every
JSON value, markers included, reads back as it was sent.

Example:
    >>> to_json_text({"score": float("nan")})
    '{"score":{"__conveyor_float__":"NaN"}}'
    >>> from_json_text('{"score": {"__conveyor_float__": "-Infinity"}}')
    {'score': -inf}
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

from app import fastjson

FLOAT_KEY: Final = "__conveyor_float__"
ESCAPED_KEY: Final = "__conveyor_escaped__"
_RESERVED: Final = frozenset({FLOAT_KEY, ESCAPED_KEY})
#: The marker names; ``float(name)`` is the float (a new NaN object each time, as a parser's).
_SPECIAL_FLOATS: Final = frozenset({"NaN", "Infinity", "-Infinity", "-0.0"})
#: ``json.dumps(value, ensure_ascii=False, allow_nan=False)``, compact as ``fastjson`` writes,
#: without building an encoder per call (the build was a fifth of its cost).
_STRICT: Final = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class JSONText(str):
    """A JSON value already written as the text the warehouse stores (``to_json_text`` of it):
    a row may carry one in a JSON column so the value is not encoded a second time when bound
    (``rows.RowMaker(json_text=True)``). ``to_json_text`` gives it back as it is."""

    __slots__ = ()


def to_json_text(value: Any) -> str:
    """``value`` as the compact JSON text the warehouse stores, unicode kept as is (a
    ``JSONText`` is that text already).

    Raises:
        TypeError: a value is not JSON-serialisable.
        ValueError: a value JSON cannot write (an int of more than 4300 digits) or one
            nested too deeply to walk.
    """
    if type(value) is JSONText:
        return value
    text = fastjson.dumps(value)
    if text is not None and not needs_walk(text):
        return text
    try:
        text = _STRICT.encode(value)
    except ValueError:  # a non-finite float (or an unwritable int, which the walk re-raises)
        text = None
    except RecursionError:
        raise ValueError("the value is nested too deeply") from None
    if text is not None and not needs_walk(text):
        return text
    try:
        return _STRICT.encode(encode(value))
    except RecursionError:
        raise ValueError("the value is nested too deeply") from None


def needs_walk(text: str) -> bool:
    """Whether strict JSON ``text`` may hold what ``encode`` changes: a reserved key or a
    negative zero (false alarms only cost a walk). Text that does not is stored as it is."""
    return "__conveyor_" in text or "-0.0" in text


def from_json_text(text: str | bytes) -> Any:
    """The value of JSON text written by ``to_json_text``, markers decoded."""
    marked = (b"__conveyor_" in text) if isinstance(text, bytes) else ("__conveyor_" in text)
    return json.loads(text, object_hook=_decode_object) if marked else json.loads(text)


def encode(value: Any) -> Any:
    """``value`` with every special float as a marker and marker-like objects escaped."""
    if isinstance(value, float):
        if math.isfinite(value) and not (value == 0.0 and math.copysign(1.0, value) < 0):
            return value
        return {FLOAT_KEY: _float_name(value)}
    if isinstance(value, dict):
        encoded = {key: encode(item) for key, item in value.items()}
        if len(encoded) == 1 and next(iter(encoded)) in _RESERVED:
            ((key, item),) = encoded.items()
            return {ESCAPED_KEY: [key, item]}
        return encoded
    if isinstance(value, list | tuple):
        return [encode(item) for item in value]
    return value


def decode(value: Any) -> Any:
    """The inverse of ``encode`` (for values parsed without ``from_json_text``)."""
    if isinstance(value, dict):
        return _decode_object({key: decode(item) for key, item in value.items()})
    if isinstance(value, list):
        return [decode(item) for item in value]
    return value


def _float_name(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return "-0.0"


def _decode_object(obj: dict[str, Any]) -> Any:
    # json calls this innermost object first, so an escaped pair's value is already decoded,
    # and the object it returns is never looked at again.
    if len(obj) != 1:
        return obj
    ((key, item),) = obj.items()
    if key == FLOAT_KEY and isinstance(item, str) and item in _SPECIAL_FLOATS:
        return float(item)
    if key == ESCAPED_KEY and isinstance(item, list) and len(item) == 2 and isinstance(item[0], str):
        return {item[0]: item[1]}
    return obj
