"""HTTP handling: routing, authentication, rate limits, injected failures, JSON in and out.

Checks run in the real API's order as far as it can be observed: the token (401), then the
base (403), then the base's rate limit (429), then the table (403, the answer personal access
tokens get today; ``SandboxConfig.legacy_table_not_found`` gives the old 404 TABLE_NOT_FOUND).
"""

from __future__ import annotations

import email.utils
import io
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from sandbox import errors, meta, writes
from sandbox.arrival import StampedReader, stamped_reader
from sandbox.base import SandboxBase
from sandbox.listing import list_page, query_from_body, query_from_params, render
from sandbox.model import SandboxTable
from sandbox.state import SandboxState

logger = logging.getLogger(__name__)

_TABLE_ROUTES = {"GET": "list", "POST": "create", "PATCH": "update_many", "PUT": "update_many",
                 "DELETE": "delete_many"}
# Airtable refuses a request whose URL is longer than this (its documented limit, counted on
# the whole URL, origin included); clients move a long formula into POST …/listRecords.
MAX_URL_LENGTH = 16_000
_REAL_ORIGIN = "https://api.airtable.com"
_RECORD_ROUTES = {"GET": "get", "PATCH": "update", "PUT": "update", "DELETE": "delete"}


@dataclass(frozen=True)
class Route:
    """What a request path names: ``kind`` (``list``, ``meta_tables``, …) and its ids."""

    kind: str
    base_id: str | None = None
    table: str | None = None
    record_id: str | None = None
    item: str | None = None  # a webhook or field id


def route(method: str, path: str) -> Route:
    """Map a method and raw path to a route; segments are unquoted one by one, so a table
    name holding an encoded ``/`` stays one segment."""
    parts = [unquote(p) for p in urlsplit(path).path.split("/")[1:]]
    if parts and parts[-1] == "":
        parts.pop()
    if not parts or parts[0] != "v0":
        return Route("unknown")
    rest = parts[1:]
    if rest[:1] == ["bases"] and len(rest) >= 3 and rest[2] == "webhooks":
        return _webhook_route(method, rest)
    if rest[:1] == ["meta"]:
        if method == "GET" and rest == ["meta", "whoami"]:
            return Route("meta_whoami")
        if method == "GET" and rest == ["meta", "bases"]:
            return Route("meta_bases")
        if method == "GET" and len(rest) == 4 and rest[1] == "bases" and rest[3] == "tables":
            return Route("meta_tables", rest[2])
        if len(rest) >= 6 and rest[1] == "bases" and rest[3] == "tables" and rest[5] == "fields":
            if method == "POST" and len(rest) == 6:
                return Route("field_create", rest[2], rest[4])
            if method == "PATCH" and len(rest) == 7:
                return Route("field_update", rest[2], rest[4], item=rest[6])
        return Route("unknown")
    if len(rest) == 2 and method in _TABLE_ROUTES:
        return Route(_TABLE_ROUTES[method], rest[0], rest[1])
    if len(rest) == 3 and method == "POST" and rest[2] == "listRecords":
        return Route("list_post", rest[0], rest[1])
    if len(rest) == 3 and method in _RECORD_ROUTES:
        return Route(_RECORD_ROUTES[method], rest[0], rest[1], rest[2])
    return Route("unknown")


_WEBHOOK_ACTIONS = {("POST", "refresh"): "webhook_refresh", ("GET", "payloads"): "webhook_payloads",
                    ("POST", "enableNotifications"): "webhook_notifications"}


def _webhook_route(method: str, rest: list[str]) -> Route:
    base_id = rest[1]
    if len(rest) == 3 and method in ("GET", "POST"):
        return Route("webhooks" if method == "GET" else "webhook_create", base_id)
    if len(rest) == 4 and method == "DELETE":
        return Route("webhook_delete", base_id, item=rest[3])
    if len(rest) == 5 and (method, rest[4]) in _WEBHOOK_ACTIONS:
        return Route(_WEBHOOK_ACTIONS[method, rest[4]], base_id, item=rest[3])
    return Route("unknown")


def _body_dict(body: Any) -> Mapping[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, Mapping):
        raise errors.invalid_request("Invalid request: the body must be a JSON object")
    return body


def _table(sandbox: SandboxState, base: SandboxBase, name: str) -> SandboxTable:
    table = base.table(name)
    if table is None:
        if sandbox.config.legacy_table_not_found:
            raise errors.table_not_found(name, base.id)
        raise errors.model_not_found()
    return table


def dispatch(sandbox: SandboxState, method: str, where: Route, params: dict[str, list[str]],
             body: Any) -> tuple[int, Any]:
    """Serve one authenticated, admitted request; returns status and JSON payload."""
    if where.kind == "meta_whoami":
        return 200, meta.whoami_body(webhooks=sandbox.config.webhooks_allowed)
    if where.kind == "meta_bases":
        return 200, meta.bases_body(sandbox.bases.values())
    base = sandbox.bases[where.base_id or ""]
    if where.kind == "meta_tables":
        return 200, meta.tables_body(base, params.get("include[]", []) + params.get("include", []))
    data = _body_dict(body)
    if where.kind.startswith("webhook"):
        return 200, _webhooks(sandbox, base, where, params, data)
    table = _table(sandbox, base, where.table or "")
    if where.kind == "field_create":
        return 200, meta.create_field(base, table, data)
    if where.kind == "field_update":
        return 200, meta.update_field(base, table, where.item or "", data)
    record_id = where.record_id or ""
    records: dict[str, Callable[[], Any]] = {
        "list": lambda: list_page(table, query_from_params(params), sandbox.iterators),
        "list_post": lambda: list_page(table, query_from_body(dict(data), params),
                                       sandbox.iterators),
        "get": lambda: _get(table, record_id, params),
        "create": lambda: writes.create(table, data),
        "update": lambda: writes.update_one(table, record_id, data, replace=method == "PUT"),
        "update_many": lambda: writes.update_many(table, data, replace=method == "PUT"),
        "delete": lambda: writes.delete_one(table, record_id),
        "delete_many": lambda: writes.delete_many(table, params),
    }
    with base.transaction():  # one request, one transaction (an upsert both creates and updates)
        return 200, records[where.kind]()


