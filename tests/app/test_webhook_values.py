"""The change feed's payload values as field-by-field row updates: which payload cells stand in
for listing a record again, what they become, how the plan splits records between updates and
by-id listings, the pages it makes of them, and the warehouse's partial update."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.contracts import Column, FieldSpec, TableRef, TableSchema, TableTarget
from app.extractors.changefeed import FeedRead
from app.extractors.changefold import fold
from app.extractors.webhook_cells import AMBIGUOUS, field_types, listed_value, payload_values
from app.sync.plan import ChangePlan, RunOptions, TableSync
from tests.support.change_sources import (
    HOOK,
    STATE,
    ids,
    loaded,
    plan,
    rows,
    source_with,
    sqlite_file,
)

TBL = "tblA"
SCHEMA = TableSchema(TableRef("airtable", TBL, "Orders"), (
    FieldSpec("Name", "singleLineText", "fldName"), FieldSpec("Done", "checkbox", "fldDone"),
    FieldSpec("Total", "rollup", "fldTotal", "number"),
    FieldSpec("Links", "multipleRecordLinks", "fldL"),
    FieldSpec("Client name", "multipleLookupValues", "fldLook"),
    FieldSpec("Status", "singleSelect", "fldStatus"),
    FieldSpec("Owner", "singleCollaborator", "fldOwner"),
    FieldSpec("Double", "formula", "fldDouble"),
))


def payload(number: int, table: dict[str, Any]) -> dict[str, Any]:
    return {"timestamp": "2026-11-20T21:40:00.000Z", "baseTransactionNumber": number,
            "payloadFormat": "v0", "actionMetadata": {"source": "publicApi"},
            "changedTablesById": {TBL: table}}


def changed(cells_by_record: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"changedRecordsById": {r: {"current": {"cellValuesByFieldId": cells}}
                                   for r, cells in cells_by_record.items()}}


def test_webhook_cells_read_as_list_records_values_or_not_at_all():
    assert listed_value("singleLineText", None) is None  # a cleared cell
    assert listed_value("checkbox", None) is None
    assert listed_value("singleSelect", {"id": "selX", "name": "Open", "color": "blueLight2"}) == "Open"
    assert listed_value("multipleSelects", [{"id": "s1", "name": "a"}, {"id": "s2", "name": "b"}]) \
        == ["a", "b"]
    assert listed_value("multipleRecordLinks", [{"id": "recA", "name": "Acme"}]) == ["recA"]
    assert listed_value("multipleRecordLinks", []) is None  # list-records omits an empty cell
    lookup = {"linkedRecordIds": ["recB", "recA"],
              "valuesByLinkedRecordId": {"recA": ["Acme"], "recB": ["Bolt", "Bolt 2"]}}
    assert listed_value("multipleLookupValues", lookup) == ["Bolt", "Bolt 2", "Acme"]
    assert listed_value("multipleLookupValues",
                        {"linkedRecordIds": ["recA"],
                         "valuesByLinkedRecordId": {"recA": [{"id": "x"}]}}) is AMBIGUOUS
    assert listed_value("rollup", 1042) == 1042 and listed_value("rollup", 0) == 0
    assert listed_value("rollup", {"weird": 1}) is AMBIGUOUS  # V2 rollups are documented "any"
    assert listed_value("formula", "") == "" and listed_value("number", 0) == 0
    assert listed_value("singleCollaborator", {"id": "usr1", "name": "Ann", "permissionLevel": "create",
                                               "profilePicUrl": "https://x"}) == {"id": "usr1", "name": "Ann"}
    assert listed_value("someNewType", "x") is AMBIGUOUS
    assert listed_value("singleSelect", "Open") is AMBIGUOUS  # not the documented V2 shape


def test_only_records_changed_not_created_with_readable_cells_get_payload_values():
    changes = fold([
        payload(1, {"createdRecordsById": {"recNEW": {"createdTime": "2026-11-20T21:40:00.000Z",
                                                      "cellValuesByFieldId": {"fldName": "n"}}}}),
        payload(2, changed({
            "recNEW": {"fldName": "renamed"},                 # created, then changed
            "recCLEAR": {"fldName": None, "fldDone": None},   # cleared cells
            "recROLL": {"fldTotal": 1042, "fldLook": {"linkedRecordIds": ["recC"],
                                                      "valuesByLinkedRecordId": {"recC": ["Acme"]}}},
            "recGONE": {"fldName": "x"},                      # changed, then destroyed
            "recODD": {"fldStatus": "Open"},                  # not the V2 shape
            "recUNKNOWN": {"fldNope": 1},                     # a field the schema lacks
            "recTWICE": {"fldName": "first", "fldDouble": 2},
        })),
        payload(3, changed({"recTWICE": {"fldName": "second"}})),
        payload(4, {"destroyedRecordIds": ["recGONE"]}),
    ])[TBL]
    values = payload_values(field_types(SCHEMA), changes)
    assert values == {
        "recCLEAR": {"Name": None, "Done": None},
        "recROLL": {"Total": 1042, "Client name": ["Acme"]},
        "recTWICE": {"Name": "second", "Double": 2},
    }
    assert "recGONE" not in changes.upserted_ids and changes.destroyed_ids == {"recGONE"}
    assert "recNEW" in changes.created_ids  # listed by id, whole


def test_the_plan_updates_live_rows_from_the_payloads_and_lists_the_rest_by_id():
    changes = fold([
        payload(1, {"createdRecordsById": {"recNEW": {"createdTime": "2026-11-20T21:40:00.000Z",
                                                      "cellValuesByFieldId": {}}}}),
        payload(2, changed({r: {"fldTotal": 987654} for r in ids(150)})),
        payload(3, changed({"recNEVERSYNCED01": {"fldTotal": 987654},
                            "recODD": {"fldStatus": "x"}})),
    ])[TBL]
    source, feed = source_with(FeedRead(HOOK, 7, 10, {TBL: changes}))
    asked: list[set[str]] = []

    def live(wanted: Any) -> set[str]:
        asked.append(set(wanted))
        return set(ids(150))

    change = source.plan(SCHEMA, STATE, RunOptions.parse(incremental=True), live)
    assert change is not None
    assert asked == [set(ids(150)) | {"recNEVERSYNCED01"}]
    assert change.value_ids == tuple(ids(150))
    assert change.record_ids == ("recNEVERSYNCED01", "recNEW", "recODD")
    assert change.phases == ("values", "byid")
    # No values in the plan: it crosses task boundaries whole.
    assert "987654" not in str(change.to_json())
    assert ChangePlan.from_json(change.to_json()) == change

    sync = TableSync(plan(incremental=True), SCHEMA.table, schema=SCHEMA, change=change)
    pages = list(source.value_pages(sync, None))
    assert [len(p.records) for p in pages] == [100, 50]
    assert all(p.fields == ("Total",) and not p.seen for p in pages)
    assert pages[0].records[0] == {"id": ids(1)[0], "fields": {"Total": 987654}}
    assert [p.next_cursor for p in pages] == ["100", None]
    assert [p.requests for p in pages] == [0, 0] and feed.reads == 1  # the plan's own read
    resumed = list(source.value_pages(sync, "100"))
    assert resumed[0].records == pages[1].records
    # Where only the warehouse target is known (a worker after the table was created), the
    # catalog's field-id keyed columns give the same pages.
    columns = tuple(Column(f.field_id or f.name, f.name, f.name.lower(), "text", f.type)
                    for f in SCHEMA.fields)
    target = TableTarget("r1", SCHEMA.table, "airtable__orders", columns)
    assert list(source.value_pages(sync.with_(schema=None, target=target), None)) == pages


def test_value_pages_never_mix_records_that_changed_different_fields():
    changes = fold([payload(1, changed({"recA1": {"fldTotal": 1}, "recB1": {"fldName": "b"},
                                        "recA2": {"fldTotal": 2}}))])[TBL]
    source, _ = source_with(FeedRead(HOOK, 7, 8, {TBL: changes}))
    change = source.plan(SCHEMA, STATE, RunOptions.parse(incremental=True), lambda i: set(i))
    assert change is not None and change.record_ids == ()
    sync = TableSync(plan(incremental=True), SCHEMA.table, schema=SCHEMA, change=change)
    pages = list(source.value_pages(sync, None))
    assert [(p.fields, [r["id"] for r in p.records]) for p in pages] == [
        (("Name",), ["recB1"]), (("Total",), ["recA1", "recA2"])]


@pytest.fixture
def warehouse(tmp_path):
    """One SQLite file, in place of tests/app/conftest.py's warehouse on every backend."""
    yield from sqlite_file(tmp_path)


