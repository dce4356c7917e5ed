"""The JSON payload passed along a table's chain of steps."""

from __future__ import annotations

from typing import Any

from app.contracts import TableRef

# A listing started again from scratch (its cursor expired, or batches were lost on the way
# to the load workers) numbers its batches from a new epoch, so they can never be mistaken
# for the batches of the abandoned listing.
EPOCH_SIZE = 1_000_000


def table_of(payload: dict[str, Any]) -> TableRef:
    return TableRef.from_json(payload["ctx"]["table"])


def run_id_of(payload: dict[str, Any]) -> str:
    return str(payload["ctx"]["run_id"])


def is_ok(payload: dict[str, Any]) -> bool:
    return payload.get("state", "ok") == "ok"


def ended(payload: dict[str, Any], state: str, error: str | None = None) -> dict[str, Any]:
    """The payload that carries a table's failure or cancellation to the end of its chain.

    It keeps only the context and the target (needed to drop a staging table), never records.
    """
    kept = {k: payload[k] for k in ("ctx", "target") if k in payload}
    return {**kept, "state": state, "error": error}
