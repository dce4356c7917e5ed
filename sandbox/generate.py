"""Deterministic, seeded sandbox bases: every Airtable field type, realistic gaps, hostile names."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from sandbox.base import SandboxBase
from sandbox.clock import iso_from_ms, make_id
from sandbox.model import SandboxField, SandboxTable
from sandbox.samples import ANCHOR_MS, SPAN_MS, STATUS_CHOICES, TAG_CHOICES, Samples

DEFAULT_TABLES: dict[str, int] = {"Clients": 250, "Projects": 120, "Invoices": 600}

# One field of every type, in the order the metadata API lists them; the first is primary.
REGULAR_FIELDS: tuple[tuple[str, str], ...] = (
    ("Name", "singleLineText"), ("Notes", "multilineText"), ("Summary", "richText"),
    ("Email", "email"), ("Website", "url"), ("Phone", "phoneNumber"), ("Quantity", "number"),
    ("Price", "currency"), ("Discount", "percent"), ("Rating", "rating"),
    ("Time spent", "duration"), ("Row number", "autoNumber"), ("Related count", "count"),
    ("Active", "checkbox"), ("Due date", "date"), ("Starts at", "dateTime"),
    ("Created", "createdTime"), ("Last modified", "lastModifiedTime"),
    ("Created by", "createdBy"), ("Last modified by", "lastModifiedBy"), ("Status", "singleSelect"),
    ("Tags", "multipleSelects"), ("Related", "multipleRecordLinks"),
    ("Files", "multipleAttachments"),
    ("Owner", "singleCollaborator"), ("Team", "multipleCollaborators"), ("Score", "formula"),
    ("Related total", "rollup"), ("Related names", "multipleLookupValues"), ("Barcode", "barcode"),
    ("Open", "button"),
)
FIELD_TYPES: tuple[str, ...] = tuple(kind for _, kind in REGULAR_FIELDS)

# Two names longer than PostgreSQL's 63-byte identifiers that only differ after that limit.
LONG_PREFIX = "Quarterly reconciliation adjustment for the regional subsidiary "
HOSTILE_FIELDS: tuple[tuple[str, str], ...] = (
    ("status", "singleLineText"), ("Field with spaces & symbols %/#", "singleLineText"),
    ("Ünïcödé 名前", "singleLineText"), ('Say "hi"', "singleLineText"), ("it's", "number"),
    ("select", "singleLineText"), ("order", "number"), ("1st place", "checkbox"),
    ("Estimated revenue for the next fiscal quarter, including all deferred items", "currency"),
    (LONG_PREFIX + "(EUR)", "number"), (LONG_PREFIX + "(USD)", "number"),
    ("__id", "singleLineText"), ("Mixed bag", "formula"),
)
# Share of records whose cell is empty, by type; unlisted optional types use 10-30 %.
_ALWAYS_SET = frozenset({"autoNumber", "count", "createdTime", "lastModifiedTime", "createdBy",
                         "lastModifiedBy", "button", "rollup"})
_EMPTY_SHARE = {"checkbox": 0.5, "multipleRecordLinks": 0.25, "multipleAttachments": 0.3}
_DATE = {"name": "iso", "format": "YYYY-MM-DD"}
_DATETIME = {"timeZone": "utc", "dateFormat": _DATE, "timeFormat": {"name": "24hour",
                                                                   "format": "HH:mm"}}


def hostile_table_names() -> list[str]:
    """Table names that break naive SQL mapping: case twins, unicode, reserved words, quotes."""
    return ["orders", "Orders", "Ünïcödé table", "select", "1 weird 'table' \"name\"",
            "A table name that is much longer than sixty-three characters, to test truncation"]


@dataclass
class _Plan:
    """What phase one decides for a table, so that links can point into any other table."""

    name: str
    count: int
    rng: random.Random
    id: str
    field_ids: dict[str, str]
    record_ids: list[str]
    names: list[str | None] = field(default_factory=list)


def _plan(base_id: str, seed: int, name: str, count: int, specs: list[tuple[str, str]],
          samples: Samples) -> _Plan:
    rng = random.Random(f"{seed}:{base_id}:{name}")
    table_id = make_id("tbl", rng)
    field_ids = {field_name: make_id("fld", rng) for field_name, _ in specs}
    seen: set[str] = set()
    record_ids: list[str] = []
    while len(record_ids) < count:
        record_id = make_id("rec", rng)
        if record_id not in seen:
            seen.add(record_id)
            record_ids.append(record_id)
    plan = _Plan(name, count, rng, table_id, field_ids, record_ids)
    make_name, r = samples.primary_name(place=count > 300), rng.random
    for i in range(count):
        roll = r()
        if roll < 0.03:
            plan.names.append(None)  # a primary field can be empty...
        elif roll < 0.06 and i:
            plan.names.append(plan.names[-1])  # ...or repeat the one before
        else:
            plan.names.append(make_name())
    return plan


def _options(kind: str, name: str, plan: _Plan, target: _Plan, rng: random.Random) -> Any:
    ids, link = plan.field_ids, plan.field_ids["Related"]
    simple: dict[str, Any] = {
        "number": {"precision": 0}, "currency": {"precision": 2, "symbol": "$"},
        "percent": {"precision": 0}, "duration": {"durationFormat": "h:mm"},
        "rating": {"color": "yellowBright", "icon": "star", "max": 5},
        "checkbox": {"color": "greenBright", "icon": "check"}, "date": {"dateFormat": _DATE},
        "dateTime": _DATETIME,
        "createdTime": {"result": {"type": "dateTime", "options": _DATETIME}},
        "lastModifiedTime": {"isValid": True, "referencedFieldIds": [],
                             "result": {"type": "dateTime", "options": _DATETIME}},
        "multipleAttachments": {"isReversed": False},
        "multipleRecordLinks": {"linkedTableId": target.id, "isReversed": False,
                                "prefersSingleRecordLink": False},
        "count": {"isValid": True, "recordLinkFieldId": link},
        "rollup": {"fieldIdInLinkedTable": target.field_ids["Quantity"], "isValid": True,
                   "recordLinkFieldId": link, "referencedFieldIds": [target.field_ids["Quantity"]],
                   "result": {"type": "number", "options": {"precision": 0}}},
        "multipleLookupValues": {"fieldIdInLinkedTable": target.field_ids["Name"], "isValid": True,
                                 "recordLinkFieldId": link, "result": {"type": "singleLineText"}},
    }
    if kind in ("singleSelect", "multipleSelects"):
        names = STATUS_CHOICES if kind == "singleSelect" else TAG_CHOICES
        colors = ["blueLight2", "cyanLight2", "tealLight2", "greenLight2", "yellowLight2",
                  "orangeLight2", "redLight2"]
        return {"choices": [{"id": make_id("sel", rng), "name": n, "color": colors[i % 7]}
                            for i, n in enumerate(names)]}
    if kind == "formula":
        score = name == "Score"
        text = ("{Quantity} * {Price} / 100" if score
                else "IF({Quantity} > 250, {Quantity}, {Notes})")
        return {"formula": text, "isValid": True,
                "referencedFieldIds": [ids["Quantity"], ids["Price" if score else "Notes"]],
                "result": {"type": "number", "options": {"precision": 1}}}
    return simple.get(kind)


def _build_table(plan: _Plan, target: _Plan, specs: list[tuple[str, str]],
                 samples: Samples) -> SandboxTable:
    rng, r, n = plan.rng, plan.rng.random, plan.count
    fields = [SandboxField(name, kind, plan.field_ids[name],
                           _options(kind, name, plan, target, rng)) for name, kind in specs]
    makers = []
    for f in fields[1:]:
        if f.type in _ALWAYS_SET or f.type in ("multipleRecordLinks", "multipleLookupValues"):
            continue
        make = samples.mixed() if f.name == "Mixed bag" else samples.maker(f.type, f.options)
        makers.append((f.name, make, _EMPTY_SHARE.get(f.type, 0.1 + 0.2 * r())))
    people, n_people = samples.people, len(samples.people)
    target_ids, target_names, n_target = target.record_ids, target.names, target.count
    created = sorted(ANCHOR_MS - int(r() * SPAN_MS) for _ in range(n))
    records, modified = [], {}
    for i, record_id in enumerate(plan.record_ids):
        values: dict[str, Any] = {}
        if plan.names[i] is not None:
            values["Name"] = plan.names[i]
        for key, make, empty in makers:
            if r() >= empty:
                values[key] = make()
        links: list[str] = []
        if n_target and r() >= _EMPTY_SHARE["multipleRecordLinks"]:
            picked = sorted({int(r() * n_target) for _ in range(1 + int(r() * 3))})
            links = [target_ids[j] for j in picked]
            values["Related"] = links
            looked_up = [target_names[j] for j in picked if target_names[j] is not None]
            if looked_up:
                values["Related names"] = looked_up
        touched = created[i] if r() < 0.4 else created[i] + int(r() * (ANCHOR_MS - created[i]))
        modified[record_id] = touched
        values.update({
            "Row number": i + 1, "Related count": len(links),
            "Related total": sum(int(r() * 500) for _ in links),
            "Created": iso_from_ms(created[i]), "Last modified": iso_from_ms(touched),
            "Created by": people[int(r() * n_people)],
            "Last modified by": people[int(r() * n_people)],
            "Open": {"label": "Open in CRM", "url": f"https://crm.example.com/r/{record_id}"},
        })
        records.append({"id": record_id, "createdTime": values["Created"], "fields": values})
    return SandboxTable(plan.id, plan.name, fields, records, modified_ms=modified)


def build_base(
    base_id: str = "appSANDBOX0000001",
    tables: dict[str, int] | None = None,
    *,
    seed: int = 1,
    hostile: bool = True,
) -> SandboxBase:
    """Build a base of generated tables, the same for the same arguments.

    Each table has a field of every type in ``FIELD_TYPES`` (with Airtable's JSON shapes and
    10-30 % empty cells), links into the next table, and with ``hostile`` the fields in
    ``HOSTILE_FIELDS`` and awkward text values.

    Args:
        base_id: The base's id (``app…``, 17 characters like Airtable's).
        tables: Table name -> record count; defaults to ``DEFAULT_TABLES``.
        seed: Seed of every random choice.
        hostile: Add hostile field names and values.

    Returns:
        The base, ready for ``run_sandbox``.
    """
    tables = DEFAULT_TABLES if tables is None else tables
    samples = Samples(random.Random(f"{seed}:{base_id}"), hostile=hostile)
    specs = list(REGULAR_FIELDS) + (list(HOSTILE_FIELDS) if hostile else [])
    plans = [_plan(base_id, seed, name, count, specs, samples) for name, count in tables.items()]
    built = [_build_table(plan, plans[(i + 1) % len(plans)], specs, samples)
             for i, plan in enumerate(plans)]
    if built:
        built[0].description = "Generated by the Conveyor sandbox"
    base = SandboxBase(base_id, f"Sandbox {base_id}", built)
    # Lookups, rollups and counts are then what Airtable would show for the generated links.
    base.recompute_all()
    return base
