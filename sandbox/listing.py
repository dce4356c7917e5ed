"""List records: query parameters, filtering, sorting, paging with opaque offsets, projection."""

from __future__ import annotations

import math
import random
import re
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sandbox import errors
from sandbox.clock import make_id
from sandbox.config import SandboxConfig
from sandbox.formula import compile_filter, record_id_set
from sandbox.formula_functions import FormulaError, cell_value, to_text
from sandbox.model import SandboxField, SandboxTable

VIEW_NAME = "Grid view"
# Old offsets are forgotten past either bound, oldest first; a full scan of one 20,000-record
# table holds 20,000 ids, so the second bound caps memory at some 16 MB of references.
_MAX_ITERATORS = 1000
_MAX_HELD_IDS = 2_000_000
_SORT_PARAM = re.compile(r"sort\[(\d+)\]\[(field|direction)\]")
_FIELDS_PARAM = re.compile(r"fields(\[\d*\])?")


@dataclass
class ListQuery:
    """The options of one list request, from the query string or a ``listRecords`` body."""

    page_size: int = 100
    offset: str | None = None
    max_records: int | None = None
    fields: list[str] | None = None
    formula: str = ""
    by_field_id: bool = False
    sort: list[tuple[str, str]] = field(default_factory=list)
    view: str | None = None
    cell_format: str = "json"
    comment_count: bool = False


def _integer(name: str, raw: Any, low: int, high: int | None = None) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise errors.invalid_request(f"Invalid request: {name} must be an integer") from None
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise errors.invalid_request(f"Invalid request: {name} must be {bounds}, got {value}")
    return value


def _flag(raw: Any) -> bool:
    return raw is True or str(raw).lower() in ("1", "true")


def query_from_params(params: dict[str, list[str]], *, record_only: bool = False) -> ListQuery:
    """Read a GET query string (``pageSize``, ``fields[]``, ``sort[0][field]``, …)."""
    query = ListQuery()
    sorts: dict[int, dict[str, str]] = {}
    for key, values in params.items():
        last = values[-1]
        if _FIELDS_PARAM.fullmatch(key):
            query.fields = (query.fields or []) + values
        elif match := _SORT_PARAM.fullmatch(key):
            sorts.setdefault(int(match.group(1)), {})[match.group(2)] = last
        elif key == "pageSize":
            query.page_size = _integer("pageSize", last, 1, 100)
        elif key == "maxRecords":
            query.max_records = _integer("maxRecords", last, 1)
        elif key == "offset":
            query.offset = last
        elif key == "filterByFormula":
            query.formula = last
        elif key == "returnFieldsByFieldId":
            query.by_field_id = _flag(last)
        elif key == "view":
            query.view = last
        elif key == "cellFormat":
            query.cell_format = last
        elif key in ("recordMetadata[]", "recordMetadata"):
            query.comment_count = "commentCount" in values
    query.sort = [(s.get("field", ""), s.get("direction", "asc")) for _, s in sorted(sorts.items())]
    return _checked(query, params)


def query_from_body(body: dict[str, Any], params: dict[str, list[str]] | None = None) -> ListQuery:
    """Read a ``POST …/listRecords`` JSON body (same options, JSON-typed).

    ``params`` is the query string, where clients put ``timeZone`` and ``userLocale``.
    """
    query = ListQuery()
    if "pageSize" in body:
        query.page_size = _integer("pageSize", body["pageSize"], 1, 100)
    if "maxRecords" in body:
        query.max_records = _integer("maxRecords", body["maxRecords"], 1)
    query.offset = body.get("offset")
    if body.get("fields") is not None:
        query.fields = [str(f) for f in body["fields"]]
    query.formula = str(body.get("filterByFormula") or "")
    query.by_field_id = _flag(body.get("returnFieldsByFieldId", False))
    query.view = body.get("view")
    query.cell_format = str(body.get("cellFormat", "json"))
    query.comment_count = "commentCount" in (body.get("recordMetadata") or [])
    try:
        query.sort = [(str(s["field"]), str(s.get("direction", "asc")))
                      for s in body.get("sort", [])]
    except (KeyError, TypeError):
        raise errors.invalid_request("Invalid request: sort must be a list of {field, direction}")\
            from None
    return _checked(query, {**(params or {}), **{k: [str(v)] for k, v in body.items()}})


