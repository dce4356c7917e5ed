"""Column kinds: Airtable types, inference from values, and which values fit which kind."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from app.contracts import FieldSpec, TableRef, TableSchema
from app.warehouses.kinds import (
    MISFIT,
    detect_schema,
    format_timestamp,
    from_column,
    infer_kind,
    kind_for_field,
    kind_for_type,
    to_column,
)

AIRTABLE_TYPES = {
    "number": "number",
    "currency": "number",
    "percent": "number",
    "rating": "number",
    "duration": "number",
    "autoNumber": "integer",
    "count": "integer",
    "checkbox": "boolean",
    "date": "date",
    "dateTime": "timestamp",
    "createdTime": "timestamp",
    "lastModifiedTime": "timestamp",
    "multipleAttachments": "json",
    "multipleRecordLinks": "json",
    "singleCollaborator": "json",
    "multipleCollaborators": "json",
    "createdBy": "json",
    "lastModifiedBy": "json",
    "multipleSelects": "json",
    "multipleLookupValues": "json",
    "barcode": "json",
    "button": "json",
    "singleLineText": "text",
    "multilineText": "text",
    "richText": "text",
    "email": "text",
    "url": "text",
    "phoneNumber": "text",
    "singleSelect": "text",
}


@pytest.mark.parametrize(("airtable_type", "kind"), sorted(AIRTABLE_TYPES.items()))
def test_airtable_types_map_to_kinds(airtable_type, kind):
    assert kind_for_type(airtable_type) == kind


@pytest.mark.parametrize("computed", ["formula", "rollup"])
def test_computed_fields_take_their_result_kind_or_are_inferred(computed):
    assert kind_for_type(computed, "number") == "number"
    assert kind_for_type(computed, "dateTime") == "timestamp"
    assert kind_for_type(computed, None) is None
    field = FieldSpec("F", computed, "fld1")
    assert kind_for_field(field, [1, 2]) == "integer"
    assert kind_for_field(field, ["a", 1]) == "text"


def test_unknown_or_missing_types_are_inferred():
    assert kind_for_type("someFutureType") is None
    assert kind_for_type(None) is None
    assert kind_for_field(FieldSpec("F", "someFutureType"), [True, False]) == "boolean"
    assert kind_for_field(FieldSpec("F"), []) == "text"


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ([True, False, None], "boolean"),
        ([1, 2, -3], "integer"),
        ([1, 2.5], "number"),
        ([1.0, 2.0], "number"),
        ([2**70 + 1], "text"),
        (["2024-03-01", "1999-12-31"], "date"),
        (["2024-03-01T10:20:30.000Z", "2024-03-01T10:20:30+02:00"], "timestamp"),
        (["2024-03-01", "2024-03-01T10:20:30.000Z"], "text"),
        ([date(2024, 1, 2)], "date"),
        ([datetime(2024, 1, 2, 3, 4, tzinfo=UTC)], "timestamp"),
        (["a", [1]], "json"),
        ([{"a": 1}], "json"),
        (["a", 1], "text"),
        ([True, 1], "text"),
        (["2024-02-30"], "text"),
        ([], "text"),
        ([None, None], "text"),
    ],
)
def test_infer_kind(values, kind):
    assert infer_kind(values) == kind


def test_detect_schema_fills_kinds_and_appends_sample_only_fields_in_order():
    schema = TableSchema(
        TableRef("airtable", "tbl1", "T"),
        (
            FieldSpec("Name", "singleLineText", "fld1"),
            FieldSpec("Amount", "formula", "fld2", result_type="currency"),
            FieldSpec("Preset", "singleLineText", "fld3", kind="json"),
            FieldSpec("Mystery", None, "fld4"),
        ),
    )
    sample = [
        {"id": "r1", "fields": {"Zeta": 1, "Name": "a", "Mystery": "2024-01-01"}},
        {"id": "r2", "fields": {"Alpha": [1], "Zeta": 2}},
    ]
    detected = detect_schema(schema, sample)
    kinds = [(f.name, f.kind) for f in detected.fields]
    assert kinds == [
        ("Name", "text"),
        ("Amount", "number"),
        ("Preset", "json"),
        ("Mystery", "date"),
        ("Zeta", "integer"),
        ("Alpha", "json"),
    ]
    assert detected.fields[4] == FieldSpec("Zeta", None, None, None, "integer")
    assert detected.table == schema.table


def test_detect_schema_rejects_an_unknown_preset_kind():
    schema = TableSchema(TableRef("airtable", "t", "T"), (FieldSpec("X", kind="money"),))
    with pytest.raises(ValueError, match="money"):
        detect_schema(schema, [])


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("number", {"error": "#ERROR!"}),
        ("number", {"specialValue": "NaN"}),
        ("number", "12"),
        ("number", True),
        ("number", 2**60 + 1),
        ("integer", 1.5),
        ("integer", 2**63),
        ("integer", False),
        ("text", ["a"]),
        ("text", 12),
        ("text", {"a": 1}),
        ("boolean", "true"),
        ("boolean", 1),
        ("date", "2024-03-01T10:00:00Z"),
        ("date", "2024-02-30"),
        ("date", "yesterday"),
        ("timestamp", "2024-03-01"),
        ("timestamp", "not a time"),
        ("timestamp", 1700000000),
        ("json", {"x": 10**5000}),
        ("json", object()),
    ],
)
def test_values_that_do_not_fit_their_kind(kind, value):
    assert to_column(kind, value) is MISFIT


def test_values_that_fit_are_converted_losslessly():
    assert to_column("number", 3) == 3.0
    assert to_column("integer", 4.0) == 4
    assert to_column("integer", -(2**63)) == -(2**63)
    assert to_column("text", "é \u2603 ☃") == "é \u2603 ☃"
    assert to_column("date", "2024-02-29") == date(2024, 2, 29)
    nested = {"a": [1, {"b": "ü"}], "c": None}
    assert to_column("json", nested) == nested
    assert to_column("json", "plain string") == "plain string"


def test_non_finite_floats_fit_number_and_json():
    nan = to_column("number", float("nan"))
    assert isinstance(nan, float) and nan != nan
    assert to_column("number", float("inf")) == float("inf")
    assert to_column("number", float("-inf")) == float("-inf")
    assert to_column("json", {"x": float("inf")}) == {"x": float("inf")}
    assert infer_kind([1.5, float("nan"), float("-inf")]) == "number"


def test_timestamps_become_aware_utc():
    stamp = to_column("timestamp", "2024-03-01T10:20:30.000Z")
    assert stamp == datetime(2024, 3, 1, 10, 20, 30, tzinfo=UTC)
    assert stamp.utcoffset() == timedelta(0)
    shifted = to_column("timestamp", "2024-03-01T12:20:30+02:00")
    assert shifted == stamp and shifted.tzinfo == UTC
    assert to_column("timestamp", "2024-03-01T10:20:30") == stamp  # naive: taken as UTC
    plus_one = timezone(timedelta(hours=1))
    assert to_column("timestamp", datetime(2024, 3, 1, 11, 20, 30, tzinfo=plus_one)) == stamp


def test_reading_back_gives_python_types():
    assert from_column("timestamp", datetime(2024, 1, 1, 12)) == datetime(
        2024, 1, 1, 12, tzinfo=UTC
    )
    assert from_column("integer", 5) == 5 and isinstance(from_column("number", 5), float)
    assert from_column("boolean", 0) is False
    assert from_column("text", None) is None


def test_format_timestamp_is_airtables():
    assert (
        format_timestamp(datetime(2024, 3, 1, 10, 20, 30, tzinfo=UTC)) == "2024-03-01T10:20:30.000Z"
    )
    precise = datetime(2024, 3, 1, 10, 20, 30, 123456, tzinfo=UTC)
    assert format_timestamp(precise) == "2024-03-01T10:20:30.123456Z"
