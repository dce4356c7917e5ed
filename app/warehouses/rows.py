"""Records to table rows and back; what does not fit a column is kept whole in ``__unfit``."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from app import fastjson
from app.contracts import Column, Record
from app.warehouses import codec, convert, kinds, naming

#: The longest reason (and reported id) kept for a rejected record: reports stay one line.
MAX_REPORT_CHARS: Final = 300
#: The largest int every double holds exactly (and so reads back as the same number).
_EXACT_INT: Final = 2**53
#: Encoders built once: ``json.dumps`` with options builds one per call, for every record.
_STRICT_JSON: Final = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_LENIENT_JSON: Final = json.JSONEncoder(ensure_ascii=False, default=str)
#: ``_STRICT_JSON`` without the check for circular values (it tracks every list and dict in
#: a dict of ids): listed records cannot be circular, and one that is fails with
#: RecursionError, which sends it the general way.
_PLAIN_JSON: Final = json.JSONEncoder(ensure_ascii=False, allow_nan=False, check_circular=False,
                                      separators=(",", ":"))


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
    column for. (``RowMaker`` does the same for many records of one table, faster.)

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
    maker = RowMaker(columns, run_id, exact_floats=exact_floats, allows_nul=allows_nul)
    return maker(record, packed=packed)


#: ``place`` for one column and one value: (column value, whether ``__unfit`` keeps the value).
#: The second argument says the value is plain JSON (``place``'s ``encodable``).
Placer = Callable[[Any, bool], tuple[Any, bool]]


class RowMaker:
    """``to_row`` for the records of one table: what depends only on the columns is worked out
    once, and each column's common values (a str in a text column, a float in a number
    column…) are placed without going through ``place``, with the same result."""

    def __init__(
        self,
        columns: Sequence[Column],
        run_id: str,
        *,
        exact_floats: bool = True,
        allows_nul: bool = True,
        json_text: bool = False,
    ) -> None:
        """Args:
            columns, run_id, exact_floats, allows_nul: as ``to_row``'s.
            json_text: Give a JSON column's value as its stored text (``codec.JSONText``),
                encoded once here instead of once to check the record and again when bound:
                only for a warehouse whose every write path binds JSON through
                ``codec.to_json_text`` (which passes such text through).
        """
        self.run_id = run_id
        self.allows_nul = allows_nul
        self._plan = [(col.field_name, col.column, _placer(col, exact_floats), _absent(col))
                      for col in columns]
        self._mapped = frozenset(col.field_name for col in columns)
        # The common record goes through ``_plain_row``; it needs every field name storable
        # and NUL allowed (``_check_storable`` looks for NUL in the whole text otherwise).
        self._texts = (
            [(col.field_name, col.column, _absent(col), col.kind == kinds.JSON,
              col.source_type in kinds.COMPUTED_TYPES, _placer(col, exact_floats))
             for col in columns]
            if json_text and allows_nul and all(_encodable(c.field_name) for c in columns)
            else None)

    def __call__(self, record: Record, *, packed: bool = False) -> dict[str, Any]:
        """The row of ``record``; see ``to_row``."""
        if self._texts is not None and not packed:
            plain = self._plain_row(record)
            if plain is not None:
                return plain
        # (exact type first: an isinstance check against Mapping costs more than the rest)
        if type(record) is not dict and not isinstance(record, Mapping):
            raise UnstorableRecord(f"a record must be an object, not {type(record).__name__}")
        record_id = record.get("id")
        if not isinstance(record_id, str) or not record_id:
            raise UnstorableRecord(f"record id must be a non-empty string, not {record_id!r}")
        fields = record.get("fields") or {}
        if type(fields) is not dict and not isinstance(fields, Mapping):
            raise UnstorableRecord("record fields must be an object")
        row: dict[str, Any] = {
            naming.ID: record_id,
            naming.CREATED_TIME: _created_time(record.get("createdTime")),
            naming.RUN_ID: self.run_id,
        }
        # One strict encoding of all the fields answers, for the usual record, what each JSON
        # value's own encoding would: every value encodes and needs no marker.
        text = _plain_json_text(fields)
        encodable = text is not None
        unfit: dict[str, Any] = {}
        if packed:
            for _, column, _, _ in self._plan:
                row[column] = None
        else:
            for field_name, column, placer, absent in self._plan:
                value = fields.get(field_name)
                if value is None:
                    row[column] = absent
                    continue
                row[column], keep = placer(value, encodable)
                if keep:
                    unfit[field_name] = value
        mapped = frozenset() if packed else self._mapped
        unfit.update((k, v) for k, v in fields.items() if k not in mapped and v is not None)
        row[naming.UNFIT] = unfit or None
        # A listed record lives at the source (Airtable can restore a deleted one).
        row[naming.DELETED_AT] = None
        _check_storable(record_id, fields, unfit, allows_nul=self.allows_nul, text=text)
        return row

    def _plain_row(self, record: Record) -> dict[str, Any] | None:
        """The row of a record whose every value lands in its own column as it is, with each
        JSON value as its stored text; None for any other record (``__call__`` then makes
        its row the general way, which also gives every reason to reject it).

        What it accepts gets the row the general way gives, JSON values written as text:
        each JSON value encodes strictly with no marker (so the record's values are what the
        general way calls encodable), nothing goes to ``__unfit``, and every string is
        valid unicode, field names included (the general way's check of the record's text).
        """
        assert self._texts is not None
        if type(record) is not dict:
            return None
        record_id = record.get("id")
        fields = record.get("fields")
        if type(record_id) is not str or not record_id or not storable_text(record_id):
            return None
        if fields is None:
            fields = {}
        elif type(fields) is not dict:
            return None
        if not self._mapped.issuperset(fields):
            return None  # a field without a column: kept in __unfit (or an odd name)
        try:
            created = _created_time(record.get("createdTime"))
        except UnstorableRecord:
            return None
        row: dict[str, Any] = {naming.ID: record_id, naming.CREATED_TIME: created,
                               naming.RUN_ID: self.run_id}
        walk = codec.needs_walk
        for field_name, column, absent, is_json, computed, placer in self._texts:
            value = fields.get(field_name)
            if value is None:
                row[column] = absent
            elif is_json:
                if computed and kinds.is_formula_error(value):
                    return None
                text = _plain_json_value(value)
                if text is None or walk(text):
                    return None
                row[column] = codec.JSONText(text)
            else:
                kind = type(value)
                if kind is not str and kind is not int and kind is not float and kind is not bool:
                    return None
                if kind is str and not storable_text(value):
                    return None
                stored, keep = placer(value, True)
                if keep:
                    return None
                row[column] = stored
        row[naming.UNFIT] = None
        row[naming.DELETED_AT] = None
        return row


def storable_text(text: str) -> bool:
    """Whether ``text`` is valid unicode (no lone surrogate), which UTF-8 can store."""
    return text.isascii() or _encodable(text)


def _placer(column: Column, exact_floats: bool) -> Placer:
    """``place`` for ``column``, with a shortcut for the values its kind takes as they are.

    The shortcuts test exact types, so anything unusual (a str subclass, an int in a number
    column, an object in a formula's JSON column) still goes through ``place``.
    """

    def slow(value: Any, encodable: bool) -> tuple[Any, bool]:
        return place(column, value, exact_floats=exact_floats, encodable=encodable)

    kind = column.kind
    if kind == kinds.TEXT:
        return lambda value, encodable: (value, False) if type(value) is str else slow(value, encodable)
    if kind == kinds.BOOLEAN:
        return lambda value, encodable: (value, False) if type(value) is bool else slow(value, encodable)
    if kind == kinds.INTEGER:
        return lambda value, encodable: (
            (value, False) if type(value) is int and kinds.BIGINT_MIN <= value <= kinds.BIGINT_MAX
            else slow(value, encodable))
    if kind == kinds.NUMBER:
        def number(value: Any, encodable: bool) -> tuple[Any, bool]:
            if type(value) is float and (exact_floats or _exact_everywhere(value)):
                return value, False
            if type(value) is int and -_EXACT_INT <= value <= _EXACT_INT:
                return float(value), False  # a double holds it exactly
            return slow(value, encodable)
        return number
    if kind == kinds.TIMESTAMP or kind == kinds.DATE:
        # (a string that is no timestamp or date is converted, or kept, by ``place``)
        def moment(value: Any, encodable: bool) -> tuple[Any, bool]:
            if type(value) is str:
                stored = kinds.to_column(kind, value)
                if stored is not kinds.MISFIT:
                    return stored, False
            return slow(value, encodable)
        return moment
    if kind == kinds.JSON and column.source_type not in kinds.COMPUTED_TYPES:
        # (a formula's or rollup's object may be an error object: ``place`` looks)
        return lambda value, encodable: (value, False) if encodable else slow(value, encodable)
    return slow


def cell(column: Column, value: Any, *, exact_floats: bool = True) -> tuple[Any, bool]:
    """What ``column`` stores for a field's ``value`` (None or absent: empty), and whether
    ``__unfit`` keeps the value: ``place``, or the column's empty value. Field-by-field updates
    store values through this; ``RowMaker`` does the same for whole records."""
    if value is None:
        return _absent(column), False
    return place(column, value, exact_floats=exact_floats)


def _absent(column: Column) -> Any:
    """What ``column`` holds for an empty or absent value: Airtable omits an unticked checkbox,
    and only a boolean column can say False."""
    return False if column.source_type == kinds.CHECKBOX and column.kind == kinds.BOOLEAN else None


def place(
    column: Column, value: Any, *, exact_floats: bool = True, encodable: bool = False
) -> tuple[Any, bool]:
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
        encodable: The caller knows ``value`` is stored as its strict JSON text, with no
            marker (``codec.needs_walk``), so a JSON column takes it without encoding it.

    Returns:
        The column's value (None: NULL), and whether ``__unfit`` keeps ``value``.
    """
    if column.source_type in kinds.COMPUTED_TYPES and kinds.is_formula_error(value):
        return None, True
    if encodable and column.kind == kinds.JSON:
        return value, False
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


def _plain_json_text(fields: Mapping[str, Any]) -> str | None:
    """``fields`` as strict JSON text when they are plain JSON needing no marker, else None."""
    text = fastjson.dumps(fields)
    if text is None:
        try:
            text = _STRICT_JSON.encode(fields)
        except (TypeError, ValueError, RecursionError):
            return None
    return None if codec.needs_walk(text) else text


def _plain_json_value(value: Any) -> str | None:
    """``value`` as the strict JSON text a JSON column stores, when UTF-8 can carry it; else
    None (``fastjson.dumps`` writes only storable text)."""
    text = fastjson.dumps(value)
    if text is not None:
        return text
    try:
        text = _PLAIN_JSON.encode(value)
    except (TypeError, ValueError, RecursionError):
        return None
    return text if storable_text(text) else None


def _check_storable(
    record_id: str,
    fields: Mapping[str, Any],
    unfit: dict[str, Any],
    *,
    allows_nul: bool,
    text: str | None = None,
) -> None:
    """Fail on what the driver would raise outside its error classes, failing the whole batch,
    and on NUL characters where the database refuses them (with a clearer reason).

    ``text`` is ``_plain_json_text(fields)`` when that is not None: ``unfit`` then holds only
    values of ``fields``, which encode, and ``text`` is what the lenient encoding gives.
    """
    if text is None:
        try:
            kinds.to_json_text(unfit)
        except (TypeError, ValueError) as exc:
            raise UnstorableRecord(f"a field holds a value JSON cannot represent: {exc}") from None
    try:
        record_id.encode("utf-8")
        if text is None:
            text = _LENIENT_JSON.encode(fields)
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
