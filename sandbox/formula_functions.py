"""Values, coercions and functions of the sandbox's Airtable formula subset."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.clock import EPOCH, datetime_from_ms, iso_from_ms, now_ms, parse_iso


class FormulaError(Exception):
    """A formula the sandbox cannot parse or does not support (the API answers 422)."""


class ErrorValue:
    """The ``#ERROR!`` value: what a failed function or a formula field error evaluates to."""

    def __repr__(self) -> str:
        return "#ERROR!"


ERROR = ErrorValue()


class Row:
    """The record a formula is evaluated against, with its table's timestamps."""

    __slots__ = ("created_ms", "modified_ms", "record")

    def __init__(self, record: dict[str, Any], created_ms: Callable[[], int],
                 modified_ms: Callable[[], int]) -> None:
        self.record = record
        self.created_ms = created_ms
        self.modified_ms = modified_ms


def cell_value(kind: str, value: Any) -> Any:
    """A stored cell value as formulas see it: times become datetimes, objects their label."""
    if value is None:
        return None
    if kind in ("date", "dateTime", "createdTime", "lastModifiedTime") and isinstance(value, str):
        return _to_time(value)
    if isinstance(value, dict):
        return _object_value(value)
    if isinstance(value, list):
        return [_object_value(v) if isinstance(v, dict) else v for v in value]
    return value


def _object_value(value: dict[str, Any]) -> Any:
    if "error" in value:
        return ERROR
    if "specialValue" in value:
        return float(str(value["specialValue"]).replace("Infinity", "inf"))
    for key in ("name", "text", "label", "filename"):
        if key in value:
            return value[key]
    return ERROR


def _to_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return parse_iso(value)
        except ValueError:
            return None
    return None


