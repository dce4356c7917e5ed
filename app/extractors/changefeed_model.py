"""The change feed's values: Conveyor's webhook specification, a hook handle, one read's result."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.extractors.changefold import TableChanges

SPECIFICATION: dict[str, Any] = {"options": {"filters": {"dataTypes": ["tableData", "tableFields"]}}}
DATA_TYPES = frozenset(SPECIFICATION["options"]["filters"]["dataTypes"])


@dataclass(frozen=True)
class Availability:
    """Whether the change feed can be used, and why not."""

    ok: bool
    reason: str | None = None

    def __bool__(self) -> bool:
        return self.ok


@dataclass(frozen=True)
class FeedHandle:
    """Conveyor's hook on a base: its id, when it expires, and where a new consumer starts."""

    webhook_id: str
    cursor: int
    expires_at: datetime | None
    created: bool = False
    refreshed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"webhook_id": self.webhook_id, "cursor": self.cursor,
                "expires_at": self.expires_at.isoformat() if self.expires_at else None,
                "created": self.created, "refreshed": self.refreshed}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeedHandle:
        expires = data.get("expires_at")
        return cls(str(data["webhook_id"]), int(data["cursor"]),
                   datetime.fromisoformat(expires) if expires else None,
                   bool(data.get("created")), bool(data.get("refreshed")))


@dataclass(frozen=True)
class FeedRead:
    """What one ``read`` found.

    Attributes:
        webhook_id: the hook read.
        since: the cursor the read started from.
        next_cursor: where the next read starts (``since`` again when ``lost``).
        tables: changes per table id (only tables that changed).
        tables_destroyed: tables deleted from the base in the window.
        lost: the feed cannot be trusted since ``since``: re-sync fully, then ``restart``.
        reason: why it was lost.
        more: payloads were left for the next read (``MAX_PAGES`` reached).
        payloads: how many payloads were folded.
        requests: how many API requests the read made.
    """

    webhook_id: str
    since: int
    next_cursor: int
    tables: dict[str, TableChanges] = field(default_factory=dict)
    tables_destroyed: frozenset[str] = frozenset()
    lost: bool = False
    reason: str | None = None
    more: bool = False
    payloads: int = 0
    requests: int = 0

    def table(self, table_id: str) -> TableChanges:
        """The changes of ``table_id`` (empty when nothing changed there)."""
        return self.tables.get(table_id) or TableChanges(table_id)


def is_conveyors(hook: Any) -> bool:
    """Whether a pyairtable ``Webhook`` is Conveyor's: exactly ``SPECIFICATION``, no URL."""
    if hook.notification_url is not None:
        return False
    options = hook.specification.options
    filters = options.filters
    includes = options.includes
    return (set(filters.data_types) == DATA_TYPES and len(filters.data_types) == len(DATA_TYPES)
            and filters.record_change_scope is None
            and set(filters.change_types) in (set(), {"add", "remove", "update"})
            and not filters.from_sources and filters.source_options is None
            and not filters.watch_data_in_field_ids and not filters.watch_schemas_of_field_ids
            and (includes is None or (not includes.include_cell_values_in_field_ids
                                      and not includes.include_previous_cell_values
                                      and not includes.include_previous_field_definitions)))
