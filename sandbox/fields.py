"""Field metadata and the facts about field types that values, records and listings share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The identity behind the sandbox token: what createdBy/lastModifiedBy show for API writes.
SANDBOX_USER: dict[str, str] = {
    "id": "usrSandboxToken01",
    "email": "sandbox-token@example.com",
    "name": "Sandbox token",
}

# Fields whose values follow other records through a link field.
LINKED_TYPES = frozenset({"count", "multipleLookupValues", "rollup"})

# Fields Airtable computes itself: writing to them is refused with a 422.
COMPUTED_TYPES = frozenset({
    "autoNumber", "button", "count", "createdBy", "createdTime", "formula", "lastModifiedBy",
    "lastModifiedTime", "multipleLookupValues", "rollup",
})


@dataclass
class SandboxField:
    """Metadata of one field, as the metadata API describes it."""

    name: str
    type: str
    id: str
    options: dict[str, Any] | None = None
    description: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The field as ``GET /v0/meta/bases/{baseId}/tables`` lists it."""
        data: dict[str, Any] = {"id": self.id, "name": self.name, "type": self.type}
        if self.description:
            data["description"] = self.description
        if self.options is not None:
            data["options"] = self.options
        return data


def is_empty(value: Any) -> bool:
    """True for the values Airtable never returns: the key is simply absent instead."""
    return value is None or value is False or value == "" or value == [] or value == {}