def to_text(value: Any) -> str:
    """A value as ``&`` and the text functions see it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return iso_from_ms((value - EPOCH) // timedelta(milliseconds=1))
    if isinstance(value, list):
        return ", ".join(to_text(v) for v in value)
    return str(value)


def to_number(value: Any) -> float:
    """A value as arithmetic sees it; blank is 0, unreadable text is an error."""
    if value is None:
        return 0.0
    if isinstance(value, (bool, int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value) if value.strip() else 0.0
        except ValueError:
            raise FormulaError(f"not a number: {value!r}") from None
    raise FormulaError(f"not a number: {value!r}")


def truthy(value: Any) -> bool:
    """Whether a record passes the filter (or an ``IF``/``AND`` argument holds)."""
    if value is None or value is ERROR:
        return False
    if isinstance(value, float):
        return value != 0 and not math.isnan(value)
    if isinstance(value, (str, list)):
        return len(value) > 0
    return bool(value)


def _align(a: Any, b: Any) -> tuple[Any, Any]:
    """Bring two operands to one type, loosely, as Airtable does."""
    if isinstance(a, datetime) or isinstance(b, datetime):
        return _to_time(a), _to_time(b)
    a = to_text(a) if isinstance(a, list) else a
    b = to_text(b) if isinstance(b, list) else b
    if a is None and b is None:
        return "", ""
    if isinstance(a, (bool, int, float)) or isinstance(b, (bool, int, float)):
        try:
            return to_number(a), to_number(b)
        except FormulaError:
            return to_text(a), to_text(b)
    return to_text(a), to_text(b)


def compare(op: str, a: Any, b: Any) -> Any:
    """Evaluate ``a op b`` for =, !=, <, <=, >, >=."""
    if a is ERROR or b is ERROR:
        return ERROR
    a, b = _align(a, b)
    if a is None or b is None:  # a blank or unreadable time never orders against a time
        return (a is b) if op == "=" else (a is not b) if op == "!=" else False
    return _CHECKS[op](a, b)


# Built once: partition formulas compare every record of a 20,000-record table.
_CHECKS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda x, y: bool(x == y), "!=": lambda x, y: bool(x != y),
    "<": lambda x, y: bool(x < y), "<=": lambda x, y: bool(x <= y),
    ">": lambda x, y: bool(x > y), ">=": lambda x, y: bool(x >= y),
}


def arithmetic(op: str, a: Any, b: Any) -> Any:
    """Evaluate ``a op b`` for +, -, *, / and the text operator &."""
    if a is ERROR or b is ERROR:
        return ERROR
    if op == "&":
        return to_text(a) + to_text(b)
    try:
        x, y = to_number(a), to_number(b)
    except FormulaError:
        return ERROR
    if op == "/":
        return ERROR if y == 0 else x / y
    return x + y if op == "+" else x - y if op == "-" else x * y


_MOMENT_TOKENS = [("YYYY", "%Y"), ("MM", "%m"), ("DD", "%d"), ("HH", "%H"), ("mm", "%M"),
                  ("ss", "%S"), ("M", "%m"), ("D", "%d"), ("H", "%H")]


def _parse_time(text: Any, fmt: Any = None, _locale: Any = None) -> Any:
    if isinstance(text, datetime):
        return text
    if not isinstance(text, str):
        return ERROR
    if fmt is None or fmt in ("x", "X"):
        if fmt in ("x", "X"):
            return datetime_from_ms(int(float(text) * (1 if fmt == "x" else 1000)))
        return _to_time(text) or ERROR
    pattern = re.sub("|".join(t for t, _ in _MOMENT_TOKENS),
                     lambda m: dict(_MOMENT_TOKENS)[m.group(0)], str(fmt))
    try:
        return datetime.strptime(text, pattern).replace(tzinfo=UTC)
    except ValueError:
        return ERROR


# Moment.js format tokens DATETIME_FORMAT understands, longest first so "YYYY" wins over "YY".
_FORMAT_TOKENS = re.compile(r"\[[^\]]*\]|YYYY|YY|MM|M|DD|D|HH|H|mm|m|ss|s|SSS|x|X|Z")


def _format_time(value: Any, fmt: Any = "YYYY-MM-DDTHH:mm:ss.SSS[Z]") -> Any:
    """DATETIME_FORMAT in UTC; ``x`` is the Unix time in ms and ``X`` in seconds (Moment.js)."""
    moment = _to_time(value)
    if moment is None:
        return ERROR
    ms = (moment - EPOCH) // timedelta(milliseconds=1)
    if fmt == "x":  # the partition formulas' case: skip the token scan
        return str(ms)

    def token(match: re.Match[str]) -> str:
        text = match.group(0)
        parts = {
            "YYYY": f"{moment.year:04d}", "YY": f"{moment.year % 100:02d}",
            "MM": f"{moment.month:02d}", "M": str(moment.month),
            "DD": f"{moment.day:02d}", "D": str(moment.day),
            "HH": f"{moment.hour:02d}", "H": str(moment.hour),
            "mm": f"{moment.minute:02d}", "m": str(moment.minute),
            "ss": f"{moment.second:02d}", "s": str(moment.second),
            "SSS": f"{ms % 1000:03d}", "x": str(ms), "X": str(ms // 1000), "Z": "+00:00",
        }
        return text[1:-1] if text.startswith("[") else parts[text]

    return _FORMAT_TOKENS.sub(token, to_text(fmt))


_UNITS = {"milliseconds": 0.001, "ms": 0.001, "seconds": 1, "s": 1, "minutes": 60, "m": 60,
          "hours": 3600, "h": 3600, "days": 86400, "d": 86400, "weeks": 604800, "w": 604800}


def _dateadd(date: Any, count: Any, unit: Any) -> Any:
    moment = _to_time(date)
    key = str(unit) if len(str(unit)) <= 2 else str(unit).lower()
    seconds = _UNITS.get(key) or _UNITS.get(key + "s")
    if moment is None or seconds is None:
        return ERROR
    return moment + timedelta(seconds=to_number(count) * seconds)


def _is_same(a: Any, b: Any, unit: Any = "milliseconds") -> Any:
    x, y = _to_time(a), _to_time(b)
    if x is None or y is None:
        return False
    widths = {"year": 4, "month": 7, "day": 10, "hour": 13, "minute": 16, "second": 19}
    width = widths.get(str(unit).lower().rstrip("s"), 23)
    return to_text(x)[:width] == to_text(y)[:width]


def _find(needle: Any, haystack: Any, start: Any = 1, *, fold: bool = False) -> Any:
    hay, pin = to_text(haystack), to_text(needle)
    if fold:
        hay, pin = hay.lower(), pin.lower()
    found = hay.find(pin, max(int(to_number(start)) - 1, 0))
    return found + 1 if found >= 0 else (None if fold else 0)


def _value(text: Any) -> Any:
    if isinstance(text, str) and text.isdigit():
        return float(text)  # the common case (DATETIME_FORMAT(…, 'x')), without a regex
    try:
        return to_number(re.sub(r"[^0-9.eE+-]", "", to_text(text)))
    except FormulaError:
        return ERROR


Function = Callable[..., Any]
# name -> (fewest args, most args or None, implementation taking the row and the values)
FUNCTIONS: dict[str, tuple[int, int | None, Function]] = {
    "AND": (1, None, lambda row, *a: all(truthy(v) for v in a)),
    "OR": (1, None, lambda row, *a: any(truthy(v) for v in a)),
    "XOR": (1, None, lambda row, *a: sum(truthy(v) for v in a) % 2 == 1),
    "NOT": (1, 1, lambda row, a: not truthy(a)),
    "IF": (2, 3, lambda row, c, yes, no=None: yes if truthy(c) else no),
    "TRUE": (0, 0, lambda row: True),
    "FALSE": (0, 0, lambda row: False),
    "BLANK": (0, 0, lambda row: None),
    "ISERROR": (1, 1, lambda row, a: a is ERROR),
    "RECORD_ID": (0, 0, lambda row: row.record["id"]),
    "CREATED_TIME": (0, 0, lambda row: datetime_from_ms(row.created_ms())),
    # Airtable can watch chosen fields; the sandbox only knows when the record last changed.
    "LAST_MODIFIED_TIME": (0, None, lambda row, *a: datetime_from_ms(row.modified_ms())),
    "NOW": (0, 0, lambda row: datetime_from_ms(now_ms())),
    "TODAY": (0, 0, lambda row: datetime_from_ms(now_ms()).replace(hour=0, minute=0, second=0,
                                                                   microsecond=0)),
    "DATETIME_PARSE": (1, 3, lambda row, *a: _parse_time(*a)),
    "DATETIME_FORMAT": (1, 2, lambda row, *a: _format_time(*a)),
    "DATEADD": (3, 3, lambda row, d, n, u: _dateadd(d, n, u)),
    "IS_AFTER": (2, 2, lambda row, a, b: compare(">", _to_time(a), _to_time(b))),
    "IS_BEFORE": (2, 2, lambda row, a, b: compare("<", _to_time(a), _to_time(b))),
    "IS_SAME": (2, 3, lambda row, *a: _is_same(*a)),
    "LOWER": (1, 1, lambda row, a: to_text(a).lower()),
    "UPPER": (1, 1, lambda row, a: to_text(a).upper()),
    "TRIM": (1, 1, lambda row, a: to_text(a).strip()),
    "LEN": (1, 1, lambda row, a: len(to_text(a))),
    "FIND": (2, 3, lambda row, *a: _find(*a)),
    "SEARCH": (2, 3, lambda row, *a: _find(*a, fold=True)),
    "CONCATENATE": (1, None, lambda row, *a: "".join(to_text(v) for v in a)),
    "ARRAYJOIN": (1, 2, lambda row, a, sep=", ": to_text(sep).join(
        to_text(v) for v in (a if isinstance(a, list) else [a]))),
    "VALUE": (1, 1, lambda row, a: _value(a)),
    "ABS": (1, 1, lambda row, a: abs(to_number(a))),
    "ROUND": (1, 2, lambda row, a, p=0: round(to_number(a), int(to_number(p)))),
}
