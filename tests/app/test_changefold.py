"""Folding webhook payloads (raw JSON shaped as Airtable's ``payloadFormat`` v0) into table changes."""

from __future__ import annotations

from typing import Any

from pyairtable.models.webhook import WebhookPayload

from app.extractors.changefold import FieldState, Fold, TableChanges, fold

TBL = "tblWX4FnYbtquOjIK"
OTHER = "tblq1Pm3TY6hP2xyz"
USER = {"id": "usrAOCP3FUUlOs9ta", "email": "someone@example.com", "permissionLevel": "create"}


def _payload(number: int, tables: dict[str, Any], **extra: Any) -> dict[str, Any]:
    body = {"timestamp": f"2026-11-20T21:40:{number:02d}.026Z", "baseTransactionNumber": 2500 + number,
            "actionMetadata": {"source": "client", "sourceMetadata": {"user": USER}},
            "payloadFormat": "v0", "changedTablesById": tables, **extra}
    WebhookPayload.model_validate(body)  # the shape pyairtable's own model accepts
    return body


def _created(*ids: str) -> dict[str, Any]:
    return {"createdRecordsById": {i: {"createdTime": "2026-11-20T21:40:00.000Z",
                                        "cellValuesByFieldId": {"fldTCMRSH5WHfHLWX": "x"}}
                                   for i in ids}}


def _changed(*ids: str) -> dict[str, Any]:
    return {"changedRecordsById": {i: {"current": {"cellValuesByFieldId": {"fldTCMRSH5WHfHLWX": "y"}},
                                       "previous": {"cellValuesByFieldId": {"fldTCMRSH5WHfHLWX": "x"}}}
                                   for i in ids}}


def _destroyed(*ids: str) -> dict[str, Any]:
    return {"destroyedRecordIds": list(ids)}


def test_created_changed_and_destroyed_records_fold_into_upserts_and_deletes() -> None:
    changes = fold([
        _payload(1, {TBL: _created("recAAAAAAAAAAAAA1", "recAAAAAAAAAAAAA2")}),
        _payload(2, {TBL: _changed("recBBBBBBBBBBBBB1", "recAAAAAAAAAAAAA2")}),
        _payload(3, {TBL: _destroyed("recCCCCCCCCCCCCC1")}),
    ])
    assert set(changes) == {TBL}
    table = changes[TBL]
    assert table.upserted_ids == {"recAAAAAAAAAAAAA1", "recAAAAAAAAAAAAA2", "recBBBBBBBBBBBBB1"}
    assert table.created_ids == {"recAAAAAAAAAAAAA1", "recAAAAAAAAAAAAA2"}
    assert table.updated_ids == {"recBBBBBBBBBBBBB1"}
    assert table.destroyed_ids == {"recCCCCCCCCCCCCC1"}
    assert not table.schema_changed and not table.empty


def test_created_then_destroyed_is_only_destroyed_and_so_is_changed_then_destroyed() -> None:
    table = fold([
        _payload(1, {TBL: _created("recNEW0000000001")}),
        _payload(2, {TBL: _changed("recOLD0000000001", "recNEW0000000001")}),
        _payload(3, {TBL: _destroyed("recNEW0000000001", "recOLD0000000001")}),
        _payload(4, {TBL: _changed("recKEPT000000001")}),
    ])[TBL]
    assert table.destroyed_ids == {"recNEW0000000001", "recOLD0000000001"}
    assert table.upserted_ids == {"recKEPT000000001"}
    assert table.created_ids == frozenset()
    assert not table.upserted_ids & table.destroyed_ids


def test_one_payload_creating_and_destroying_a_record_leaves_it_destroyed() -> None:
    both = {**_created("recSAME000000001"), **_destroyed("recSAME000000001")}
    table = fold([_payload(1, {TBL: both})])[TBL]
    assert (table.upserted_ids, table.destroyed_ids) == (frozenset(), {"recSAME000000001"})


def test_tables_are_kept_apart_and_untouched_tables_are_absent() -> None:
    changes = fold([_payload(1, {TBL: _changed("recA000000000001"), OTHER: _destroyed("recA000000000001")})])
    assert changes[TBL].upserted_ids == {"recA000000000001"} and not changes[TBL].destroyed_ids
    assert changes[OTHER].destroyed_ids == {"recA000000000001"} and not changes[OTHER].upserted_ids
    assert "tblNOTCHANGED0001" not in changes


