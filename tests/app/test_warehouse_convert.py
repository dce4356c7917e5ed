"""Values placed in their own column by conversion, the original kept; formula errors."""

from __future__ import annotations

import math
import random
import struct
from datetime import UTC, date, datetime

import pytest

from app.contracts import Column, FieldSpec
from app.warehouses.convert import number_text, scalar_text, to_column_by_conversion
from app.warehouses.kinds import MISFIT, is_formula_error, kind_for_field
from app.warehouses.rows import RowMaker, UnstorableRecord, place, to_record, to_row


def column(kind, source_type=None):
    return Column("fld1", "F", "f", kind, source_type=source_type)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("already text", "already text"),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (-12, "-12"),
        (2**70 + 1, "1180591620717411303425"),
        (4.0, "4"),
        (-4.0, "-4"),
        (2.5, "2.5"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1234567890123456.0, "1234567890123456"),
        (1e16, "1e+16"),
        (1.5e-7, "1.5e-07"),
        (-0.0, "-0"),
        (math.nan, "NaN"),
        (math.inf, "Infinity"),
        (-math.inf, "-Infinity"),
    ],
)
def test_scalars_have_one_canonical_text(value, text):
    assert scalar_text(value) == text
    assert to_column_by_conversion("text", value) == text


@pytest.mark.parametrize("value", [[1], {"a": 1}, None, 10**5000], ids=["list", "dict", "none", "huge"])
def test_only_scalars_become_text(value):
    assert scalar_text(value) is MISFIT


def test_the_text_of_any_double_reads_back_as_the_same_double():
    rng = random.Random(12)
    doubles = [struct.unpack("<d", rng.randbytes(8))[0] for _ in range(5000)]
    doubles += [0.0, -0.0, 5e-324, 1e308, 2.0**53, 2.0**53 + 2, 9999999999999998.0, 1e15, 0.1]
    for value in doubles:
        back = to_column_by_conversion("number", number_text(value))
        if math.isnan(value):
            assert math.isnan(back)
        else:
            assert back == value and math.copysign(1, back) == math.copysign(1, value), value


@pytest.mark.parametrize(
    ("text", "number"),
    [("042", 42.0), ("0.1", 0.1), ("-3.25", -3.25), ("+7", 7.0), (".5", 0.5), ("5.", 5.0),
     ("1e+16", 1e16), ("1E3", 1000.0), ("9007199254740992", 2.0**53), ("-0", -0.0)],
)
def test_decimal_strings_fit_a_number_column_when_a_double_holds_them(text, number):
    got = to_column_by_conversion("number", text)
    assert got == number and math.copysign(1, got) == math.copysign(1, number)


@pytest.mark.parametrize(
    "text",
    ["9007199254740993", "0.1000000000000000000001", "1e999", " 5", "5 ", "1,000", "1_000",
     "0x10", "١٢٣", "nan", "inf", "", "-", "e5", "twelve"],
)
def test_strings_a_double_would_change_or_that_are_not_decimals_do_not_fit(text):
    assert to_column_by_conversion("number", text) is MISFIT


def test_integer_columns_take_whole_decimal_strings_within_bigint():
    assert to_column_by_conversion("integer", "42") == 42
    assert to_column_by_conversion("integer", "4.2e1") == 42
    assert to_column_by_conversion("integer", "-9223372036854775808") == -(2**63)
    for text in ("1.5", "9223372036854775808", "1e30", "abc", "NaN"):
        assert to_column_by_conversion("integer", text) is MISFIT, text
    # Refused before int() would build a billion-digit number (which would hang this test).
    assert to_column_by_conversion("integer", "1e999999999") is MISFIT


def test_booleans_dates_and_timestamps_by_conversion():
    assert to_column_by_conversion("boolean", "true") is True
    assert to_column_by_conversion("boolean", "false") is False
    assert to_column_by_conversion("boolean", "True") is MISFIT
    assert to_column_by_conversion("boolean", 1) is MISFIT
    assert to_column_by_conversion("date", "2024-03-01T00:00:00.000Z") == date(2024, 3, 1)
    assert to_column_by_conversion("date", datetime(2024, 3, 1, tzinfo=UTC)) == date(2024, 3, 1)
    assert to_column_by_conversion("date", "2024-03-01T00:00:00+02:00") is MISFIT
    assert to_column_by_conversion("date", "2024-03-01T10:00:00Z") is MISFIT
    assert to_column_by_conversion("timestamp", "2024-03-01") == datetime(2024, 3, 1, tzinfo=UTC)
    assert to_column_by_conversion("number", True) is MISFIT
    assert to_column_by_conversion("json", "x") is MISFIT


