"""A hostile sandbox base: NUL bytes, 1 MB cells, NaN, formula errors, wide and deep records.

Each table holds one kind of trouble a warehouse must survive; ``rename_and_retype`` changes a
field between two runs the way Airtable does (same id, new name and type, values converted).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any, Final

from sandbox.base import SandboxBase
from sandbox.clock import iso_from_ms, make_id
from sandbox.model import SandboxField, SandboxTable, is_empty
from sandbox.samples import ANCHOR_MS
from sandbox.values import NUMBER_TYPES, TEXT_TYPES

HOSTILE_BASE_ID: Final = "appHOSTILE0000001"
#: Text with a NUL character: PostgreSQL can store it neither in text nor in JSONB.
NUL_TEXT: Final = "a\x00b"
#: The size of the deliberately huge cells, in characters.
BIG_CELL_CHARS: Final = 1_048_576
#: How deep the nested values of the "Deep" table go.
DEPTH: Final = 50
#: How many fields the "Wide" table has (Airtable's own limit per table).
WIDE_FIELDS: Final = 500

#: Emoji (ZWJ sequences, flags, skin tones), right-to-left and bidi controls, combining marks.
UNICODE_TEXT: Final = (
    "family 👩‍👩‍👧‍👦 and 🏳️‍🌈", "flags 🇺🇦🇯🇵🇧🇷", "thumbs 👍🏽👍🏿", "astral 𝕳𝖊𝖑𝖑𝖔 𓀀",
    "مرحبا بالعالم", "שלום עולם", "mixed עברית and English ۱۲۳", "override \u202edesrever\u202c",
    "combining e\u0301\u0301 Z\u0351\u0352\u0353", "Cafe\u0301 vs Café", "zero\u200bwidth\u200c\u200d",
    "\ufeffBOM first", "line\u2028separator", "𝟘𝟙𝟚 digits", "ﷺ ligature", "日本語のテキスト",
)
#: Formula results Airtable sends instead of a number.
FORMULA_ERRORS: Final = ({"error": "#ERROR!"}, {"specialValue": "NaN"},
                         {"specialValue": "Infinity"}, {"error": "#DIV/0!"})
#: Objects shaped like kombu's JSON type markers, which its decoder turns into a datetime
#: (or refuses, dropping the whole message) instead of leaving them as data.
BROKER_LOOKALIKES: Final[tuple[dict[str, Any], ...]] = (
    {"__type__": "datetime", "__value__": "2024-01-01T00:00:00"},
    {"__type__": "no such type", "__value__": 1},
)
#: Floats JSON has no literal for (Python's json writes NaN, Infinity), a negative zero, extremes.
ODD_FLOATS: Final = (math.nan, math.inf, -math.inf, -0.0, 1e308, 5e-324, 0.1 + 0.2)

Spec = tuple[str, str]


def build_hostile_base(
    base_id: str = HOSTILE_BASE_ID, *, seed: int = 1, broker_lookalikes: bool = False
) -> SandboxBase:
    """A base whose tables each hold one kind of hostile data, the same for the same seed.

    Tables: ``Text`` (NUL bytes in text and inside selects and attachment names, emoji,
    right-to-left and combining text, field names that differ only by normalisation),
    ``Big cells`` (1 MB text cells), ``Numbers`` (NaN, ±Infinity, -0.0 and extremes as raw
    JSON numbers, formula error objects), ``Wide`` (500 fields), ``Deep`` (values nested 50
    levels, one shaped like Conveyor's own JSON markers) and ``Changes`` (plain, for
    ``rename_and_retype``).

    Args:
        base_id: The base's id.
        seed: Seed of every random choice.
        broker_lookalikes: Also put ``BROKER_LOOKALIKES`` in two ``Deep`` records.
    """
    builders: list[tuple[str, Callable[[random.Random], tuple[list[Spec], list[dict[str, Any]]]]]]
    builders = [("Text", _text), ("Big cells", _big), ("Numbers", _numbers),
                ("Wide", _wide), ("Deep", _deep), ("Changes", _changes)]
    tables = []
    for name, build in builders:
        rng = random.Random(f"{seed}:{base_id}:{name}")
        specs, values = build(rng)
        if name == "Deep" and broker_lookalikes:
            for row, lookalike in zip(values, BROKER_LOOKALIKES, strict=False):
                row["Open"] = {"label": "Open", "meta": dict(lookalike)}
        tables.append(_table(name, specs, values, rng))
    return SandboxBase(base_id, "Hostile data", tables)


def rename_and_retype(
    base: SandboxBase,
    table: str,
    field: str,
    *,
    name: str | None = None,
    type: str | None = None,
    options: dict[str, Any] | None = None,
    convert: Callable[[Any], Any] | None = None,
) -> SandboxTable:
    """Rename and/or retype one field as Airtable does: same id, values converted or cleared.

    The table is replaced in ``base`` by a new one (stored records are never changed in
    place), so a running sandbox serves the change from its next request.

    Args:
        base: The base holding the table.
        table: The table's name or id.
        field: The field's name or id.
        name: The new name (default: unchanged).
        type: The new type (default: unchanged).
        options: The new type's options (default: kept if the type is unchanged, else none).
        convert: Old value -> new value (None clears the cell); default ``convert_value``.

    Returns:
        The new table, with its records converted.

    Raises:
        KeyError: the base has no such table, or the table no such field.
    """
    old_table = base.table(table)
    if old_table is None:
        raise KeyError(f"no table {table!r} in base {base.id}")
    old = old_table.field(field)
    if old is None:
        raise KeyError(f"no field {field!r} in table {old_table.name!r}")
    new_type = type or old.type
    new = SandboxField(name or old.name, new_type, old.id,
                       options if options is not None or new_type != old.type else old.options)
    change = convert or (lambda value: convert_value(value, new_type))
    records = []
    for record in old_table.records:
        values = {k: v for k, v in record["fields"].items() if k != old.name}
        if old.name in record["fields"]:
            converted = change(record["fields"][old.name])
            if not is_empty(converted):
                values[new.name] = converted
        records.append({"id": record["id"], "createdTime": record["createdTime"], "fields": values})
    fields = [new if f.id == old.id else f for f in old_table.fields]
    replaced = SandboxTable(old_table.id, old_table.name, fields, records,
                            description=old_table.description)
    base.replace_table(old_table, replaced)
    return replaced


def convert_value(value: Any, to_type: str) -> Any:
    """A cell value converted to ``to_type`` as Airtable converts a field's type (None: cleared)."""
    if to_type in TEXT_TYPES or to_type == "singleSelect":
        if isinstance(value, bool):
            return "checked" if value else None
        if isinstance(value, list):
            return ", ".join(str(v) for v in value)
        return value if isinstance(value, str) else str(value)
    if to_type in NUMBER_TYPES:
        if isinstance(value, bool):
            return 1 if value else 0
        if isinstance(value, int | float):
            return value
        try:
            number = float(str(value).replace(",", ""))
        except ValueError:
            return None
        return int(number) if number.is_integer() else number
    if to_type == "checkbox":
        text = str(value).strip().lower()
        return bool(value) and text not in ("0", "false", "no", "")
    if to_type == "multipleSelects":
        parts = value if isinstance(value, list) else str(value).split(",")
        return [str(p).strip() for p in parts if str(p).strip()]
    return value


