"""Re-reading exactly a set of records of a table, by id, in as few requests as Airtable allows.

One list request per 100 ids (a page holds at most 100 records), filtered with
``OR(RECORD_ID()='rec…',…)``. 100 ids make a formula of about 3,200 characters, so the GET URL
stays well under Airtable's 16,000-character limit; pyairtable's fallback moves a longer one to
``POST …/listRecords`` anyway. A record deleted since it was reported is simply not returned.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import requests

from app.contracts import Record
from app.errors import SourceError
from app.extractors.airtable import PAGE_SIZE, AirtableExtractor, translate_http_error

CHUNK = PAGE_SIZE  # more ids per request would only add pages: the request count is the same


def ids_formula(ids: Iterable[str]) -> str:
    """``OR(RECORD_ID()='a',RECORD_ID()='b',…)`` for record ids (``rec`` + 14 letters/digits)."""
    terms = []
    for record_id in ids:
        if not (record_id.startswith("rec") and record_id.isalnum()):
            raise ValueError(f"not an Airtable record id: {record_id!r}")
        terms.append(f"RECORD_ID()='{record_id}'")
    return f"OR({','.join(terms)})"


def fetch_records(extractor: AirtableExtractor, table_id: str, ids: Iterable[str], *,
                  fields: list[str] | None = None, chunk: int = CHUNK) -> Iterator[list[Record]]:
    """The records with ``ids`` in ``table_id``, one list per request (in the table's order).

    Args:
        extractor: its pyairtable ``Api``, session and rate limiter are used.
        table_id: the table (id or name).
        ids: the record ids; duplicates are read once.
        fields: only these fields (names or ids), e.g. to refresh computed fields.
        chunk: ids per request (at most 100: one page).

    Raises:
        ConfigurationError, SourceError, SourceUnavailableError: as a listing of the table.
    """
    wanted = sorted(set(ids))
    table = extractor.api.table(extractor.base_id, table_id)
    for start in range(0, len(wanted), chunk):
        options: dict[str, Any] = {"formula": ids_formula(wanted[start:start + chunk]),
                                   "page_size": PAGE_SIZE}
        if fields is not None:
            options["fields"] = fields
        yield list(_pages(extractor, table, options))


def _pages(extractor: AirtableExtractor, table: Any, options: dict[str, Any]) -> Iterator[Record]:
    what = f"table {table.id_or_name!r}"
    while True:
        try:
            body = extractor.api.request("GET", str(table.urls.records), options=options,
                                         fallback=("POST", str(table.urls.records_post)))
        except requests.HTTPError as exc:
            raise translate_http_error(exc, what, extractor.base_id) from None
        if not isinstance(body, dict):
            raise SourceError(f"Airtable answered {what} with {type(body).__name__}, not an object")
        yield from body.get("records", [])
        if not body.get("offset"):
            return
        options = {**options, "offset": body["offset"]}
