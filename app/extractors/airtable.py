"""AirtableExtractor: every record of every table of a base, page by page, through pyairtable."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import requests
from pyairtable import Api

from app.contracts import FieldSpec, Record, TableRef, TableSchema
from app.errors import (
    ConfigurationError,
    CursorExpiredError,
    SourceError,
    SourceUnavailableError,
)
from app.extractors.airtable_session import RateLimitedSession
from app.extractors.base import Page, TabularExtractor
from app.extractors.partitions import CreatedWindow
from app.extractors.ratelimit import RateLimiter, shared_local_limiter, token_fingerprint
from app.settings import connection_variable, get_settings

log = logging.getLogger(__name__)

PAGE_SIZE = 100  # Airtable's maximum


class AirtableExtractor(TabularExtractor):
    """Reads an Airtable base with pyairtable, staying under its per-base rate limit.

    Called bare it reads ``AIRTABLE_API_KEY``, ``AIRTABLE_BASE_ID``, ``AIRTABLE_API_URL`` and
    ``AIRTABLE_TABLES`` from the settings.
    """

    source_name: ClassVar[str] = "airtable"
    filters_by_modified_time: ClassVar[bool] = True
    supports_partitions: ClassVar[bool] = True

    def __init__(
        self,
        api_key: str | None = None,
        base_id: str | None = None,
        *,
        api_url: str | None = None,
        tables: list[str] | None = None,
        requests_per_second: float | None = None,
        penalty_seconds: float | None = None,
        rate_limiter: RateLimiter | None = None,
        on_wait: Callable[[str, float], None] | None = None,
        connection: str = "default",
    ) -> None:
        settings = get_settings()
        self._params = {k: v for k, v in {
            "base_id": base_id, "api_url": api_url, "tables": tables,
            "requests_per_second": requests_per_second, "penalty_seconds": penalty_seconds,
        }.items() if v is not None}
        self._api_key_given = api_key is not None
        # An explicit pace wins over the shared limiter an in-process run is offered.
        self._pace_given = requests_per_second is not None or rate_limiter is not None
        self.connection = connection
        api_key = api_key or settings.connection_secret(connection, "AIRTABLE_API_KEY")
        base_id = base_id or settings.airtable_base_id
        if not api_key:
            variable = ("AIRTABLE_API_KEY" if connection == "default"
                        else connection_variable(connection, "AIRTABLE_API_KEY"))
            raise ConfigurationError(f"{variable} is not set: give the Airtable token")
        if not base_id:
            raise ConfigurationError("AIRTABLE_BASE_ID is not set: give the base id (app…)")
        self.base_id = base_id
        self.api_url = (api_url or settings.airtable_api_url).rstrip("/")
        self.table_names = tables if tables is not None else settings.airtable_table_list
        rate = requests_per_second or settings.airtable_requests_per_second
        self.session = RateLimitedSession(
            rate_limiter or shared_local_limiter(rate, settings.airtable_token_requests_per_second),
            base_key=f"{self.api_url}/{base_id}",
            token_key=token_fingerprint(api_key, self.api_url, settings.fingerprint_key),
            penalty_seconds=(
                penalty_seconds if penalty_seconds is not None
                else settings.airtable_rate_limit_penalty_seconds
            ),
            max_attempts=settings.airtable_max_attempts,
            on_wait=on_wait,
        )
        timeout = max(int(settings.airtable_timeout_seconds), 1)
        self.api = Api(api_key, endpoint_url=self.api_url, retry_strategy=None,
                       timeout=(min(timeout, 10), timeout))
        self.api.session = self.session
        self.api.api_key = api_key  # puts the bearer header on our session
        self._tables_meta: list[dict[str, Any]] | None = None

    def describe(self) -> str:
        return f"Airtable base {self.base_id} at {self.api_url}"

    def use_rate_limiter(self, limiter: RateLimiter) -> None:
        if not self._pace_given:
            self.session.limiter = limiter

    def identity(self) -> str:
        return f"airtable:{self.base_id}"

    def to_params(self) -> dict[str, Any]:
        """The arguments this extractor was built with, for a worker to build it again; the
        token stays behind (workers take it from the run's connection).

        Raises:
            ConfigurationError: the token was passed in, which no message may carry.
        """
        if self._api_key_given:
            raise ConfigurationError(
                "an api_key given to AirtableExtractor cannot be sent to workers: set "
                f"{connection_variable(self.connection, 'AIRTABLE_API_KEY')} in the workers' "
                "environment and pass connection=… instead")
        return dict(self._params)

    def list_tables(self) -> list[TableRef]:
        """The tables of ``AIRTABLE_TABLES`` (names or ids), or every table of the base."""
        tables = [self._ref(meta) for meta in self._metadata()]
        if not self.table_names:
            return tables
        chosen: list[TableRef] = []
        for wanted in self.table_names:
            match = next((t for t in tables if wanted == t.table_id), None) or next(
                (t for t in tables if wanted == t.name), None)
            if match is None:
                known = ", ".join(repr(t.name) for t in tables) or "none"
                raise ConfigurationError(
                    f"AIRTABLE_TABLES names unknown table {wanted!r}: base {self.base_id} has {known}")
            chosen.append(match)
        return chosen

    def get_schema(self, table: TableRef) -> TableSchema:
        meta = next((m for m in self._metadata() if m["id"] == table.table_id), None)
        if meta is None:
            raise ConfigurationError(f"table {table.name!r} is no longer in base {self.base_id}")
        return TableSchema(table=table, fields=tuple(_field_spec(f) for f in meta["fields"]))

    def iter_pages(self, table: TableRef, cursor: str | None = None,
                   formula: str | None = None, fields: list[str] | None = None) -> Iterator[Page]:
        """Pages of at most 100 records, in Airtable's order, resuming after ``cursor``.

        ``formula`` (``filterByFormula``) lists only the records it keeps, e.g. one
        partition's window (``app.extractors.partitions``) or the records modified since a
        time (``app.sync.changes``); ``fields`` (``fields[]``) lists only those fields. A
        cursor resumes only the listing with the same formula and fields. Each page carries
        the server's time of its answer (the ``Date`` header).
        """
        url = self.api.table(self.base_id, table.table_id).urls.records
        offset = cursor
        while True:
            options: dict[str, Any] = {"page_size": PAGE_SIZE}
            if formula:
                options["formula"] = formula
            if fields is not None:
                options["fields"] = fields
            if offset:
                options["offset"] = offset
            body = self._call("GET", url, f"table {table.name!r}", options=options)
            offset = body.get("offset")
            records: list[Record] = body.get("records", [])
            yield Page(records, offset, server_time=self.session.last_date)
            if not offset:
                return

    def iter_window(self, table: TableRef, window: CreatedWindow,
                    cursor: str | None = None) -> Iterator[Page]:
        return self.iter_pages(table, cursor, formula=window.formula())

    def _metadata(self) -> list[dict[str, Any]]:
        if self._tables_meta is None:
            url = self.api.base(self.base_id).urls.tables
            body = self._call("GET", url, f"base {self.base_id}")
            self._tables_meta = list(body.get("tables", []))
        return self._tables_meta

    def _ref(self, meta: dict[str, Any]) -> TableRef:
        return TableRef(source=self.source_name, table_id=meta["id"], name=meta["name"])

    def _call(self, method: str, url: str, what: str, **kwargs: Any) -> dict[str, Any]:
        try:
            body = self.api.request(method, str(url), **kwargs)
        except requests.HTTPError as exc:
            raise translate_http_error(exc, what, self.base_id) from None
        if not isinstance(body, dict):
            raise SourceError(f"Airtable answered {what} with {type(body).__name__}, not an object")
        return body


def _field_spec(meta: dict[str, Any]) -> FieldSpec:
    options = meta.get("options") or {}
    result = options.get("result") or {}
    return FieldSpec(
        name=meta["name"],
        type=meta.get("type"),
        field_id=meta.get("id"),
        result_type=result.get("type") if isinstance(result, dict) else None,
    )


def translate_http_error(exc: requests.HTTPError, what: str, base_id: str) -> Exception:
    """One clear line per Airtable error, saying what to fix."""
    response = exc.response
    status = response.status_code if response is not None else 0
    kind = error_type(response)
    if status == 401:
        return ConfigurationError(
            f"Airtable rejected AIRTABLE_API_KEY (401 {kind}): check the token")
    if status == 403:
        return ConfigurationError(
            f"Airtable refused {what} (403 {kind}): check AIRTABLE_BASE_ID {base_id!r} "
            "and that the token has access to it")
    if status == 404:
        return ConfigurationError(f"Airtable has no {what} (404 {kind}): check AIRTABLE_TABLES")
    if status == 422 and kind == "LIST_RECORDS_ITERATOR_NOT_AVAILABLE":
        return CursorExpiredError(f"Airtable forgot the listing offset of {what}; restart it")
    if status >= 500 or status == 429:
        return SourceUnavailableError(f"Airtable kept failing on {what} (HTTP {status} {kind})")
    return SourceError(f"Airtable refused {what} (HTTP {status} {kind})")


def error_type(response: requests.Response | None) -> str:
    """The ``error.type`` of an Airtable error answer (``INVALID_PERMISSIONS``…), or ""."""
    if response is None:
        return ""
    try:
        body = response.json()
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("type", ""))
    if isinstance(error, str):
        return error
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("error", ""))
    return ""
