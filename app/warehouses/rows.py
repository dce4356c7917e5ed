"""Records to table rows and back; what does not fit a column is kept whole in ``__unfit``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from app.contracts import Column, Record
from app.warehouses import kinds, naming


class UnstorableRecord(ValueError):
    """A record that no column (not even ``__unfit``) can hold; the message is the reason."""


def to_row(record: Record, columns: Sequence[Column], run_id: str) -> dict[str, Any]:
    """The row that stores ``record`` in a table with ``columns``.

    A None value counts as absent. A value that does not fit its column's kind, and every
    field the table has no column for, goes to ``__unfit`` as ``{field name: value}``.

    Raises:
        UnstorableRecord: the record has no string id, a createdTime that is not a timestamp,
            or a value that is neither JSON nor valid unicode.
    """
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
        value = fields.get(col.field_name)
        if value is None:
            row[col.column] = False if col.source_type == kinds.CHECKBOX else None
            continue
        stored = kinds.to_column(col.kind, value)
        if stored is kinds.MISFIT:
            unfit[col.field_name] = value
            stored = None
        row[col.column] = stored
    mapped = {col.field_name for col in columns}
    unfit.update((k, v) for k, v in fields.items() if k not in mapped and v is not None)
    row[naming.UNFIT] = unfit or None
    _check_storable(record_id, fields, unfit)
    return row


def dedupe(records: Iterable[Record]) -> list[Record]:
    """``records`` with one record per id, the last one winning (an upsert touches a row once)."""
    return list({record.get("id"): record for record in records}.values())


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


def _created_time(value: Any) -> datetime | None:
    if value is None:
        return None
    stored = kinds.to_column(kinds.TIMESTAMP, value)
    if stored is kinds.MISFIT:
        raise UnstorableRecord(f"createdTime {value!r} is not an ISO 8601 timestamp")
    assert isinstance(stored, datetime)
    return stored


def _check_storable(record_id: str, fields: Mapping[str, Any], unfit: dict[str, Any]) -> None:
    """Fail on what the driver would raise outside its error classes, failing the whole batch."""
    try:
        kinds.to_json_text(unfit)
    except (TypeError, ValueError) as exc:
        raise UnstorableRecord(f"a field holds a value JSON cannot represent: {exc}") from None
    try:
        record_id.encode("utf-8")
        json.dumps(fields, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UnstorableRecord(f"a field is not valid unicode: {exc.reason}") from None