@pytest.mark.parametrize(
    ("kind", "value", "placed"),
    [
        ("text", "plain", ("plain", False)),
        ("text", 12, ("12", True)),
        ("text", 2.5, ("2.5", True)),
        ("text", True, ("true", True)),
        ("text", ["a"], (None, True)),
        ("number", 3, (3.0, False)),
        ("number", "3", (3.0, True)),
        ("number", "three", (None, True)),
        ("integer", 4.0, (4, False)),
        ("integer", "4", (4, True)),
        ("date", "2024-01-02", (date(2024, 1, 2), False)),
        ("boolean", "false", (False, True)),
        ("json", {"error": "#ERROR!"}, ({"error": "#ERROR!"}, False)),  # data, not a formula
    ],
)
def test_place_stores_exact_values_alone_and_keeps_the_original_of_conversions(kind, value, placed):
    assert place(column(kind), value) == placed


@pytest.mark.parametrize("kind", ["number", "text", "json", "integer"])
@pytest.mark.parametrize("source_type", ["formula", "rollup"])
@pytest.mark.parametrize(
    "error", [{"error": "#ERROR!"}, {"specialValue": "NaN"}, {"specialValue": "Infinity"}]
)
def test_a_formula_error_is_null_in_its_column_and_kept_in_unfit(kind, source_type, error):
    assert is_formula_error(error)
    assert place(column(kind, source_type), error) == (None, True)


def test_what_is_not_a_formula_error():
    assert not is_formula_error({"error": "x", "extra": 1})
    assert not is_formula_error({"error": 1})
    assert not is_formula_error({"message": "#ERROR!"})
    assert not is_formula_error(["#ERROR!"])


def test_sqlite_number_columns_lose_nan_and_negative_zero_so_those_stay_in_unfit():
    assert place(column("number"), "NaN", exact_floats=False) == (None, True)
    assert place(column("number"), "-0", exact_floats=False) == (None, True)
    assert place(column("number"), "-0", exact_floats=True)[1] is True


def test_formula_errors_do_not_decide_an_inferred_kind():
    field = FieldSpec("F", "formula", "fld1")
    assert kind_for_field(field, [1, {"error": "#ERROR!"}, 2, {"specialValue": "NaN"}]) == "integer"
    assert kind_for_field(FieldSpec("F", None), [1, {"error": "#ERROR!"}]) == "json"


def test_a_row_holds_every_scalar_and_reads_back_as_the_source():
    columns = [
        Column("f1", "Name", "name", "text", "singleLineText"),
        Column("f2", "Amount", "amount", "number", "number"),
        Column("f3", "Score", "score", "number", "formula"),
    ]
    record = {"id": "rec1", "fields": {"Name": 7, "Amount": "12.50", "Score": {"error": "#DIV/0!"}}}
    row = to_row(record, columns, "run-1")
    assert (row["name"], row["amount"], row["score"]) == ("7", 12.5, None)
    assert row["__unfit"] == record["fields"]
    assert to_record(row, columns)["fields"] == record["fields"]
    plain = {"id": "rec2", "fields": {"Name": "x", "Amount": 1.5, "Score": 2.0}}
    assert to_row(plain, columns, "run-1")["__unfit"] is None



@pytest.mark.parametrize(
    "other",
    [
        1.5,  # every field plain JSON: one encoding of the record decides for its JSON values
        float("nan"),  # a non-finite float elsewhere: each JSON value is encoded on its own
        -0.0,  # a negative zero elsewhere: likewise
        {"__conveyor_float__": "NaN"},  # a marker-like object elsewhere: likewise
    ],
)
def test_json_columns_take_their_values_whatever_the_other_fields_hold(other):
    columns = [
        Column("f1", "Tags", "tags", "json", "multipleSelects"),
        Column("f2", "Files", "files", "json", "multipleAttachments"),
    ]
    tags, files = ["a", "ü"], [{"id": "att1", "size": 3, "thumbnails": {"small": {"w": 1}}}]
    fields = {"Tags": tags, "Files": files, "Other": other}
    row = to_row({"id": "rec1", "fields": fields}, columns, "run-1")
    assert (row["tags"], row["files"]) == (tags, files)
    assert list(row["__unfit"]) == ["Other"]


def test_a_json_value_json_cannot_hold_leaves_its_column_and_the_record_unstorable():
    columns = [Column("f1", "Bag", "bag", "json", None)]
    assert place(columns[0], {1, 2}) == (None, True)
    with pytest.raises(ValueError, match="JSON cannot represent"):
        to_row({"id": "rec1", "fields": {"Bag": {1, 2}}}, columns, "run-1")


class _Text(str):
    pass


