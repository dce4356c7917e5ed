"""Column kinds: which kind a source field gets, and how a value becomes a column value."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any, Final

from app.contracts import FieldSpec, Record, TableSchema
from app.warehouses import codec

TEXT: Final = "text"
NUMBER: Final = "number"
INTEGER: Final = "integer"
BOOLEAN: Final = "boolean"
DATE: Final = "date"
TIMESTAMP: Final = "timestamp"
JSON: Final = "json"
KINDS: Final = frozenset({TEXT, NUMBER, INTEGER, BOOLEAN, DATE, TIMESTAMP, JSON})

#: Airtable omits a checkbox that is not ticked, so for this type "absent" means False.
CHECKBOX: Final = "checkbox"

_AIRTABLE_KINDS: Final[dict[str, str]] = {
    **dict.fromkeys(("number", "currency", "percent", "rating", "duration"), NUMBER),
    **dict.fromkeys(("autoNumber", "count"), INTEGER),
    CHECKBOX: BOOLEAN,
    "date": DATE,
    **dict.fromkeys(("dateTime", "createdTime", "lastModifiedTime"), TIMESTAMP),
    **dict.fromkeys(
        (
            "multipleAttachments",
            "multipleRecordLinks",
            "singleCollaborator",
            "multipleCollaborators",
            "createdBy",
            "lastModifiedBy",
            "multipleSelects",
            "multipleLookupValues",
            "lookup",
            "barcode",
            "button",
            # Both arrive as objects ({"state", "value", …} and {"id", "name", …}), not strings.
            "aiText",
            "externalSyncSource",
        ),
        JSON,
    ),
    **dict.fromkeys(
        (
            "singleLineText",
            "multilineText",
            "richText",
            "email",
            "url",
            "phoneNumber",
            "singleSelect",
        ),
        TEXT,
    ),
}
#: Computed types whose values take the kind of ``FieldSpec.result_type``, and which may
#: send a formula error object instead of a value.
COMPUTED_TYPES: Final = frozenset({"formula", "rollup"})
#: The keys of Airtable's formula error objects: ``{"error": "#ERROR!"}``, ``{"specialValue": "NaN"}``.
_FORMULA_ERROR_KEYS: Final = frozenset({"error", "specialValue"})

BIGINT_MIN: Final = -(2**63)
BIGINT_MAX: Final = 2**63 - 1
_DATE_RE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIMESTAMP_RE: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)?"
)


class Misfit(Enum):
    """The marker ``to_column`` returns when a value does not fit its column's kind."""

    VALUE = "misfit"


#: Returned by ``to_column`` for a value that must go to ``__unfit`` instead of its column.
MISFIT: Final = Misfit.VALUE


def kind_for_type(type_name: str | None, result_type: str | None = None) -> str | None:
    """The kind of a source field type, or None when it must be inferred from values.

    Args:
        type_name: The source's type name (Airtable's ``type``), or None when unknown.
        result_type: For formula and rollup fields, the type of their value, when known.

    Returns:
        One of ``KINDS``, or None for an unknown type (or a computed one of unknown result).
    """
    if type_name in COMPUTED_TYPES:
        return _AIRTABLE_KINDS.get(result_type) if result_type else None
    return _AIRTABLE_KINDS.get(type_name) if type_name else None


def infer_kind(values: Iterable[Any]) -> str:
    """The narrowest kind that fits every non-None value (``text`` when there are none).

    Args:
        values: Sample values of one field.

    Returns:
        ``json`` if any value is a list or dict; else boolean, integer, number, date or
        timestamp when every value is one; else ``text``.
    """
    present = [v for v in values if v is not None]
    if not present:
        return TEXT
    if any(isinstance(v, list | dict) for v in present):
        return JSON
    # Whole floats (1.0) are left to ``number``: a later 2.5 must not become a misfit.
    if all(type(v) is int and BIGINT_MIN <= v <= BIGINT_MAX for v in present):
        return INTEGER
    for kind in (BOOLEAN, NUMBER, DATE, TIMESTAMP):
        if all(to_column(kind, v) is not MISFIT for v in present):
            return kind
    return TEXT


def kind_for_field(field: FieldSpec, values: Sequence[Any] = ()) -> str:
    """The kind of ``field``: its preset kind, else its type's kind, else inferred from ``values``.

    Raises:
        ValueError: ``field.kind`` is set to something that is not a kind.
    """
    if field.kind is not None:
        if field.kind not in KINDS:
            raise ValueError(f"field {field.name!r} has unknown kind {field.kind!r}")
        return field.kind
    if field.type in COMPUTED_TYPES:
        # An error says nothing about the kind of the formula's values.
        values = [v for v in values if not is_formula_error(v)]
    return kind_for_type(field.type, field.result_type) or infer_kind(values)


def is_formula_error(value: Any) -> bool:
    """Whether ``value`` is a formula error object Airtable sends instead of a result.

    ``{"error": "#ERROR!"}`` (or ``#DIV/0!`` …) and ``{"specialValue": "NaN"}`` (or
    ``"Infinity"``): one key, a string. Only formula and rollup values are read this way
    (``COMPUTED_TYPES``); in other fields such an object is data.
    """
    if not isinstance(value, dict) or len(value) != 1:
        return False
    ((key, item),) = value.items()
    return key in _FORMULA_ERROR_KEYS and isinstance(item, str)