def _checked(query: ListQuery, raw: dict[str, list[str]]) -> ListQuery:
    if query.cell_format not in ("json", "string"):
        raise errors.invalid_request(f"Invalid request: unknown cellFormat {query.cell_format!r}")
    if query.cell_format == "string" and not ("timeZone" in raw and "userLocale" in raw):
        raise errors.invalid_request("Invalid request: cellFormat string needs timeZone and "
                                     "userLocale")
    for _, direction in query.sort:
        if direction not in ("asc", "desc"):
            raise errors.invalid_request(f"Invalid request: unknown sort direction {direction!r}")
    return query


@dataclass
class _Iterator:
    table_id: str
    ids: list[str]
    started: float
    positions: dict[str, int] = field(default_factory=dict)


class Iterators:
    """Offsets handed out by list requests: ``itr…/rec…``, valid until evicted or expired."""

    def __init__(self, config: Callable[[], SandboxConfig]) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._rng = random.Random(config().seed)
        self._items: OrderedDict[str, _Iterator] = OrderedDict()
        self._held = 0

    def start(self, table_id: str, ids: list[str]) -> tuple[str, _Iterator]:
        """Remember the matching ids of a first page; later pages slice this snapshot."""
        with self._lock:
            key = make_id("itr", self._rng)
            iterator = _Iterator(table_id, ids, time.monotonic())
            self._items[key] = iterator
            self._held += len(ids)
            while len(self._items) > 1 and (len(self._items) > _MAX_ITERATORS
                                            or self._held > _MAX_HELD_IDS):
                self._held -= len(self._items.popitem(last=False)[1].ids)
            return key, iterator

    def issue(self, key: str, iterator: _Iterator, position: int) -> str:
        """The offset token for the page starting at ``position``."""
        token = f"{key}/{iterator.ids[position]}"
        iterator.positions[token] = position
        return token

    def resume(self, token: str, table_id: str) -> tuple[str, _Iterator, int]:
        """The iterator and position an offset points to.

        Raises:
            ApiError: 422 ``LIST_RECORDS_ITERATOR_NOT_AVAILABLE`` for an unknown, garbled,
                expired or other-table offset.
        """
        key = token.split("/", 1)[0]
        ttl = self._config().offset_ttl_seconds
        with self._lock:
            iterator = self._items.get(key)
            if iterator is not None and ttl is not None \
                    and time.monotonic() - iterator.started > ttl:
                self._held -= len(self._items.pop(key).ids)
                iterator = None
            if iterator is None or iterator.table_id != table_id or token not in iterator.positions:
                raise errors.iterator_not_available()
            self._items.move_to_end(key)
            return key, iterator, iterator.positions[token]


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    if isinstance(value, (bool, int, float)):
        return (1, float(value))
    return (2, to_text(value).casefold())


def _sort_by(target: SandboxField) -> Callable[[dict[str, Any]], tuple[int, Any]]:
    name, kind = target.name, target.type
    return lambda record: _sort_key(cell_value(kind, record["fields"].get(name)))


def _matching_ids(table: SandboxTable, query: ListQuery) -> list[str]:
    if query.view is not None and query.view not in (VIEW_NAME, table.view_id):
        raise errors.typed(422, "VIEW_NAME_NOT_FOUND", f'Could not find view "{query.view}"')
    sort_fields = []
    for name, direction in query.sort:
        target = table.field(name)
        if target is None:
            raise errors.unknown_field(name)
        sort_fields.append((target, direction == "desc"))
    if not query.formula.strip() and not sort_fields:
        # The whole table in creation order: no record needs to be looked at.
        ids = table.record_ids()
        return ids if query.max_records is None else ids[: query.max_records]
    records = table.records
    by_id = record_id_set(query.formula)
    window = _created_window(query.formula) if by_id is None else None
    if by_id is not None:
        records = [r for r in records if r["id"] in by_id]
    elif window is not None:
        low, high = window
        records = [r for r in records if low <= table.created_ms(r["id"]) < high]
    elif query.formula.strip():
        try:
            keep = compile_filter(query.formula, table)
        except FormulaError as exc:
            raise errors.invalid_formula(str(exc)) from None
        if _stable(query.formula):
            known = _stable_matches(table, query.formula)
            kept = []
            for record in records:
                verdict = known.get(record["id"])
                if verdict is None:
                    verdict = known[record["id"]] = keep(record)
                if verdict:
                    kept.append(record)
            records = kept
        else:
            records = [r for r in records if keep(r)]
    for target, descending in reversed(sort_fields):  # stable sorts, least significant first
        records.sort(key=_sort_by(target), reverse=descending)
    if query.max_records is not None:
        records = records[: query.max_records]
    return [r["id"] for r in records]