_ODD_VALUES = ["text", _Text("sub"), "12.5", "2024-03-01", "2024-03-01T10:20:30.000Z", 7, -3,
               0, 2**53, 2**53 + 1, -(2**63), 2**63, True, False, 1.5, -0.0, float("nan"),
               float("inf"), 4.0, ["a"], {"k": 1}, {"error": "#ERROR!"},
               {"specialValue": "NaN"}, {"__conveyor_float__": "NaN"}]


@pytest.mark.parametrize("exact_floats", [True, False])
@pytest.mark.parametrize("source_type", [None, "formula"])
@pytest.mark.parametrize("kind", ["text", "number", "integer", "boolean", "date", "timestamp", "json"])
def test_a_row_maker_places_every_value_as_place_does(kind, source_type, exact_floats):
    col = Column("fld1", "F", "f", kind, source_type=source_type)
    maker = RowMaker([col], "run-1", exact_floats=exact_floats)
    for value in _ODD_VALUES:
        for other in (1, float("nan")):  # plain JSON record, and one that is not
            row = maker({"id": "rec1", "fields": {"F": value, "Other": other}})
            stored, keep = place(col, value, exact_floats=exact_floats)
            assert row["f"] == stored or (stored != stored and row["f"] != row["f"]), value
            assert type(row["f"]) is type(stored), value
            assert ("F" in row["__unfit"]) is keep, value


def _circular():
    loop: list = []
    loop.append(loop)
    return loop


def _nested(depth):
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


_HOSTILE_FIELDS = [
    {}, {"F": "\ud800"}, {"F": "a\x00b"}, {"F": "ünï"}, {"\ud800": None}, {"Other": None},
    {"G": "\ud800x"}, {"G": {"k": "\udfff"}}, {"G": {"\ud800": 1}}, {"G": [-0.0]},
    {"G": {"__conveyor_float__": "NaN"}}, {"G": "-0.0 in text"}, {"F": "__conveyor_ in text"},
    {"G": [float("nan")]}, {"G": {1, 2}}, {"G": {"error": "#ERROR!"}}, {"H": {"error": "#N/A"}},
    {"H": [1, "a"]}, {"H": "plain"}, {"N": float("nan")}, {"N": -0.0}, {"N": 2**60}, {"N": "12"},
    {"N": True}, {"B": 1}, {"B": True}, {"F": 5}, {"D": "2024-02-30"}, {"D": "2024-02-29"},
    {"T": "2024-03-01T10:20:30.000Z"}, {"F": _Text("sub")}, {"G": _Text("sub")},
    {"F": "x", "G": ["ü", {"a": None}], "H": 3, "N": 1.5, "B": False, "D": "2024-01-01"},
    {"G": _circular()}, {"G": _nested(5000)},
]


@pytest.mark.parametrize("exact_floats", [True, False])
def test_a_row_maker_giving_json_text_makes_the_same_rows(exact_floats):
    """``json_text=True`` only writes JSON values as their stored text: every other value,
    ``__unfit`` and every rejection (with its reason) are those of the general way."""
    from app.warehouses import codec

    columns = [Column("f1", "F", "f", "text", "singleLineText"),
               Column("f2", "G", "g", "json", "multipleSelects"),
               Column("f3", "H", "h", "json", "formula"),
               Column("f4", "N", "n", "number", "number"),
               Column("f5", "B", "b", "boolean", "checkbox"),
               Column("f6", "D", "d", "date", "date"),
               Column("f7", "T", "t", "timestamp", "dateTime")]
    general = RowMaker(columns, "run-1", exact_floats=exact_floats)
    texts = RowMaker(columns, "run-1", exact_floats=exact_floats, json_text=True)
    records = [{"id": "rec1", "createdTime": "2024-03-01T10:20:30.000Z", "fields": fields}
               for fields in _HOSTILE_FIELDS]
    records += [{"id": "rec\ud800", "fields": {}}, {"id": 5, "fields": {}}, ["not", "a record"],
                {"id": "rec2", "createdTime": "yesterday", "fields": {}},
                {"id": "rec3", "fields": [1]}, {"id": "rec4", "fields": None}]
    as_text = 0
    for record in records:
        try:
            expected = general(record)
        except UnstorableRecord as exc:
            with pytest.raises(UnstorableRecord) as raised:
                texts(record)
            assert str(raised.value) == str(exc), record
            continue
        row = texts(record)
        assert row.keys() == expected.keys(), record
        for key, value in row.items():
            if type(value) is codec.JSONText:
                as_text += 1
                assert value == codec.to_json_text(expected[key]), record
            else:
                assert repr(value) == repr(expected[key]), (record, key)
                assert type(value) is type(expected[key]), (record, key)
    assert as_text >= 5  # the usual records took the text way
