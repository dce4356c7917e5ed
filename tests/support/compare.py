"""Independent checks of what landed: values compared by meaning, not by our own converters."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import Any


def _as_utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def same_value(expected: Any, actual: Any) -> bool:
    """Whether a value read back from the warehouse means the source's value."""
    if isinstance(actual, dt.datetime) and isinstance(expected, str):
        return _as_utc(actual) == _as_utc(dt.datetime.fromisoformat(expected.replace("Z", "+00:00")))
    if isinstance(actual, dt.date) and isinstance(expected, str):
        return actual == dt.date.fromisoformat(expected)
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if isinstance(expected, int | float) and isinstance(actual, int | float | Decimal):
        if _is_nan(expected) or _is_nan(actual):
            return _is_nan(expected) and _is_nan(actual)
        return math.isclose(float(expected), float(actual), rel_tol=1e-12, abs_tol=0.0)
    if expected == actual:
        return True
    # Containers holding NaN (never == itself) or numbers PostgreSQL's JSONB gives back as
    # another type (1e+308 as the int 10**308): compare element by element.
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(map(same_value, expected, actual))
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(
            same_value(value, actual[key]) for key, value in expected.items()
        )
    return False


def _is_nan(value: Any) -> bool:
    return isinstance(value, float | Decimal) and math.isnan(value)


def same_float(expected: float, actual: Any) -> bool:
    """Whether ``actual`` is exactly the float ``expected``: NaN as NaN, -0.0 as -0.0."""
    if not isinstance(actual, float):
        return False
    if math.isnan(expected):
        return math.isnan(actual)
    return actual == expected and math.copysign(1.0, actual) == math.copysign(1.0, expected)


def differences(source_records: list[dict[str, Any]], landed: list[dict[str, Any]]) -> list[str]:
    """Every way ``landed`` differs from ``source_records`` (empty when they match)."""
    problems: list[str] = []
    by_id = {r["id"]: r for r in landed}
    if len(by_id) != len(landed):
        problems.append(f"duplicate ids: {len(landed) - len(by_id)}")
    missing = [r["id"] for r in source_records if r["id"] not in by_id]
    if missing:
        problems.append(f"{len(missing)} records missing, e.g. {missing[:3]}")
    extra = set(by_id) - {r["id"] for r in source_records}
    if extra:
        problems.append(f"{len(extra)} unexpected records, e.g. {sorted(extra)[:3]}")
    for record in source_records:
        got = by_id.get(record["id"])
        if got is None:
            continue
        for name, value in record["fields"].items():
            if name not in got["fields"]:
                problems.append(f"{record['id']}.{name!r} lost (was {value!r})")
            elif not same_value(value, got["fields"][name]):
                problems.append(f"{record['id']}.{name!r}: {value!r} != {got['fields'][name]!r}")
        for name, value in got["fields"].items():
            if name not in record["fields"] and value not in (None, False, "", [], {}):
                problems.append(f"{record['id']}.{name!r} appeared from nowhere: {value!r}")
        if len(problems) > 20:
            break
    return problems
