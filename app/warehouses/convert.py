"""Values a column holds by converting them: scalars as text, numeric text as numbers, and so on.

``kinds.to_column`` stores a value only when the column gives back the same value. These
conversions go further, so that a value still lands in its own column where a user querying
it looks: the column holds the converted value and ``__unfit`` keeps the original (see
``rows.place``), so nothing about the source value is lost. The same functions run on every
warehouse, in-process and on workers, and again when a retyped column is migrated.

Example:
    >>> to_column_by_conversion("text", 12), to_column_by_conversion("text", 2.50)
    ('12', '2.5')
    >>> to_column_by_conversion("number", "042"), to_column_by_conversion("boolean", "true")
    (42.0, True)
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from app.warehouses import kinds
from app.warehouses.kinds import MISFIT

#: A decimal literal as people and APIs write numbers: no spaces, separators or hex.
_DECIMAL_RE: Final = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", re.ASCII)
#: The texts ``number_text`` writes for the floats a decimal literal cannot spell.
_SPECIAL_TEXT: Final = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
#: Whole floats below this are written without an exponent (as Python's repr does).
_PLAIN_LIMIT: Final = 1e16
#: A bigint has at most 19 digits: a larger exponent cannot be one.
_BIGINT_DIGITS: Final = 19
_BOOLEAN_TEXT: Final = {"true": True, "false": False}


def to_column_by_conversion(kind: str, value: Any) -> Any:
    """``value`` converted to what a column of ``kind`` holds, or ``MISFIT``.

    Called for a value that ``kinds.to_column`` does not store as it is. A conversion is
    made only when the converted value means the same thing: a scalar as its canonical
    text (``number_text``, ``true``/``false``), a decimal string as the number it spells
    when a double holds that number exactly (``"042"`` as 42.0, not ``"0.1000000000000000001"``),
    ``true``/``false`` as a boolean, a timestamp at midnight UTC as its date, a date as
    midnight UTC.

    Args:
        kind: One of ``kinds.KINDS``.
        value: A non-None source value (JSON types, or a ``date``/``datetime``).

    Returns:
        The value to bind, or ``MISFIT``.
    """
    if kind == kinds.TEXT:
        return scalar_text(value)
    if kind == kinds.NUMBER:
        return _number_from_text(value) if isinstance(value, str) else MISFIT
    if kind == kinds.INTEGER:
        return _integer_from_text(value) if isinstance(value, str) else MISFIT
    if kind == kinds.BOOLEAN:
        return _BOOLEAN_TEXT.get(value, MISFIT) if isinstance(value, str) else MISFIT
    if kind == kinds.DATE:
        return _date_from_timestamp(value)
    if kind == kinds.TIMESTAMP:
        return _timestamp_from_date(value)
    return MISFIT


def scalar_text(value: Any) -> Any:
    """The canonical text of a JSON scalar (``MISFIT`` for anything else).

    Strings are themselves; booleans ``true``/``false``; ints their digits; floats
    ``number_text``.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        try:
            return str(value)
        except ValueError:  # beyond Python's int-to-text limit: kept whole in __unfit
            return MISFIT
    if isinstance(value, float):
        return number_text(value)
    return MISFIT


def number_text(value: float) -> str:
    """The canonical text of a float: the shortest text that reads back as the same double.

    Whole numbers below 1e16 have no ``.0`` (JSON does not tell 4.0 from 4); larger and
    smaller magnitudes use Python's repr (``1e+16``, ``1.5e-07``). NaN, ±Infinity and -0.0
    are ``NaN``, ``Infinity``, ``-Infinity`` and ``-0``.

    Example:
        >>> [number_text(v) for v in (4.0, 0.1 + 0.2, 1e16, -0.0, float("-inf"))]
        ['4', '0.30000000000000004', '1e+16', '-0', '-Infinity']
    """
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0 and math.copysign(1.0, value) < 0:
        return "-0"
    if value.is_integer() and abs(value) < _PLAIN_LIMIT:
        return str(int(value))
    return repr(value)


def _number_from_text(text: str) -> Any:
    special = _SPECIAL_TEXT.get(text)
    if special is not None:
        return special
    if not _DECIMAL_RE.fullmatch(text):
        return MISFIT
    number = float(text)
    # Exact: the double's shortest text has the same decimal value as the text given, so
    # "0.1" fits but digits a double drops (2**53 + 1, or 1e999 becoming inf) do not.
    if not math.isfinite(number) or Decimal(text) != Decimal(repr(number)):
        return MISFIT
    return number


def _integer_from_text(text: str) -> Any:
    if not _DECIMAL_RE.fullmatch(text):
        return MISFIT
    try:
        number = Decimal(text)
        # Checked before int(): "1e999999999" would build a billion-digit int.
        if number.adjusted() > _BIGINT_DIGITS or number != number.to_integral_value():
            return MISFIT
    except InvalidOperation:  # an exponent too large for Decimal's context
        return MISFIT
    return kinds.to_column(kinds.INTEGER, int(number))


def _date_from_timestamp(value: Any) -> Any:
    stamp = kinds.to_column(kinds.TIMESTAMP, value)
    if stamp is MISFIT or not isinstance(value, str | datetime):
        return MISFIT
    assert isinstance(stamp, datetime)
    return stamp.date() if stamp.time() == time(0) else MISFIT


def _timestamp_from_date(value: Any) -> Any:
    day = kinds.to_column(kinds.DATE, value)
    if day is MISFIT:
        return MISFIT
    assert isinstance(day, date)
    return datetime.combine(day, time(0), tzinfo=UTC)