def test_a_partial_update_clears_cleared_cells_and_replaces_what_unfit_kept(warehouse):
    target, _ = loaded(warehouse, "r1", [{"id": "rec1", "fields": {
        "Name": "a", "Done": True, "Total": "not a number"}}])
    warehouse.finish_table(target)
    assert json.loads(rows(warehouse)["rec1"]["__unfit"]) == {"Total": "not a number"}
    target, _ = loaded(warehouse, "r2", [{"id": "rec1", "fields": {"Done": None, "Total": 12}},
                                         {"id": "recMISSING", "fields": {"Total": 1}}],
                       fields=("Done", "Total"))
    stored = rows(warehouse)
    assert set(stored) == {"rec1"}  # a missing row is not created from part of a record
    assert stored["rec1"]["done"] == 0 and stored["rec1"]["total"] == 12  # unticked: False
    assert stored["rec1"]["name"] == "a" and stored["rec1"]["__unfit"] is None
    record = next(iter(warehouse.read_records(SCHEMA.table)))
    assert record["fields"] == {"Name": "a", "Total": 12}  # read as list-records gives it


@pytest.mark.parametrize("cells", [{"fldName": None}, {"fldDouble": None}])
def test_a_cleared_cell_is_a_none_value_not_a_missing_one(cells):
    changes = fold([payload(1, changed({"recX": cells}))])[TBL]
    assert list(payload_values(field_types(SCHEMA), changes)["recX"].values()) == [None]