def test_computed_cells_moved_by_a_linked_record_are_upserts() -> None:
    # What Airtable sends when a linked Projects record changes: the linking Clients records are
    # in changedRecordsById with only their rollup and lookup cells.
    lookup = {"valuesByLinkedRecordId": {"recP000000000001": ["Zeta"]},
              "linkedRecordIds": ["recP000000000001"]}
    table = fold([_payload(1, {
        OTHER: _changed("recP000000000001"),
        TBL: {"changedRecordsById": {
            "recC000000000001": {"current": {"cellValuesByFieldId": {"fldRollup0000001": 100000,
                                                                     "fldLookup0000001": lookup}}},
        }},
    })])[TBL]
    assert table.upserted_ids == {"recC000000000001"}


def test_field_creations_renames_retypes_and_destructions() -> None:
    table = fold([
        _payload(1, {TBL: {"createdFieldsById": {"fldNEW0000000001": {"name": "Region",
                                                                      "type": "singleSelect"}}}}),
        _payload(2, {TBL: {"changedFieldsById": {
            "fldNEW0000000001": {"current": {"name": "Sales region"}, "previous": {"name": "Region"}},
            "fldOLD0000000001": {"current": {"name": "Amount"}, "previous": {"name": "Quantity"}},
            "fldOLD0000000002": {"current": {"type": "singleLineText"}},
            "fldOLD0000000003": {"current": {"name": "Renamed", "type": "number"}},
        }}}),
        _payload(3, {TBL: {"destroyedFieldIds": ["fldOLD0000000003", "fldGONE000000001"]}}),
    ])[TBL]
    assert table.fields_created == {"fldNEW0000000001": FieldState("Sales region", "singleSelect")}
    assert table.fields_renamed == {"fldOLD0000000001": "Amount"}
    assert table.fields_changed_type == {"fldOLD0000000002": "singleLineText"}
    assert table.fields_destroyed == {"fldOLD0000000003", "fldGONE000000001"}
    assert table.backfill_field_ids == {"fldNEW0000000001", "fldOLD0000000002"}
    assert table.schema_changed and not table.upserted_ids


def test_a_field_created_then_destroyed_in_the_window_is_only_destroyed() -> None:
    table = fold([
        _payload(1, {TBL: {"createdFieldsById": {"fldTMP0000000001": {"name": "Tmp",
                                                                      "type": "number"}}}}),
        _payload(2, {TBL: {"destroyedFieldIds": ["fldTMP0000000001"]}}),
    ])[TBL]
    assert (table.fields_created, table.fields_destroyed) == ({}, {"fldTMP0000000001"})


def test_created_and_destroyed_tables() -> None:
    folded = Fold()
    folded.add(_payload(1, {}, createdTablesById={"tblNEW0000000001": {
        "metadata": {"name": "New", "description": None},
        "fieldsById": {"fldN000000000001": {"name": "Name", "type": "singleLineText"}},
        "recordsById": {"recN000000000001": {"createdTime": "2026-11-20T21:40:00.000Z",
                                            "cellValuesByFieldId": {}}}}}))
    folded.add(_payload(2, {TBL: _changed("recA000000000001")}, destroyedTableIds=[OTHER]))
    tables = folded.tables()
    assert tables["tblNEW0000000001"].upserted_ids == {"recN000000000001"}
    assert tables["tblNEW0000000001"].fields_created == {"fldN000000000001":
                                                         FieldState("Name", "singleLineText")}
    assert folded.tables_destroyed == {OTHER} and folded.payloads == 2


def test_unknown_keys_and_an_empty_window_fold_to_nothing() -> None:
    assert fold([]) == {}
    changes = fold([_payload(1, {TBL: {"changedViewsById": {"viwA000000000001": {}},
                                       "changedMetadata": {"current": {"name": "A"},
                                                           "previous": {"name": "B"}}}})])
    assert changes[TBL].empty
    assert TableChanges("tblX").empty
