"""Hostile values on SQLite and PostgreSQL: each lands losslessly or is rejected by record id."""

from __future__ import annotations

import json
import math

import pytest
import sqlalchemy as sa

from app.contracts import Batch, FieldSpec
from app.errors import WarehouseError, WarehouseUnavailableError
from app.warehouses import PostgresWarehouse, codec, naming
from app.warehouses.kinds import detect_schema
from tests.app.conftest import by_id, sync, table_schema
from tests.support.compare import differences, same_float
from tests.support.reflect import reflect

NAN, INF = float("nan"), float("inf")
SPECIAL_FLOATS = [NAN, INF, -INF, -0.0, 1e308, 5e-324, 0.30000000000000004]
SCHEMA = table_schema(
    "Hostile",
    FieldSpec("Name", "singleLineText", "fldName"),
    FieldSpec("Amount", "number", "fldAmount"),
    FieldSpec("Seq", "autoNumber", "fldSeq"),
    FieldSpec("Tags", "multipleSelects", "fldTags"),
    FieldSpec("Score", "formula", "fldScore", result_type="number"),
    FieldSpec("Open", "button", "fldOpen"),
)


def load(warehouse, records, schema=SCHEMA, *, run_id="run-1", batch_no=0, replace=False):
    """Prepare, load one batch and finish; returns (target, result)."""
    target = warehouse.prepare_table(detect_schema(schema, []), run_id=run_id, replace=replace)
    result = warehouse.load_batch(target, Batch(run_id, schema.table, batch_no, records))
    warehouse.finish_table(target)
    assert result.loaded + len(result.rejected) == len(records)
    return target, result


def raw_rows(warehouse, sql_table, text_columns=(naming.UNFIT,)):
    """The rows as stored, with ``text_columns`` read as the database's own JSON text."""
    table = reflect(warehouse.engine, sql_table, warehouse.schema)
    shown = [sa.cast(c, sa.Text).label(c.name) if c.name in text_columns else c for c in table.c]
    with warehouse.engine.connect() as conn:
        rows = conn.execute(sa.select(*shown).order_by(table.c[naming.ID])).mappings().all()
    return {row[naming.ID]: dict(row) for row in rows}


def exact(value):
    """A form of ``value`` that compares equal only for the very same JSON value: NaN equals
    NaN, -0.0 differs from 0.0, 1 from 1.0 and True; dict order does not matter."""
    if isinstance(value, float):
        return ("float", repr(value))
    if isinstance(value, dict):
        return ("dict", sorted((key, exact(item)) for key, item in value.items()))
    if isinstance(value, list):
        return ("list", [exact(item) for item in value])
    return (type(value).__name__, value)


def same_json_float(expected, actual):
    """Exactly the float, or for a float of 1e16 or more the int PostgreSQL's JSONB may give
    back: it keeps a JSON number as a decimal, and prints 1e+308 as 1 and 308 zeros."""
    if same_float(expected, actual):
        return True
    return type(actual) is int and abs(expected) >= 1e16 and float(actual) == expected


def strict_json(text):
    """``text`` parsed as standard JSON: NaN and Infinity literals are refused."""

    def refuse(token):
        raise ValueError(f"not standard JSON: {token}")

    return json.loads(text, parse_constant=refuse)


# -- the JSON encoding ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        NAN, INF, -INF, -0.0, 0.0, 1e308, [NAN, [INF, {"x": -0.0}]],
        {"__conveyor_float__": "NaN"},
        {"__conveyor_escaped__": ["k", {"__conveyor_float__": "-0.0"}]},
        {"__conveyor_float__": 1, "other": 2},
        [{"__conveyor_escaped__": {"__conveyor_escaped__": []}}],
        "text with -0.0 and __conveyor_float__ in it",
        {"deep": json.loads("[" * 200 + "1.5" + "]" * 200)},
    ],
)  # fmt: skip
def test_the_json_encoding_gives_every_value_back_and_is_standard_json(value):
    text = codec.to_json_text(value)
    strict_json(text)
    assert exact(codec.from_json_text(text)) == exact(value)
    assert exact(codec.from_json_text(text.encode())) == exact(value)
    assert exact(codec.decode(json.loads(text))) == exact(value)