def detect_schema(schema: TableSchema, sample: list[Record]) -> TableSchema:
    """Fill every field's kind, and append the fields the sample has but the schema lacks.

    Args:
        schema: The source's schema (possibly with no fields at all).
        sample: Some records of the table, used to infer untyped and unknown fields.

    Returns:
        The schema with every ``FieldSpec.kind`` set; extra fields (type None) come after the
        known ones, in order of first appearance in the sample.
    """
    known = {f.name for f in schema.fields}
    extra: dict[str, None] = {}
    for record in sample:
        for name in record.get("fields") or {}:
            if name not in known:
                extra.setdefault(name, None)

    def values(name: str) -> list[Any]:
        return [r["fields"][name] for r in sample if name in (r.get("fields") or {})]

    fields = [replace(f, kind=kind_for_field(f, values(f.name))) for f in schema.fields]
    fields += [FieldSpec(name=n, kind=infer_kind(values(n))) for n in extra]
    return replace(schema, fields=tuple(fields))


def parse_timestamp(value: str) -> datetime | None:
    """An aware UTC datetime from an ISO 8601 string, or None if it is not one.

    A string without an offset is taken as UTC: Airtable always sends ``Z``, and guessing
    the server's local zone would shift values silently.
    """
    if not _TIMESTAMP_RE.fullmatch(value):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is UTC else as_utc(parsed)  # Airtable's "Z" is UTC already


def as_utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (a naive one is taken to be UTC already)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_timestamp(value: datetime) -> str:
    """Airtable's timestamp format, ``2024-03-01T10:20:30.000Z`` (microseconds only if any)."""
    value = as_utc(value)
    timespec = "microseconds" if value.microsecond % 1000 else "milliseconds"
    return value.isoformat(timespec=timespec).replace("+00:00", "Z")


def to_json_text(value: Any) -> str:
    """``value`` as the JSON text the warehouse stores (see ``codec``), unicode kept as is.

    NaN, ±Infinity and -0.0 are written as marker objects that ``codec.from_json_text`` reads
    back as the same floats.

    Raises:
        TypeError: a value is not JSON-serialisable.
        ValueError: a value JSON cannot write (a huge int) or nested too deeply.
    """
    return codec.to_json_text(value)


def to_column(kind: str, value: Any) -> Any:
    """``value`` as it is stored in a column of ``kind``, or ``MISFIT`` when it does not fit.

    Only lossless conversions are made (a text column takes only strings, a number column
    only floats and the ints a float holds exactly, an integer column only whole numbers
    within bigint), so a value that fits reads back equal to the original. NaN and ±Infinity
    fit a number column (SQL's double precision holds them; a dialect that loses one moves
    it to ``__unfit``, see ``rows.to_row``).

    Args:
        kind: One of ``KINDS``.
        value: A non-None source value.

    Returns:
        The value to bind, or ``MISFIT``.
    """
    if kind == TEXT:
        return value if isinstance(value, str) else MISFIT
    if kind == BOOLEAN:
        return value if isinstance(value, bool) else MISFIT
    if kind == INTEGER:
        return _to_integer(value)
    if kind == NUMBER:
        return _to_number(value)
    if kind == DATE:
        return _to_date(value)
    if kind == TIMESTAMP:
        return _to_timestamp(value)
    if kind == JSON:
        try:
            to_json_text(value)
        except (TypeError, ValueError):
            return MISFIT
        return value
    raise ValueError(f"unknown column kind {kind!r}")


def from_column(kind: str, value: Any) -> Any:
    """A value read from a column of ``kind``, in the types ``read_records`` promises."""
    if value is None:
        return None
    if kind == NUMBER:
        return float(value)
    if kind == INTEGER:
        return int(value)
    if kind == BOOLEAN:
        return bool(value)
    if kind == TIMESTAMP and isinstance(value, datetime):
        return as_utc(value)
    if kind == DATE and isinstance(value, datetime):
        return value.date()
    return value


def _to_integer(value: Any) -> Any:
    if isinstance(value, bool):
        return MISFIT
    # A whole float is stored as its int (JSON does not tell 4.0 from 4), but not -0.0:
    # as 0 it would lose its sign.
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        if value == 0 and math.copysign(1.0, value) < 0:
            return MISFIT
        value = int(value)
    if isinstance(value, int) and BIGINT_MIN <= value <= BIGINT_MAX:
        return value
    return MISFIT


def _to_number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return MISFIT
    try:
        number = float(value)
    except OverflowError:
        return MISFIT
    # An int beyond 2**53 would come back as a different number: keep it whole in __unfit.
    if isinstance(value, int) and number != value:
        return MISFIT
    return number


def _to_date(value: Any) -> Any:
    if isinstance(value, datetime):
        return MISFIT
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _DATE_RE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return MISFIT
    return MISFIT


def _to_timestamp(value: Any) -> Any:
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, str):
        parsed = parse_timestamp(value)
        return MISFIT if parsed is None else parsed
    return MISFIT
