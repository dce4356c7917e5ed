"""Schema changes of one table: add, rename and delete fields, keeping record values by name."""

from __future__ import annotations

from typing import Any

from sandbox import errors
from sandbox.fields import SandboxField
from sandbox.model import SandboxTable


def check_name(table: SandboxTable, name: str) -> None:
    """Refuse an empty name or one the table has (Airtable compares case-insensitively).

    Raises:
        ApiError: 422.
    """
    if not name.strip():
        raise errors.typed(422, "INVALID_FIELD_NAME", "Field name cannot be empty")
    if any(f.name.casefold() == name.casefold() for f in table.fields):
        raise errors.typed(422, "DUPLICATE_OR_EMPTY_FIELD_NAME",
                           f'A field named "{name}" already exists in this table')


def add_field(table: SandboxTable, new: SandboxField) -> None:
    """Append a field (no record has a value in it yet).

    Raises:
        ApiError: 422 when the name is empty or already taken.
    """
    with table.lock:
        check_name(table, new.name)
        table.fields.append(new)


def rename_field(table: SandboxTable, field_id: str, name: str) -> SandboxField:
    """Rename a field, keeping its id and every value; returns the field as it was.

    Raises:
        ApiError: 422 for an unknown field id, or a name that is empty or taken.
    """
    with table.lock:
        target = next((f for f in table.fields if f.id == field_id), None)
        if target is None:
            raise errors.typed(422, "INVALID_FIELD_ID", f"Unknown field id {field_id}")
        before = SandboxField(target.name, target.type, target.id, target.options,
                              target.description)
        if name == target.name:
            return before
        check_name(table, name)
        old_name = target.name
        table.fields[table.fields.index(target)] = SandboxField(
            name, target.type, target.id, target.options, target.description)

        def rename(values: dict[str, Any]) -> dict[str, Any]:
            if old_name not in values:
                return values
            return {(name if k == old_name else k): v for k, v in values.items()}

        table.map_records(rename)
        return before


def remove_field(table: SandboxTable, field_id: str) -> SandboxField:
    """Delete a field and its values (Airtable's UI can; its API cannot).

    Raises:
        KeyError: no field has this id, or it is the primary field.
    """
    with table.lock:
        target = next((f for f in table.fields if f.id == field_id), None)
        if target is None or target is table.primary_field:
            raise KeyError(f"no deletable field {field_id!r} in table {table.name!r}")
        table.fields.remove(target)
        name = target.name
        table.map_records(lambda values: values if name not in values else
                          {k: v for k, v in values.items() if k != name})
        return target
