"""A sandbox base whose fields hold values of other types, as imported data and API writers leave.

Table ``Mixed``: a text field holding strings, integers, floats and booleans; a number field
holding some numeric (and a few non-numeric) strings; a formula returning error objects;
a date field with a midnight timestamp and a non-date. Table ``Retype``: plain number and
numeric-text fields, for retyping between runs with ``rename_and_retype``.
"""

from __future__ import annotations

import random
from typing import Any, Final

from sandbox.base import SandboxBase
from sandbox.clock import iso_from_ms, make_id
from sandbox.model import SandboxField, SandboxTable, is_empty
from sandbox.samples import ANCHOR_MS

MIXED_BASE_ID: Final = "appMIXEDVALUES001"
#: What a text field receives besides strings: integers, floats (whole ones too) and booleans.
TEXT_FIELD_SCALARS: Final[tuple[Any, ...]] = (
    7, 0, -12, 2**60, 4.0, 2.5, 0.1 + 0.2, -1e-7, 1e16, 123456789.125, True, False,
)
#: Strings a number field receives: numeric ones (a double holds them exactly or not), and not.
NUMBER_FIELD_STRINGS: Final[tuple[str, ...]] = (
    "42", "3.50", "-0.25", "1e3", "007", "9007199254740993", "n/a", "12 kg",
)
FORMULA_ERRORS: Final[tuple[dict[str, str], ...]] = (
    {"error": "#ERROR!"}, {"specialValue": "NaN"}, {"error": "#DIV/0!"}, {"specialValue": "Infinity"},
)
#: Date field values besides plain ISO dates: a timestamp at midnight UTC, one later that
#: day, and no date at all.
DATE_FIELD_ODDITIES: Final[tuple[str, ...]] = (
    "2024-05-02T00:00:00.000Z", "2024-05-03T10:30:00.000Z", "soon",
)
_WORDS: Final = ("alpha", "beta", "gamma", "delta", "007 agent", "3.0", "true", "")


def build_mixed_base(base_id: str = MIXED_BASE_ID, *, seed: int = 1, records: int = 60) -> SandboxBase:
    """The base with tables ``Mixed`` and ``Retype``, the same for the same arguments.

    Every oddity of each field appears at least once when ``records`` is at least 24.
    """
    rng = random.Random(f"{seed}:{base_id}")
    mixed_specs = [("Name", "singleLineText"), ("Label", "singleLineText"), ("Amount", "number"),
                   ("Score", "formula"), ("Due", "date"), ("Done", "checkbox")]
    mixed_rows = [_mixed_row(i, rng) for i in range(records)]
    retype_specs = [("Name", "singleLineText"), ("Amount", "number"), ("Code", "singleLineText")]
    retype_rows = [_retype_row(i, rng) for i in range(records)]
    return SandboxBase(base_id, "Mixed values", [
        _table("Mixed", mixed_specs, mixed_rows, rng),
        _table("Retype", retype_specs, retype_rows, rng),
    ])


def _mixed_row(i: int, rng: random.Random) -> dict[str, Any]:
    label: Any = f"label {i}"
    if i % 2:
        label = TEXT_FIELD_SCALARS[(i // 2) % len(TEXT_FIELD_SCALARS)]
    amount: Any = round(rng.uniform(-500, 500), 2) if i % 3 else i
    if i % 4 == 1:
        amount = NUMBER_FIELD_STRINGS[(i // 4) % len(NUMBER_FIELD_STRINGS)]
    score: Any = round(rng.uniform(0, 100), 3)
    if i % 5 == 2:
        score = FORMULA_ERRORS[(i // 5) % len(FORMULA_ERRORS)]
    due = f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}"
    if i % 7 == 3:
        due = DATE_FIELD_ODDITIES[(i // 7) % len(DATE_FIELD_ODDITIES)]
    return {"Name": f"item {i}", "Label": label, "Amount": amount, "Score": score, "Due": due,
            "Done": i % 3 == 0}


def _retype_row(i: int, rng: random.Random) -> dict[str, Any]:
    amount: Any = [i, i * 1.25, round(rng.uniform(-1000, 1000), 3), float(i)][i % 4]
    code = f"{i:03d}" if i % 3 else [str(i * 10), f"{i}.5", _WORDS[i % len(_WORDS)]][i % 9 // 3]
    return {"Name": f"row {i}", "Amount": amount if i % 10 != 9 else None, "Code": code}


def _table(name: str, specs: list[tuple[str, str]], rows: list[dict[str, Any]],
           rng: random.Random) -> SandboxTable:
    fields = [SandboxField(field, kind, make_id("fld", rng), _options(kind)) for field, kind in specs]
    records = []
    for i, row in enumerate(rows):
        created = iso_from_ms(ANCHOR_MS - (len(rows) - i) * 60_000)
        kept = {k: v for k, v in row.items() if not is_empty(v)}
        records.append({"id": make_id("rec", rng), "createdTime": created, "fields": kept})
    return SandboxTable(make_id("tbl", rng), name, fields, records)


def _options(kind: str) -> dict[str, Any] | None:
    if kind == "number":
        return {"precision": 2}
    if kind == "formula":
        # Stored values are served as they are; the formula only describes the field.
        return {"formula": "{Amount} / 7", "isValid": True, "referencedFieldIds": [],
                "result": {"type": "number", "options": {"precision": 3}}}
    if kind == "checkbox":
        return {"icon": "check", "color": "greenBright"}
    if kind == "date":
        return {"dateFormat": {"name": "iso", "format": "YYYY-MM-DD"}}
    return None