def test_plain_json_is_written_as_json_dumps_would():
    value = {"a": [1, 2.5, "é 🚀"], "b": None}
    assert codec.to_json_text(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# -- floats ---------------------------------------------------------------------------------


def test_non_finite_floats_and_negative_zero_read_back_exactly(warehouse):
    records = [
        {"id": f"r{i}", "fields": {"Amount": x, "Tags": [x, {"v": x}], "Name": x, "Seq": x}}
        for i, x in enumerate(SPECIAL_FLOATS)
    ]
    target, result = load(warehouse, records)
    assert (result.loaded, result.rejected) == (len(records), ())
    back = by_id(list(warehouse.read_records(SCHEMA.table)))
    for record in records:
        got = back[record["id"]]["fields"]
        expected = record["fields"]["Amount"]
        assert same_float(expected, got["Amount"]), (record["id"], got["Amount"])
        # The others are kept in JSON: a text column, a JSON column, an integer column.
        for value in (got["Name"], got["Tags"][0], got["Tags"][1]["v"], got["Seq"]):
            assert same_json_float(expected, value), (record["id"], value)
    raw = raw_rows(warehouse, target.name, (naming.UNFIT, "tags"))
    for record in records:
        row, value = raw[record["id"]], record["fields"]["Amount"]
        strict_json(row[naming.UNFIT])
        strict_json(row["tags"])
        in_column = warehouse.exact_floats or not (
            math.isnan(value) or math.copysign(1.0, value) < 0 and value == 0
        )
        if in_column:
            assert same_float(value, row["amount"]), (record["id"], row["amount"])
        else:  # SQLite's REAL makes NaN NULL and -0.0 zero: the value is kept in __unfit
            assert row["amount"] is None
            assert same_float(value, codec.from_json_text(row[naming.UNFIT])["Amount"])


def test_formula_errors_and_inexact_numbers_are_kept_whole(warehouse):
    records = [
        {"id": "err", "fields": {"Score": {"error": "#ERROR!"}, "Amount": 2**53 + 1}},
        {"id": "nan", "fields": {"Score": {"specialValue": "NaN"}, "Seq": 2**63}},
        {"id": "inf", "fields": {"Score": {"specialValue": "Infinity"}, "Amount": 1.5}},
    ]
    target, result = load(warehouse, records)
    assert (result.loaded, result.rejected) == (3, ())
    assert differences(records, list(warehouse.read_records(SCHEMA.table))) == []
    raw = raw_rows(warehouse, target.name)
    assert raw["err"]["score"] is None and raw["err"]["amount"] is None
    assert strict_json(raw["err"][naming.UNFIT]) == records[0]["fields"]
    assert raw["inf"]["amount"] == 1.5


# -- text -----------------------------------------------------------------------------------


def test_nul_lands_on_sqlite_and_is_rejected_by_id_on_postgresql(warehouse):
    records = [
        {"id": "text", "fields": {"Name": "a\x00b"}},
        {"id": "ok-1", "fields": {"Name": "fine", "Amount": NAN}},
        {"id": "nested", "fields": {"Open": {"label": "x", "deep": [{"name": "re\x00port"}]}}},
        {"id": "key", "fields": {"Open": {"k\x00": 1}}},
        {"id": "unfit", "fields": {"Amount": "not a number \x00"}},
        {"id": "unknown", "fields": {"Surprise\x00": "x"}},
        {"id": "ok-2", "fields": {"Name": "literal \\u0000 is no NUL"}},
    ]
    _, result = load(warehouse, records)
    rejected = {r.record_id: r.reason for r in result.rejected}
    if isinstance(warehouse, PostgresWarehouse):
        assert set(rejected) == {"text", "nested", "key", "unfit", "unknown"}
        assert rejected["text"].startswith("field 'Name' holds a NUL character")
        assert rejected["nested"].startswith("field 'Open' holds a NUL")
        assert "'Surprise\\\\x00'" in rejected["unknown"] or "Surprise" in rejected["unknown"]
        assert all("\x00" not in r and "\n" not in r for r in rejected.values())
        landed = [r for r in records if r["id"] not in rejected]
    else:
        assert rejected == {}
        landed = records
    assert result.loaded == len(landed)
    assert differences(landed, list(warehouse.read_records(SCHEMA.table))) == []


def test_emoji_right_to_left_and_combining_text_and_names(warehouse):
    texts = ["👩‍👩‍👧‍👦 🏳️‍🌈 🇺🇦", "שלום עולם", "مرحبا ۱۲۳", "\u202edesrever\u202c",
             "e\u0301\u0301 Z\u0351", "zero\u200bwidth\u200d", "\ufeffBOM", "𝕳𝖊𝖑𝖑𝖔"]  # fmt: skip
    schema = table_schema(
        "Unicode",
        FieldSpec("Name", "singleLineText", "f1"),
        FieldSpec("Cafe\u0301", "singleLineText", "f2"),
        FieldSpec("Café", "singleLineText", "f3"),
        FieldSpec("📛 👩‍👩‍👧", "multipleSelects", "f4"),
        FieldSpec("שם", "singleLineText", "f5"),
    )
    records = [
        {"id": f"u{i}", "fields": {"Name": t, "Cafe\u0301": t[::-1], "Café": "é", "📛 👩‍👩‍👧": [t], "שם": t}}
        for i, t in enumerate(texts)
    ]
    target = sync(warehouse, schema, records)
    assert differences(records, list(warehouse.read_records(schema.table))) == []
    columns = [c.column for c in target.columns]
    assert len(set(columns)) == 5 and all(c.isascii() for c in columns)


# -- size and shape -------------------------------------------------------------------------


def test_megabyte_cells_land_in_text_json_and_unfit(warehouse):
    big = "0123456789abcdef" * 65536
    records = [
        {"id": "text", "fields": {"Name": big}},
        {"id": "emoji", "fields": {"Name": "🚀é" * 524288}},
        {"id": "json", "fields": {"Tags": [big, {"again": big}]}},
        {"id": "unfit", "fields": {"Amount": big}},
        {"id": "small", "fields": {"Name": "small"}},
    ]
    _, result = load(warehouse, records)
    assert (result.loaded, result.rejected) == (5, ())
    assert differences(records, list(warehouse.read_records(SCHEMA.table))) == []


def test_values_nested_fifty_levels_in_json_columns_and_unfit(warehouse):
    def nested(depth, leaf):
        for level in range(depth):
            leaf = {f"level {level}": leaf} if level % 2 else [leaf]
        return leaf

    leaf = ["leaf", 1.5, NAN, {"__conveyor_float__": "NaN"}, None, True]
    records = [
        {"id": "json", "fields": {"Open": nested(50, leaf), "Tags": nested(50, leaf)}},
        {"id": "unfit", "fields": {"Name": nested(50, leaf), "Surprise": nested(50, "x")}},
    ]
    target, result = load(warehouse, records)
    assert (result.loaded, result.rejected) == (2, ())
    back = by_id(list(warehouse.read_records(SCHEMA.table)))
    for record in records:
        assert exact(back[record["id"]]["fields"]) == exact(record["fields"])
    assert strict_json(raw_rows(warehouse, target.name)["unfit"][naming.UNFIT])


def wide_schema(count):
    types = ["singleLineText", "multilineText", "email", "number", "checkbox"]
    fields = [FieldSpec(f"Field {i:03d}", types[i % len(types)], f"fld{i:03d}") for i in range(count)]
    return table_schema("Wide", *fields)


def wide_value(field, row):
    if field.type == "number":
        return row * 1000.5
    if field.type == "checkbox":
        return True
    return f"record {row:02d} {field.name} ✓"  # ~22 bytes: too short for TOAST to move


def test_five_hundred_fields_land_and_a_too_wide_row_is_packed_into_unfit(warehouse):
    schema = wide_schema(500)
    full = {f.name: wide_value(f, 1) for f in schema.fields}
    sparse = {f.name: wide_value(f, 2) for f in schema.fields[::25]}
    records = [{"id": "full", "fields": full}, {"id": "sparse", "fields": sparse}]
    target, result = load(warehouse, records, schema)
    assert (result.loaded, result.rejected) == (2, ())
    assert len(target.columns) == 500
    assert differences(records, list(warehouse.read_records(schema.table))) == []
    raw = raw_rows(warehouse, target.name)
    assert raw["sparse"][naming.UNFIT] is None
    if isinstance(warehouse, PostgresWarehouse):  # more than one 8 kB row: packed, whole
        assert strict_json(raw["full"][naming.UNFIT]) == full
        assert all(raw["full"][c.column] is None for c in target.columns)
    else:
        assert raw["full"][naming.UNFIT] is None


def test_more_columns_than_postgresql_allows_is_a_terminal_error(warehouse):
    if not isinstance(warehouse, PostgresWarehouse):
        pytest.skip("SQLite allows 2000 columns")
    with pytest.raises(WarehouseError) as caught:
        warehouse.prepare_table(detect_schema(wide_schema(1700), []), run_id="r", replace=False)
    assert not isinstance(caught.value, WarehouseUnavailableError)  # retrying cannot help
    assert "1600" in str(caught.value)


# -- the counts always add up ---------------------------------------------------------------


def test_every_record_of_a_batch_is_loaded_or_rejected_by_id(warehouse):
    records = [
        {"id": "dup", "fields": {"Name": "first"}},
        {"id": "ok", "fields": {"Name": "ok", "Amount": -INF}},
        "not a record",
        {"id": ["a", "list"], "fields": {}},
        {"fields": {"Name": "no id"}},
        {"id": "bad-time", "createdTime": "yesterday", "fields": {}},
        {"id": "surrogate", "fields": {"Name": "\ud800"}},
        {"id": "nul-id\x00", "fields": {"Name": "x"}},
        {"id": "lone-\udfff-id", "fields": {"Name": "x"}},
        {"id": "dup", "fields": {"Name": "last"}},
    ]
    target = warehouse.prepare_table(detect_schema(SCHEMA, []), run_id="run-1", replace=False)
    result = warehouse.load_batch(target, Batch("run-1", SCHEMA.table, 0, records))
    assert result.loaded + len(result.rejected) == len(records)
    rejected = [r.record_id for r in result.rejected]
    expected_loaded = {"ok", "dup"} | (set() if isinstance(warehouse, PostgresWarehouse) else {"nul-id\x00"})
    assert {r["id"] for r in warehouse.read_records(SCHEMA.table)} == expected_loaded
    assert result.loaded == len(expected_loaded)
    assert "dup" in rejected and "surrogate" in rejected and "bad-time" in rejected
    assert "None" in rejected and "['a', 'list']" in rejected and "'lone-\\udfff-id'" in rejected
    assert all(r.reason and "\n" not in r.reason and len(r.reason) <= 300 for r in result.rejected)
    # The reasons were stored with the batch: a replay reports exactly the same.
    replay = warehouse.load_batch(target, Batch("run-1", SCHEMA.table, 0, records))
    assert replay.replayed and (replay.loaded, replay.rejected) == (result.loaded, result.rejected)


# -- fields renamed or retyped between runs -------------------------------------------------

BEFORE = table_schema(
    "Changing",
    FieldSpec("Name", "singleLineText", "fldName"),
    FieldSpec("Amount", "number", "fldAmount"),
    FieldSpec("Label", "singleLineText", "fldLabel"),
)
AFTER = table_schema(
    "Changing",
    FieldSpec("Full name", "singleLineText", "fldName"),  # renamed
    FieldSpec("Amount text", "singleLineText", "fldAmount"),  # renamed and retyped
    FieldSpec("Label", "checkbox", "fldLabel"),  # retyped: absent means unticked
)
OLD_ROWS = [{"id": f"r{i}", "fields": {"Name": f"n{i}", "Amount": i + 0.5, "Label": "x"}} for i in range(4)]
NEW_ROWS = [
    {"id": "r0", "fields": {"Full name": "n0", "Amount text": "0.5", "Label": True}},
    {"id": "r1", "fields": {"Full name": "n1", "Amount text": "1.5"}},
    {"id": "r2", "fields": {"Full name": "n2"}},
]  # r3 is gone from the source: an upsert keeps its row, which must be migrated too


@pytest.mark.parametrize("replace", [False, True], ids=["upsert", "drop_tables"])
def test_a_renamed_and_retyped_field_keeps_its_column_and_loses_nothing(warehouse, replace):
    # Before issue 12 an upsert kept the old kinds and sent the new values to __unfit; now
    # both paths give the columns their new kinds, the upsert by migrating the live table.
    first = sync(warehouse, BEFORE, OLD_ROWS, replace=replace)
    second = sync(warehouse, AFTER, NEW_ROWS, run_id="run-2", replace=replace)
    assert [c.column for c in second.columns] == [c.column for c in first.columns]
    assert [c.field_name for c in warehouse.columns_for(second.name)] == ["Full name", "Amount text", "Label"]
    assert [c.kind for c in warehouse.columns_for(second.name)] == ["text", "text", "boolean"]
    back = by_id(list(warehouse.read_records(AFTER.table)))
    assert differences(NEW_ROWS, [back[r["id"]] for r in NEW_ROWS]) == []
    raw = raw_rows(warehouse, second.name)
    assert raw["r2"]["label"] is False and raw["r0"][naming.UNFIT] is None
    assert raw["r0"]["amount"] == "0.5" and raw["r0"]["label"] is True
    if replace:
        assert set(back) == {"r0", "r1", "r2"}
        return
    # The row the source no longer has was migrated as a load of its values would place
    # them: 3.5 as text with the number kept, "x" (no checkbox) in __unfit.
    assert raw["r3"]["amount"] == "3.5" and raw["r3"]["label"] is None
    assert strict_json(raw["r3"][naming.UNFIT]) == {"Amount text": 3.5, "Label": "x"}
    assert back["r3"]["fields"] == {"Full name": "n3", "Amount text": 3.5, "Label": "x"}
