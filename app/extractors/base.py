"""The extractor contract: what a source must offer for ETLWorkflow to sync it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from app.contracts import FieldSpec, Record, TableRef, TableSchema
from app.errors import ConfigurationError
from app.extractors.partitions import CreatedWindow
from app.extractors.ratelimit import RateLimiter


@dataclass(frozen=True)
class Page:
    """One page of records and the cursor that resumes the listing after it (None: last page)."""

    records: list[Record]
    next_cursor: str | None = None
    #: The fields the listing asked for (None: every field; ``()``: the ids alone matter).
    fields: tuple[str, ...] | None = None
    #: The page belongs to a listing of every live record (``app.sync.changes``).
    seen: bool = False
    #: The source's clock when it answered (e.g. Airtable's ``Date`` header), if known.
    server_time: datetime | None = None
    #: Requests the page took (0: made up without asking the source, e.g. nothing changed).
    requests: int = 1


class TabularExtractor(ABC):
    """A source of tables of records.

    Implement ``list_tables`` and ``iter_records``; everything else has a working default.
    A record is ``{"id": "<stable unique id>", "fields": {name: value}}`` with empty fields
    left out. Override ``get_schema`` to give field types (otherwise they are inferred from the
    data) and ``iter_pages`` to page natively and resume from a cursor.

    Example:
        >>> class CountriesExtractor(TabularExtractor):
        ...     source_name = "static"
        ...     def list_tables(self):
        ...         return [TableRef("static", "countries", "Countries")]
        ...     def iter_records(self, table):
        ...         yield {"id": "fr", "fields": {"Name": "France"}}
    """

    #: Prefix of warehouse table names: ``<source_name>__<table name>``.
    source_name: ClassVar[str] = "custom"
    #: Records per page when ``iter_pages`` is not overridden.
    page_size: ClassVar[int] = 100
    #: Whether ``iter_pages`` takes ``formula`` (Airtable's ``filterByFormula``, with
    #: ``LAST_MODIFIED_TIME()``) and ``fields``, and pages carry ``server_time``: then an
    #: incremental run reads only what changed (``app.sync.changes``); else it lists
    #: every record, as a merge does.
    filters_by_modified_time: ClassVar[bool] = False
    #: Whether ``iter_window`` can list one creation-time window of a table, so a large table
    #: can be split into partitions that page in parallel.
    supports_partitions: ClassVar[bool] = False

    @abstractmethod
    def list_tables(self) -> list[TableRef]:
        """Every table this extractor will sync, in order."""

    def iter_records(self, table: TableRef) -> Iterator[Record]:
        """Every record of ``table``; implement this or ``iter_pages``."""
        raise NotImplementedError(f"{type(self).__name__} must implement iter_records or iter_pages")

    def get_schema(self, table: TableRef) -> TableSchema:
        """The fields of ``table``. The default knows no fields: the warehouse infers them."""
        return TableSchema(table=table, fields=())

    def iter_pages(self, table: TableRef, cursor: str | None = None) -> Iterator[Page]:
        """Pages of ``table``'s records, starting after ``cursor`` (None: from the start).

        The default pages ``iter_records``; its cursor is the number of records already read.
        """
        skip = int(cursor) if cursor else 0
        page: list[Record] = []
        position = 0
        for position, record in enumerate(self.iter_records(table), start=1):
            if position <= skip:
                continue
            page.append(record)
            if len(page) >= self.page_size:
                yield Page(page, str(position))
                page = []
        yield Page(page, None)

    def iter_window(self, table: TableRef, window: CreatedWindow,
                    cursor: str | None = None) -> Iterator[Page]:
        """Pages of the records of ``table`` created in ``window``, resuming after ``cursor``.

        Only sources with ``supports_partitions`` implement it.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot list a creation-time window")

    def find_table(self, name_or_id: str) -> TableRef:
        """The table whose id or name is ``name_or_id``.

        Raises:
            ConfigurationError: no table has that id or name.
        """
        tables = self.list_tables()
        for table in tables:
            if name_or_id in (table.table_id, table.name):
                return table
        known = ", ".join(t.name for t in tables) or "none"
        raise ConfigurationError(f"unknown table {name_or_id!r}: the source has {known}")

    def describe(self) -> str:
        """A one-line description for logs; never includes a secret."""
        return type(self).__name__

    def use_rate_limiter(self, limiter: RateLimiter) -> None:  # noqa: B027 (optional hook)
        """Pace this extractor's requests with ``limiter`` (shared across processes); a
        source without a rate limit ignores it."""

    def identity(self) -> str:
        """What this extractor reads, for the overlap guard (e.g. ``airtable:app…``)."""
        return self.source_name

    def to_params(self) -> dict[str, Any]:
        """The constructor arguments a worker needs to build this extractor again.

        The default knows none, so an instance cannot be sent to workers (a class can:
        workers build it bare). Override it, and accept the same keyword arguments (plus
        ``connection``) in ``__init__``, to make instances travel.

        Raises:
            ConfigurationError: this instance cannot be rebuilt on a worker.
        """
        raise ConfigurationError(
            f"a {type(self).__name__} instance cannot be sent to workers: pass the class, "
            "or give it to_params()")


def fields_from_names(names: list[str]) -> tuple[FieldSpec, ...]:
    """Untyped field specs for sources that know their column names but not their types."""
    return tuple(FieldSpec(name=name) for name in names)