# -- the tables --------------------------------------------------------------------------------


def _text(rng: random.Random) -> tuple[list[Spec], list[dict[str, Any]]]:
    specs = [("Name", "singleLineText"), ("Notes", "multilineText"), ("Tags", "multipleSelects"),
             ("Files", "multipleAttachments"), ("📛 Emoji 👩‍👩‍👧", "singleLineText"),
             ("שם", "singleLineText"), ("Cafe\u0301", "singleLineText"), ("Café", "singleLineText")]
    rows = []
    for i in range(40):
        text = UNICODE_TEXT[i % len(UNICODE_TEXT)]
        row: dict[str, Any] = {
            "Name": f"{text} #{i}", "Notes": f"{text}\n{UNICODE_TEXT[(i + 3) % len(UNICODE_TEXT)]}",
            "Tags": [UNICODE_TEXT[i % 5], "plain"],
            "Files": [{"id": make_id("att", rng), "url": f"https://files.example/{i}",
                       "filename": f"{text[:12]}.pdf", "size": 10 + i, "type": "application/pdf"}],
            "📛 Emoji 👩‍👩‍👧": "👩‍👩‍👧" * (i % 4 + 1), "שם": "אבג" if i % 2 else None,
            "Cafe\u0301": "decomposed e\u0301", "Café": "precomposed é",
        }
        rows.append(row)
    # NUL bytes: in plain text, at either end, and nested inside JSON-shaped values.
    rows[3]["Name"] = NUL_TEXT
    rows[9]["Notes"] = "\x00leading and trailing\x00"
    rows[14]["Tags"] = ["fine", "x\x00y"]
    rows[21]["Files"][0]["filename"] = "re\x00port.pdf"
    rows[27]["שם"] = "\x00"
    return specs, rows


