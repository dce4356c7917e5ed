"""A large read-only table whose records are made when asked for: a million records served
without a million dicts held (for the memory bench).

Record *i* is template record ``i % len(templates)`` (a table ``build_base`` generated, with
every field type) under its own id, creation time, row number and links, so it is made in a
few microseconds from *i* alone and the table holds only the templates. Creation times rise
with *i*, one ``step_ms`` apart, ending now, so creation-time windows cut it as they cut a
real table. Listing, filtering, sorting and reading records by id work as on any table;
writes are refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from sandbox import errors
from sandbox.clock import iso_from_ms, now_ms
from sandbox.model import Diff, Record, SandboxTable

#: ``rec`` + this marker + the index in 13 digits: 17 characters, as Airtable's ids are.
_ID_PREFIX: Final = "recG"
_DIGITS: Final = 17 - len(_ID_PREFIX)


def generated_id(index: int) -> str:
    """The id of record ``index`` of a generated table."""
    return f"{_ID_PREFIX}{index:0{_DIGITS}d}"


def _index(record_id: str) -> int | None:
    if len(record_id) != 17 or not record_id.startswith(_ID_PREFIX):
        return None
    digits = record_id[len(_ID_PREFIX):]
    return int(digits) if digits.isdigit() else None


class GeneratedTable(SandboxTable):
    """``count`` records made on demand from ``template``'s records (see the module)."""

    def __init__(self, template: SandboxTable, count: int, *, step_ms: int = 1000) -> None:
        super().__init__(template.id, template.name, template.fields, [],
                         description=template.description)
        templates = template.records
        if not templates:
            raise ValueError("a generated table needs at least one template record")
        # A link to template record j points to record j here (the same template, same name).
        position = {record["id"]: j for j, record in enumerate(templates)}
        link_names = [f.name for f in self.fields if f.type == "multipleRecordLinks"]
        self._templates = [
            {**record["fields"], **{name: [generated_id(position.get(linked, 0))
                                           for linked in record["fields"][name]]
                                    for name in link_names if name in record["fields"]}}
            for record in templates
        ]
        self._count = count
        self._step_ms = step_ms
        self._first_ms = now_ms() - count * step_ms

    def __len__(self) -> int:
        return self._count

    @property
    def records(self) -> list[Record]:
        """Every record, made now: only filtered or sorted listings need them all."""
        return [self._make(i) for i in range(self._count)]

    def record_ids(self) -> list[str]:
        return [generated_id(i) for i in range(self._count)]

    def get(self, record_id: str) -> Record | None:
        index = _index(record_id)
        return None if index is None or index >= self._count else self._make(index)

    def created_ms(self, record_id: str) -> int:
        index = _index(record_id)
        if index is None or index >= self._count:
            raise KeyError(record_id)
        return self._first_ms + index * self._step_ms

    modified_ms = created_ms

    def _make(self, index: int) -> Record:
        created = iso_from_ms(self._first_ms + index * self._step_ms)
        fields = dict(self._templates[index % len(self._templates)])
        fields.update({"Row number": index + 1, "Created": created, "Last modified": created})
        return {"id": generated_id(index), "createdTime": created, "fields": fields}

    # -- writing: refused ----------------------------------------------------------------------

    def create_many(self, batch: Iterable[Mapping[str, Any]], *,
                    typecast: bool = False) -> list[Record]:
        raise _read_only()

    def update(self, *args: Any, **kwargs: Any) -> Any:
        raise _read_only()

    def update_many(self, *args: Any, **kwargs: Any) -> Any:
        raise _read_only()

    def delete(self, record_id: str) -> bool:
        raise _read_only()

    def delete_many(self, record_ids: Iterable[str]) -> list[str]:
        raise _read_only()

    def set_system_values(self, record_id: str, values: Mapping[str, Any]) -> Diff | None:
        raise _read_only()

    def map_records(self, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        raise _read_only()


def _read_only() -> errors.ApiError:
    return errors.typed(403, "INVALID_PERMISSIONS", "this generated table is read-only")
