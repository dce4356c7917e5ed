"""Validation of written cell values, close to what Airtable accepts (and ``typecast`` converts)."""

from __future__ import annotations

import mimetypes
import posixpath
import random
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from sandbox import errors
from sandbox.clock import date_from_ms, iso_from_ms, make_id, ms_from_iso
from sandbox.fields import SandboxField

TEXT_TYPES = frozenset({"singleLineText", "multilineText", "richText", "email", "url",
                        "phoneNumber"})
NUMBER_TYPES = frozenset({"number", "currency", "percent", "duration"})


def _refuse(field: SandboxField) -> errors.ApiError:
    return errors.invalid_value(field.name, "cannot accept the provided value")


def _text(field: SandboxField, value: Any, typecast: bool) -> Any:
    if isinstance(value, str):
        return value
    if typecast and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise _refuse(field)


def _number(field: SandboxField, value: Any, typecast: bool) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if typecast and isinstance(value, str):
        try:
            number = float(value.replace(",", ""))
        except ValueError:
            return None  # typecast turns text it cannot read into an empty cell
        return int(number) if number.is_integer() else number
    raise _refuse(field)


def _rating(field: SandboxField, value: Any, typecast: bool) -> Any:
    number = _number(field, value, typecast)
    top = int((field.options or {}).get("max", 5))
    if number is not None and (number != int(number) or not 1 <= number <= top):
        raise _refuse(field)
    return None if number is None else int(number)


def _checkbox(field: SandboxField, value: Any, typecast: bool) -> Any:
    if isinstance(value, bool):
        return value
    if typecast:
        return bool(value)
    raise _refuse(field)


def _date(field: SandboxField, value: Any, typecast: bool) -> Any:
    if not isinstance(value, str):
        raise _refuse(field)
    try:
        ms = ms_from_iso(value)
    except ValueError:
        raise _refuse(field) from None
    return date_from_ms(ms) if field.type == "date" else iso_from_ms(ms)


def _choices(field: SandboxField) -> list[dict[str, Any]]:
    options = field.options if field.options is not None else {}
    field.options = options
    return options.setdefault("choices", [])  # type: ignore[no-any-return]


def _choice(field: SandboxField, name: Any, typecast: bool, rng: random.Random) -> str:
    if not isinstance(name, str):
        raise _refuse(field)
    choices = _choices(field)
    if any(c["name"] == name for c in choices):
        return name
    if not typecast:
        # The message really does double the quotes.
        raise errors.typed(422, "INVALID_MULTIPLE_CHOICE_OPTIONS",
                           f'Insufficient permissions to create new select option ""{name}""')
    choices.append({"id": make_id("sel", rng), "name": name, "color": "grayLight2"})
    return name


def _list_of(value: Any, typecast: bool) -> list[Any] | None:
    if isinstance(value, list):
        return value
    if typecast and isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return None


def _links(field: SandboxField, value: Any, typecast: bool) -> Any:
    items = _list_of(value, typecast)
    if items is None or not all(isinstance(i, str) and i.startswith("rec") for i in items):
        raise errors.typed(422, "INVALID_RECORD_ID" if items is not None else
                           "INVALID_VALUE_FOR_COLUMN", f'Field "{field.name}" cannot accept '
                           "the provided value: links must be a list of record ids")
    return items


def _attachment(field: SandboxField, item: Any, rng: random.Random) -> dict[str, Any]:
    if not isinstance(item, dict) or not isinstance(item.get("url") or item.get("id"), str):
        raise _refuse(field)
    if "id" in item and "url" not in item:
        return dict(item)
    url = item["url"]
    filename = item.get("filename") or posixpath.basename(urlsplit(url).path) or "file"
    return {
        "id": item.get("id") or make_id("att", rng),
        "url": url,
        "filename": filename,
        "size": int(item.get("size", 0)),
        "type": mimetypes.guess_type(filename)[0] or "application/octet-stream",
    }


def _collaborator(field: SandboxField, item: Any) -> dict[str, Any]:
    if not isinstance(item, dict) or not (item.get("id") or item.get("email")):
        raise _refuse(field)
    return dict(item)


def _barcode(field: SandboxField, value: Any, typecast: bool) -> Any:
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        return dict(value)
    if typecast and isinstance(value, str):
        return {"text": value}
    raise _refuse(field)


def coerce_value(field: SandboxField, value: Any, typecast: bool, rng: random.Random) -> Any:
    """Return ``value`` as the API would store it in ``field``; None means an empty cell.

    Raises:
        ApiError: 422 when the field cannot hold the value (and ``typecast`` cannot help).
    """
    if value is None:
        return None
    kind = field.type
    simple: dict[str, Callable[[SandboxField, Any, bool], Any]] = {
        "rating": _rating, "checkbox": _checkbox, "date": _date, "dateTime": _date,
        "barcode": _barcode, "multipleRecordLinks": _links,
    }
    if kind in TEXT_TYPES:
        return _text(field, value, typecast)
    if kind in NUMBER_TYPES:
        return _number(field, value, typecast)
    if kind in simple:
        return simple[kind](field, value, typecast)
    if kind == "singleSelect":
        return _choice(field, value, typecast, rng)
    if kind == "multipleSelects":
        items = _list_of(value, typecast)
        if items is None:
            raise _refuse(field)
        return [_choice(field, item, typecast, rng) for item in items]
    if kind == "multipleAttachments":
        items = _list_of(value, False)
        if items is None:
            raise _refuse(field)
        return [_attachment(field, item, rng) for item in items]
    if kind == "singleCollaborator":
        return _collaborator(field, value)
    if kind == "multipleCollaborators":
        items = _list_of(value, False)
        if items is None:
            raise _refuse(field)
        return [_collaborator(field, item) for item in items]
    return value
