"""Values that follow linked records: counts, lookups and rollups, from the cells they read."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sandbox.fields import SandboxField, is_empty

#: Linked record id -> its fields (by name), or None when it no longer exists.
Fetch = Callable[[str], Mapping[str, Any] | None]


def link_field_id(field: SandboxField) -> str | None:
    """The id of the link field a count, lookup or rollup reads through."""
    return (field.options or {}).get("recordLinkFieldId")


def linked_field_id(field: SandboxField) -> str | None:
    """The id of the field a lookup or rollup reads in the linked table."""
    return (field.options or {}).get("fieldIdInLinkedTable")


def _values(links: list[str], fetch: Fetch, source: str | None) -> list[Any]:
    values: list[Any] = []
    if source is None:
        return values
    for record_id in links:
        fields = fetch(record_id)
        if fields is None:
            continue
        value = fields.get(source)
        if isinstance(value, list):
            values.extend(value)
        elif not is_empty(value):
            values.append(value)
    return values


def compute(field: SandboxField, links: list[str], fetch: Fetch, source: str | None) -> Any:
    """The value of ``field`` (count, lookup or rollup) for a record linking to ``links``.

    Args:
        field: The computed field.
        links: The record's linked ids, in cell order.
        fetch: Reads a linked record's fields by name.
        source: The name of the linked table's field a lookup or rollup reads.

    Returns:
        The value as list-records shows it; an empty value (None, []) means an absent key.
    """
    if field.type == "count":
        return sum(fetch(record_id) is not None for record_id in links)
    values = _values(links, fetch, source)
    if field.type == "multipleLookupValues":
        return values
    result = ((field.options or {}).get("result") or {}).get("type")
    if result in ("number", "currency", "percent", "duration", None):
        # SUM(values), the rollup the sandbox generates; text cells count as nothing.
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return sum(numbers)
    return ", ".join(str(v) for v in values)  # ARRAYJOIN(values)