def _webhooks(sandbox: SandboxState, base: SandboxBase, where: Route,
              params: dict[str, list[str]], data: Mapping[str, Any]) -> Any:
    if not sandbox.config.webhooks_allowed:
        raise errors.model_not_found()  # what a token without webhook:manage gets
    hooks, hook_id = sandbox.webhooks, where.item or ""
    handlers: dict[str, Callable[[], Any]] = {
        "webhooks": lambda: hooks.listing(base),
        "webhook_create": lambda: hooks.create(base, data),
        "webhook_delete": lambda: hooks.delete(base, hook_id),
        "webhook_refresh": lambda: hooks.refresh(base, hook_id),
        "webhook_payloads": lambda: hooks.payloads(base, hook_id, params),
        "webhook_notifications": lambda: hooks.enable_notifications(base, hook_id, data),
    }
    return handlers[where.kind]()


def _get(table: SandboxTable, record_id: str, params: dict[str, list[str]]) -> dict[str, Any]:
    record = table.get(record_id)
    if record is None:
        raise errors.record_not_found()
    return render(record, table, query_from_params(params))


class SandboxHandler(BaseHTTPRequestHandler):
    """One connection; HTTP/1.1 with exact Content-Length, so clients keep connections alive."""

    protocol_version = "HTTP/1.1"
    server_version = "ConveyorSandbox/1.0"
    # An idle keep-alive connection is dropped after this long, like a load balancer would.
    timeout = 120

    _arrivals: StampedReader | None = None

    def setup(self) -> None:
        super().setup()
        # Read through a reader that keeps the kernel's receive time, so a request is counted
        # when it arrived, not when this thread got the GIL (sandbox/arrival.py).
        self._arrivals = stamped_reader(self.connection)
        if self._arrivals is not None:
            self.rfile.close()
            self.rfile = io.BufferedReader(self._arrivals)

    def handle_one_request(self) -> None:
        if self._arrivals is not None:
            self._arrivals.start_request()
        super().handle_one_request()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        """Stay silent: test output must be clean, and stats count every request anyway."""

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` header of every answer, from the sandbox's clock (clients that pace
        modified-time windows read the server's time from it, as they must with Airtable)."""
        if timestamp is None:
            timestamp = self.sandbox.clock.now_ms() / 1000
        return email.utils.formatdate(timestamp, usegmt=True)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    @property
    def sandbox(self) -> SandboxState:
        return self.server.sandbox  # type: ignore[attr-defined, no-any-return]

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True  # the sandbox only reads Content-Length bodies
            raise errors.ApiError(411, {"error": "LENGTH_REQUIRED"})
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self, method: str) -> None:
        sandbox = self.sandbox
        where, injected, arrived, raw = Route("unknown"), False, None, b""
        received = time.monotonic()
        try:
            raw = self._read_body()  # always drained, or the next request on this connection breaks
            config = sandbox.config
            stamp = self._arrivals.request_arrival if self._arrivals is not None else None
            jitter = 0.0
            if config.latency_jitter_seconds:  # the network's jitter comes before the count
                jitter = sandbox.failures.jitter(config.latency_jitter_seconds)
                time.sleep(jitter)
            arrived = time.monotonic() if stamp is None else stamp + jitter
            where = route(method, self.path)
            if len(_REAL_ORIGIN) + len(self.path) > MAX_URL_LENGTH:
                raise errors.url_too_long(MAX_URL_LENGTH)
            if self.headers.get("Authorization", "") != f"Bearer {config.token}":
                raise errors.authentication_required()
            if where.kind == "unknown":
                raise errors.route_not_found()
            if where.base_id is not None:
                if where.base_id not in sandbox.bases:
                    raise errors.model_not_found()
                if not sandbox.limiter.allow(where.base_id, at=arrived):
                    raise errors.rate_limited()
            # Airtable counts a request against the base's limit as it arrives; the time it
            # takes to answer (the page's latency) comes after. Sleeping first would count
            # each request late by however late this process woke up, on top of the latency.
            if config.latency_seconds:
                time.sleep(config.latency_seconds)
            failure = sandbox.failures.pick(config.failure_rate)
            if failure is not None:
                injected = True
                raise errors.server_error(failure)
            try:
                body = json.loads(raw) if raw.strip() else None
            except ValueError:
                raise errors.typed(400, "INVALID_REQUEST_UNKNOWN",
                                   "Invalid request: the body is not valid JSON") from None
            params = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
            status, payload = dispatch(sandbox, method, where, params, body)
        except errors.ApiError as exc:
            status, payload = exc.status, exc.body
        except Exception:  # a sandbox bug: answer like the API would, count it, show it
            logger.exception("sandbox failed on %s %s", method, self.path)
            status, payload = 500, errors.server_error(500).body
        served = payload.get("records") if status == 200 and isinstance(payload, dict) else None
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        sandbox.stats.record(where.kind, status, injected=injected, arrived=arrived,
                             records=len(served) if isinstance(served, list) else 0,
                             target=f"{method} {self.path} {raw.decode(errors='replace')}"
                             if sandbox.stats.log is not None else "", body_bytes=len(data),
                             received=received)
        self._send(status, data)

    def _send(self, status: int, data: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away; nothing left to tell it

