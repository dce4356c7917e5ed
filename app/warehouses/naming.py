"""SQL names for source tables and fields: snake_case ASCII, at most 63 bytes, never clashing."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from typing import Final

#: PostgreSQL silently truncates longer identifiers, which would merge distinct names.
MAX_NAME_BYTES: Final = 63
#: Conveyor's own columns; source fields never get a name starting with ``__``.
ID: Final = "__id"
CREATED_TIME: Final = "__created_time"
RUN_ID: Final = "__run_id"
UNFIT: Final = "__unfit"
#: When the record was found deleted at the source (NULL while it lives there).
DELETED_AT: Final = "__deleted_at"
SYSTEM_COLUMNS: Final = (ID, CREATED_TIME, RUN_ID, UNFIT, DELETED_AT)
#: Prefix of Conveyor's catalog and scratch tables; data table names never start with it.
INTERNAL_PREFIX: Final = "_conveyor_"

_HASH_CHARS: Final = 8
#: Latin letters that NFKD does not decompose into ASCII.
_LETTERS: Final = str.maketrans(
    {
        "ß": "ss",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "ø": "o",
        "Ø": "O",
        "đ": "d",
        "Đ": "D",
        "ł": "l",
        "Ł": "L",
        "þ": "th",
        "Þ": "TH",
        "ð": "d",
        "Ð": "D",
    }
)


def snake_case(text: str) -> str:
    """``text`` as lower snake_case ASCII; may be empty (nothing transliterable).

    Example:
        >>> snake_case("Client Projects"), snake_case("Prénom"), snake_case("createdTime")
        ('client_projects', 'prenom', 'created_time')
    """
    decomposed = unicodedata.normalize("NFKD", text.translate(_LETTERS))
    ascii_text = decomposed.encode("ascii", "ignore").decode("ascii")
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", ascii_text)
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", spaced)
    return re.sub(r"[^A-Za-z0-9]+", "_", spaced).strip("_").lower()


def column_name(field_name: str, taken: Iterable[str]) -> str:
    """A new column name for ``field_name`` that is not in ``taken`` (case-insensitively).

    The result never starts with ``__`` (so never clashes with ``SYSTEM_COLUMNS``): leading
    underscores are stripped and ``_`` is only added before a leading digit. It fits in
    ``MAX_NAME_BYTES``.
    """
    base = snake_case(field_name) or "field"
    if base[0].isdigit():
        base = f"_{base}"
    return unique_name(base, taken)


def table_name(source: str, name: str, taken: Iterable[str]) -> str:
    """A new table name ``<source>__<name in snake_case>`` that is not in ``taken``."""
    base = f"{snake_case(source) or 'source'}__{snake_case(name) or 'table'}"
    return unique_name(base, taken)


def unique_name(base: str, taken: Iterable[str]) -> str:
    """``base`` (shortened to fit), else ``base_2``, ``base_3``…: the first not in ``taken``."""
    used = {name.lower() for name in taken}
    candidate = shorten(base, MAX_NAME_BYTES)
    number = 1
    while candidate.lower() in used:
        number += 1
        suffix = f"_{number}"
        candidate = shorten(base, MAX_NAME_BYTES - len(suffix)) + suffix
    return candidate


def shorten(name: str, limit: int) -> str:
    """``name`` if it fits in ``limit`` bytes, else its head plus a hash of the whole name.

    The hash keeps two long names that share their first ``limit`` bytes apart.
    """
    if len(name.encode("utf-8")) <= limit:
        return name
    digest = _digest(name)
    head = name.encode("utf-8")[: limit - _HASH_CHARS - 1].decode("utf-8", "ignore")
    return f"{head.rstrip('_')}_{digest}"


def staging_name(source: str, table_id: str, run_id: str) -> str:
    """The staging table of one replacing load: the same for every retry of that run's table."""
    return f"{INTERNAL_PREFIX}stage_{_digest(source, table_id, run_id)}"


def retired_name(source: str, table_id: str, run_id: str) -> str:
    """Where the live table is moved for the moment of a swap, before it is dropped."""
    return f"{INTERNAL_PREFIX}old_{_digest(source, table_id, run_id)}"


def scratch_name(purpose: str, table: str) -> str:
    """A scratch table for one step (``retype``, ``rebuild``) on ``table``; it lives only
    inside that step's transaction."""
    return f"{INTERNAL_PREFIX}{purpose}_{_digest(table)}"


def _digest(*parts: str) -> str:
    data = "\x00".join(parts).encode("utf-8")
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()[:_HASH_CHARS]