# Functions whose value for a record never changes: a formula made of them alone (creation-time
# windows, record ids) keeps or drops a record forever, so its verdicts are remembered.
# Evaluating one over a 20,000-record table in Python holds the GIL for seconds, stalling
# every other request of the sandbox, which Airtable's own servers would not.
_STABLE_WORDS = frozenset({"AND", "OR", "NOT", "IF", "VALUE", "DATETIME_FORMAT", "CREATED_TIME",
                           "RECORD_ID", "TRUE", "FALSE", "BLANK"})
_STABLE_CACHE: weakref.WeakKeyDictionary[SandboxTable, dict[str, dict[str, bool]]] = \
    weakref.WeakKeyDictionary()
_STABLE_FORMULAS_PER_TABLE = 64


_CREATED_MS = re.escape("VALUE(DATETIME_FORMAT(CREATED_TIME(),'x'))")
_BOUND = re.compile(rf"{_CREATED_MS}(>=|<)(-?\d+)")
_WINDOW = re.compile(rf"^(?:{_BOUND.pattern}|AND\({_BOUND.pattern},{_BOUND.pattern}\))$")


def _created_window(formula: str) -> tuple[float, float] | None:
    """``[low, high)`` of creation times (ms) when ``formula`` is exactly a creation-time window
    as Conveyor's partitions write it (``app.extractors.partitions``), else None. Such a window
    is answered by comparing creation times, which is what the formula engine computes too,
    without evaluating the formula per record: Airtable answers these from an index, and a
    sandbox holding its GIL for seconds would bunch the arrivals it counts."""
    if not _WINDOW.match(formula.strip()):
        return None
    low, high = -math.inf, math.inf
    for op, value in _BOUND.findall(formula):
        if op == ">=":
            low = max(low, int(value))
        else:
            high = min(high, int(value))
    return low, high


def _stable(formula: str) -> bool:
    code = re.sub(r"'[^']*'|\"[^\"]*\"", "", formula)
    return "{" not in code and set(re.findall(r"[A-Za-z_][A-Za-z_0-9]*", code)) <= _STABLE_WORDS


def _stable_matches(table: SandboxTable, formula: str) -> dict[str, bool]:
    """The remembered verdicts of ``formula`` on ``table``'s records (filled as they come)."""
    per_table = _STABLE_CACHE.setdefault(table, {})
    if formula not in per_table and len(per_table) >= _STABLE_FORMULAS_PER_TABLE:
        per_table.clear()
    return per_table.setdefault(formula, {})


def render(record: dict[str, Any], table: SandboxTable, query: ListQuery,
           wanted: set[str] | None = None) -> dict[str, Any]:
    """The record as the response shows it: chosen fields, keyed by name or id."""
    if wanted is None and not query.by_field_id and query.cell_format == "json" \
            and not query.comment_count:
        return record  # stored records are never changed in place, so sharing is safe
    values: dict[str, Any] = record["fields"]
    if wanted is not None:
        values = {k: v for k, v in values.items() if k in wanted}
    if query.cell_format == "string":
        kinds = {f.name: f.type for f in table.fields}
        values = {k: to_text(cell_value(kinds.get(k, ""), v)) for k, v in values.items()}
    if query.by_field_id:
        ids = {f.name: f.id for f in table.fields}
        values = {ids.get(k, k): v for k, v in values.items()}
    shown: dict[str, Any] = {"id": record["id"], "createdTime": record["createdTime"],
                             "fields": values}
    if query.comment_count:
        shown["commentCount"] = 0
    return shown


def wanted_fields(table: SandboxTable, query: ListQuery) -> set[str] | None:
    """The names of the fields asked for with ``fields[]``, or None for all of them.

    Raises:
        ApiError: 422 ``UNKNOWN_FIELD_NAME`` for a name or id the table does not have.
    """
    if query.fields is None:
        return None
    wanted = set()
    for key in query.fields:
        target = table.field(key)
        if target is None:
            raise errors.unknown_field(key)
        wanted.add(target.name)
    return wanted


def list_page(table: SandboxTable, query: ListQuery, iterators: Iterators) -> dict[str, Any]:
    """One page of ``GET /v0/{base}/{table}``: ``{"records": [...], "offset"?: "itr…/rec…"}``."""
    wanted = wanted_fields(table, query)
    if query.offset:
        key, iterator, position = iterators.resume(query.offset, table.id)
    else:
        key, iterator = iterators.start(table.id, _matching_ids(table, query))
        position = 0
    end = position + query.page_size
    page = []
    for record_id in iterator.ids[position:end]:
        record = table.get(record_id)
        if record is not None:  # deleted since the first page
            page.append(render(record, table, query, wanted))
    result: dict[str, Any] = {"records": page}
    if end < len(iterator.ids):
        result["offset"] = iterators.issue(key, iterator, end)
    return result
