"""Records to table rows and back; what does not fit a column is kept whole in ``__unfit``."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from app.contracts import Column, Record
from app.warehouses import convert, kinds, naming

#: The longest reason (and reported id) kept for a rejected record: reports stay one line.
MAX_REPORT_CHARS: Final = 300


class UnstorableRecord(ValueError):
    """A record that no column (not even ``__unfit``) can hold; the message is the reason."""


def to_row(
    record: Record,
    columns: Sequence[Column],
    run_id: str,
    *,
    exact_floats: bool = True,
    allows_nul: bool = True,
    packed: bool = False,
) -> dict[str, Any]:
    """The row that stores ``record`` in a table with ``columns``.

    A None value counts as absent. Each value goes where ``place`` says; ``__unfit`` keeps
    ``{field name: value}`` for the values it keeps and for every field the table has no
    column for.

    Args:
        record: The source record.
        columns: The table's field columns.
        run_id: The run writing the row.
        exact_floats: Whether a number column keeps NaN and -0.0 (PostgreSQL's does; SQLite
            makes NaN NULL and -0.0 zero, so there they go to ``__unfit``).
        allows_nul: Whether text and JSON may hold NUL characters (not on PostgreSQL).
        packed: Put every field in ``__unfit`` and leave the field columns NULL: for a
            record too wide for one database row.

    Raises:
        UnstorableRecord: the record is not an object, has no string id, a createdTime that
            is not a timestamp, or a value that is neither JSON nor valid unicode, or holds
            a NUL character where ``allows_nul`` is False.
    """
    if not isinstance(record, Mapping):
        raise UnstorableRecord(f"a record must be an object, not {type(record).__name__}")
    record_id = record.get("id")
    if not isinstance(record_id, str) or not record_id:
        raise UnstorableRecord(f"record id must be a non-empty string, not {record_id!r}")
    fields = record.get("fields") or {}
    if not isinstance(fields, Mapping):
        raise UnstorableRecord("record fields must be an object")
    row: dict[str, Any] = {
        naming.ID: record_id,
        naming.CREATED_TIME: _created_time(record.get("createdTime")),
        naming.RUN_ID: run_id,
    }
    unfit: dict[str, Any] = {}
    for col in columns:
        if packed:
            row[col.column] = None
            continue
        value = fields.get(col.field_name)
        row[col.column], keep = cell(col, value, exact_floats=exact_floats)
        if keep:
            unfit[col.field_name] = value
    mapped = set() if packed else {col.field_name for col in columns}
    unfit.update((k, v) for k, v in fields.items() if k not in mapped and v is not None)
    row[naming.UNFIT] = unfit or None
    # A listed record lives at the source (Airtable can restore a deleted one).
    row[naming.DELETED_AT] = None
    _check_storable(record_id, fields, unfit, allows_nul=allows_nul)
    return row


def cell(column: Column, value: Any, *, exact_floats: bool = True) -> tuple[Any, bool]:
    """What ``column`` stores for a field's ``value`` (None or absent: empty), and whether
    ``__unfit`` keeps the value: ``place``, and an empty checkbox is False (Airtable omits an
    unticked one; only a boolean column can say False). Whole records and field-by-field
    updates both store values through this."""
    if value is None:
        absent_false = column.source_type == kinds.CHECKBOX and column.kind == kinds.BOOLEAN
        return (False if absent_false else None), False
    return place(column, value, exact_floats=exact_floats)


def place(column: Column, value: Any, *, exact_floats: bool = True) -> tuple[Any, bool]:
    """Where a non-None source value of ``column``'s field goes.

    The rules, the same on every warehouse and in a retype's migration:

    - a value the column gives back as it is (``kinds.to_column``) goes in the column alone;
    - a value the column holds converted (``convert.to_column_by_conversion``: a number in
      a text column as its text, a numeric string in a number column…) goes in the column
      converted, and ``__unfit`` keeps the original, so reading the record gives it back;
    - a formula error object (``kinds.is_formula_error``, formula and rollup fields only)
      and any other value leave the column NULL and go to ``__unfit``.

    Args:
        column: The field's column.
        value: The source value (not None).
        exact_floats: Whether the database's number column keeps NaN and -0.0.

    Returns:
        The column's value (None: NULL), and whether ``__unfit`` keeps ``value``.
    """
    if column.source_type in kinds.COMPUTED_TYPES and kinds.is_formula_error(value):
        return None, True
    stored = kinds.to_column(column.kind, value)
    if stored is not kinds.MISFIT and _holds(column.kind, stored, exact_floats):
        return stored, False
    stored = convert.to_column_by_conversion(column.kind, value)
    if stored is not kinds.MISFIT and _holds(column.kind, stored, exact_floats):
        return stored, True
    return None, True


def _holds(kind: str, stored: Any, exact_floats: bool) -> bool:
    """Whether the database gives ``stored`` back (SQLite's REAL loses NaN and -0.0)."""
    return exact_floats or kind != kinds.NUMBER or _exact_everywhere(stored)


def split_superseded(records: Iterable[Record]) -> tuple[list[Record], list[Record]]:
    """``records`` with one record per id, the last one winning, and the earlier copies.

    An upsert touches a row once, so of several records with the same id in one batch only
    the last is written; the others are returned so they can be reported, not lost.
    """
    latest: dict[Any, Record] = {}
    superseded: list[Record] = []
    for record in records:
        record_id = record.get("id") if isinstance(record, Mapping) else None
        # Only string ids can be stored; any other record is its own entry (and rejected).
        key: Any = record_id if isinstance(record_id, str) else object()
        if key in latest:
            superseded.append(latest.pop(key))
        latest[key] = record
    return list(latest.values()), superseded


def report_id(record: Any) -> str:
    """The id to report ``record`` under: its id, or the id's repr if no catalog could hold it.

    A repr is used for a missing or non-string id, and for one with a NUL character or a
    lone surrogate (neither PostgreSQL nor UTF-8 can hold those).
    """
    value = record.get("id") if isinstance(record, Mapping) else None
    if isinstance(value, str) and "\x00" not in value and _encodable(value):
        return value[:MAX_REPORT_CHARS]
    return repr(value)[:MAX_REPORT_CHARS]


def report_text(text: str) -> str:
    """``text`` as one storable line: whitespace runs made one space, NUL and lone
    surrogates escaped, at most ``MAX_REPORT_CHARS`` characters."""
    line = " ".join(text.split()).replace("\x00", "\\x00")
    line = line.encode("utf-8", "backslashreplace").decode("utf-8")
    return line[:MAX_REPORT_CHARS]


def to_record(row: Mapping[Any, Any], columns: Sequence[Column]) -> Record:
    """The record a row stores: Airtable's shape, so it compares with the source's record.

    Empty (NULL) columns and unticked checkboxes are left out, as Airtable leaves them out.
    """
    fields: dict[str, Any] = {}
    for col in columns:
        value = kinds.from_column(col.kind, row.get(col.column))
        if value is None or (value is False and col.source_type == kinds.CHECKBOX):
            continue
        fields[col.field_name] = value
    fields.update(row.get(naming.UNFIT) or {})
    record: Record = {"id": row[naming.ID], "fields": fields}
    created = row.get(naming.CREATED_TIME)
    if isinstance(created, datetime):
        record["createdTime"] = kinds.format_timestamp(created)
    return record


def _exact_everywhere(number: float) -> bool:
    """Whether every database's double precision column gives ``number`` back as it was."""
    return not math.isnan(number) and not (number == 0.0 and math.copysign(1.0, number) < 0)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _created_time(value: Any) -> datetime | None:
    if value is None:
        return None
    stored = kinds.to_column(kinds.TIMESTAMP, value)
    if stored is kinds.MISFIT:
        raise UnstorableRecord(f"createdTime {value!r} is not an ISO 8601 timestamp")
    assert isinstance(stored, datetime)
    return stored


def _check_storable(
    record_id: str, fields: Mapping[str, Any], unfit: dict[str, Any], *, allows_nul: bool
) -> None:
    """Fail on what the driver would raise outside its error classes, failing the whole batch,
    and on NUL characters where the database refuses them (with a clearer reason)."""
    try:
        kinds.to_json_text(unfit)
    except (TypeError, ValueError) as exc:
        raise UnstorableRecord(f"a field holds a value JSON cannot represent: {exc}") from None
    try:
        record_id.encode("utf-8")
        text = json.dumps(fields, ensure_ascii=False, default=str)
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UnstorableRecord(f"a field is not valid unicode: {exc.reason}") from None
    except RecursionError:
        raise UnstorableRecord("a field is nested too deeply to store") from None
    # json writes NUL as \u0000; a literal backslash-u0000 in the text is a false alarm
    # that the walk below clears.
    if allows_nul or ("\x00" not in record_id and "\\u0000" not in text):
        return
    if "\x00" in record_id:
        raise UnstorableRecord("the record id holds a NUL character (\\x00)")
    for name, value in fields.items():
        if "\x00" in name or _holds_nul(value):
            raise UnstorableRecord(
                f"field {report_text(repr(name))} holds a NUL character (\\x00), which"
                " PostgreSQL cannot store in text or JSON"
            )


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any("\x00" in str(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_holds_nul(item) for item in value)
    return False