def _big(rng: random.Random) -> tuple[list[Spec], list[dict[str, Any]]]:
    specs = [("Name", "singleLineText"), ("Body", "multilineText"), ("Doc", "richText"),
             ("Files", "multipleAttachments")]
    rows: list[dict[str, Any]] = [{"Name": f"small {i}", "Body": "short"} for i in range(8)]
    rows[1]["Body"] = ("0123456789abcdef" * (BIG_CELL_CHARS // 16))  # 1 MiB of ASCII
    rows[4]["Doc"] = "**🚀 é" * (BIG_CELL_CHARS // 5)  # 1 Mi characters, ~2 MB of UTF-8
    rows[6]["Files"] = [{"id": make_id("att", rng), "url": "https://files.example/big",
                         "filename": "n" * BIG_CELL_CHARS, "size": 1}]  # 1 MiB inside JSON
    return specs, rows


def _numbers(rng: random.Random) -> tuple[list[Spec], list[dict[str, Any]]]:
    specs = [("Name", "singleLineText"), ("Amount", "number"), ("Price", "currency"),
             ("Ratio", "percent"), ("Score", "formula"), ("Looked up", "multipleLookupValues"),
             ("Seq", "autoNumber")]
    rows = []
    for i in range(30):
        odd = ODD_FLOATS[i % len(ODD_FLOATS)]
        rows.append({
            "Name": f"n{i}", "Amount": odd, "Price": round(rng.uniform(-1e6, 1e6), 2),
            "Ratio": ODD_FLOATS[(i + 2) % len(ODD_FLOATS)],
            "Score": FORMULA_ERRORS[i % len(FORMULA_ERRORS)] if i % 3 == 0 else i / 7,
            "Looked up": [1.5, odd, i], "Seq": i + 1,
        })
    rows[5]["Amount"] = 2**53 + 1  # an int a double cannot hold exactly
    rows[7]["Seq"] = math.nan  # NaN where an integer belongs
    return specs, rows


def _wide(rng: random.Random) -> tuple[list[Spec], list[dict[str, Any]]]:
    # Mostly text, as wide tables are: a record filling every field cannot fit one 8 kB
    # PostgreSQL row even after TOAST (every out-of-line value still costs an 18-byte pointer).
    types = ["singleLineText", "multilineText", "email", "url", "singleSelect",
             "multipleSelects", "phoneNumber", "richText", "singleLineText", "multilineText",
             "singleLineText", "number", "checkbox", "date"]
    specs = [("Name", "singleLineText")]
    specs += [(f"Field {i:03d} {types[i % len(types)]}", types[i % len(types)])
              for i in range(1, WIDE_FIELDS)]
    rows = []
    for r in range(25):
        share = 1.0 if r % 5 == 0 else 0.15  # some records fill all 500 fields
        row: dict[str, Any] = {"Name": f"wide {r}"}
        for i, (name, kind) in enumerate(specs[1:], 1):
            if rng.random() < share:
                row[name] = _wide_value(kind, r, i, rng)
        rows.append(row)
    return specs, rows


def _wide_value(kind: str, r: int, i: int, rng: random.Random) -> Any:
    if kind in ("number", "currency", "percent"):
        return round(rng.uniform(-1000, 1000), 3)
    if kind == "checkbox":
        return True
    if kind == "date":
        return f"2024-{1 + i % 12:02d}-{1 + r % 28:02d}"
    if kind == "multipleSelects":
        return [f"opt {i % 7}", "🚀"]
    # Values of about 20 bytes: too short for TOAST to move out of line.
    if kind == "email":
        return f"u{r:02d}.f{i:03d}@example.com"
    if kind == "url":
        return f"https://x.example/{r:02d}/{i:03d}"
    if kind == "phoneNumber":
        return f"+1 (555) {r:03d}-{i:04d}"
    return f"record {r:02d} field {i:03d} {'ü' * (i % 3)}"


def _deep(rng: random.Random) -> tuple[list[Spec], list[dict[str, Any]]]:
    specs = [("Name", "singleLineText"), ("Barcode", "barcode"), ("Open", "button"),
             ("Looked up", "multipleLookupValues")]
    rows = []
    for i in range(12):
        leaf: Any = [f"leaf {i}", i, 1.5, True, None, UNICODE_TEXT[i % len(UNICODE_TEXT)]]
        if i % 4 == 1:
            leaf.append(math.nan)
        if i % 4 == 2:  # shaped like Conveyor's own encoding of special floats
            leaf.append({"__conveyor_float__": "NaN"})
        if i % 4 == 3:
            leaf.append({"__conveyor_escaped__": ["k", {"__conveyor_float__": "-0.0"}]})
        rows.append({
            "Name": f"deep {i}",
            "Barcode": {"text": f"B{i}", "type": _nested(DEPTH, leaf, dicts_only=True)},
            "Open": {"label": "Open", "url": f"https://x.example/{i}", "extra": _nested(DEPTH, leaf)},
            "Looked up": [_nested(DEPTH, leaf, lists_only=True)],
        })
    return specs, rows


def _nested(depth: int, leaf: Any, *, dicts_only: bool = False, lists_only: bool = False) -> Any:
    """``leaf`` wrapped ``depth`` levels deep in dicts, lists, or both alternately."""
    value = leaf
    for level in range(depth):
        as_dict = dicts_only or (not lists_only and level % 2 == 0)
        value = {f"level {depth - level}": value} if as_dict else [value]
    return value


def _changes(rng: random.Random) -> tuple[list[Spec], list[dict[str, Any]]]:
    specs = [("Name", "singleLineText"), ("Amount", "number"), ("Done", "checkbox"),
             ("Label", "singleLineText"), ("Kind", "singleSelect")]
    rows = []
    for i in range(20):
        row: dict[str, Any] = {"Name": f"item {i}", "Amount": i * 1.25, "Label": "yes" if i % 3 else "",
                               "Kind": ["Todo", "Done"][i % 2]}
        if i % 2:
            row["Done"] = True
        rows.append(row)
    return specs, rows


def _table(name: str, specs: list[Spec], values: list[dict[str, Any]],
           rng: random.Random) -> SandboxTable:
    table_id = make_id("tbl", rng)
    fields = [SandboxField(field_name, kind, make_id("fld", rng), _options(kind, values, field_name))
              for field_name, kind in specs]
    records = []
    for i, row in enumerate(values):
        created = iso_from_ms(ANCHOR_MS - (len(values) - i) * 60_000)
        kept = {k: v for k, v in row.items() if not is_empty(v)}
        records.append({"id": make_id("rec", rng), "createdTime": created, "fields": kept})
    return SandboxTable(table_id, name, fields, records)


def _options(kind: str, values: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    if kind in ("singleSelect", "multipleSelects"):
        seen: dict[str, None] = {}
        for row in values:
            value = row.get(name)
            for choice in value if isinstance(value, list) else [value]:
                if isinstance(choice, str):
                    seen.setdefault(choice, None)
        return {"choices": [{"id": f"sel{i:014d}", "name": c} for i, c in enumerate(seen)]}
    if kind in ("number", "currency", "percent"):
        return {"precision": 2}
    if kind == "formula":
        return {"formula": "{Amount} / {Price}", "isValid": True, "referencedFieldIds": [],
                "result": {"type": "number", "options": {"precision": 2}}}
    if kind == "multipleLookupValues":
        return {"isValid": True, "result": {"type": "number"}}
    return None
