"""The mixed-values base: deterministic, and every oddity of each field is in it."""

from __future__ import annotations

from sandbox import build_mixed_base
from sandbox.mixed import DATE_FIELD_ODDITIES, FORMULA_ERRORS, NUMBER_FIELD_STRINGS, TEXT_FIELD_SCALARS


def test_the_same_seed_builds_the_same_base_and_another_seed_another():
    first, again, other = build_mixed_base(), build_mixed_base(), build_mixed_base(seed=2)
    assert [t.records for t in first.tables] == [t.records for t in again.tables]
    assert [t.records for t in first.tables] != [t.records for t in other.tables]


def test_every_oddity_appears():
    mixed = build_mixed_base().table("Mixed")
    assert mixed is not None
    names = ("Label", "Amount", "Score", "Due")
    values = {name: [r["fields"].get(name) for r in mixed.records] for name in names}
    # False is absent from a text field, as Airtable leaves it out.
    for scalar in TEXT_FIELD_SCALARS:
        present = any(type(v) is type(scalar) and v == scalar for v in values["Label"])
        assert present is (scalar is not False), scalar
    assert set(NUMBER_FIELD_STRINGS) <= set(v for v in values["Amount"] if isinstance(v, str))
    assert all(error in values["Score"] for error in FORMULA_ERRORS)
    assert set(DATE_FIELD_ODDITIES) <= set(values["Due"])
