"""The sandbox's filterByFormula parser and evaluator, without a server."""

from __future__ import annotations

import datetime
import re
from typing import Any

import pytest
from pyairtable import formulas as F

from sandbox import SandboxField, SandboxTable
from sandbox.formula import compile_filter
from sandbox.formula_functions import FormulaError

FIELDS = [
    SandboxField("Name", "singleLineText", "fldName0000000001"),
    SandboxField("Amount", "number", "fldAmount00000001"),
    SandboxField("Done", "checkbox", "fldDone0000000001"),
    SandboxField("Due", "date", "fldDue00000000001"),
    SandboxField("Tags", "multipleSelects", "fldTags0000000001"),
    SandboxField("it's {odd}", "singleLineText", "fldOdd00000000001"),
    SandboxField("Score", "formula", "fldScore000000001", {"result": {"type": "number"}}),
]
RECORDS: list[dict[str, Any]] = [
    {"id": "recAAAAAAAAAAAAA1", "createdTime": "2024-01-01T00:00:00.000Z",
     "fields": {"Name": "Alpha", "Amount": 10, "Done": True, "Due": "2024-03-01",
                "Tags": ["a", "b"], "it's {odd}": "x", "Score": 1.5}},
    {"id": "recAAAAAAAAAAAAA2", "createdTime": "2024-02-01T00:00:00.000Z",
     "fields": {"Name": "Beta", "Amount": 250, "Tags": ["b"], "Score": {"error": "#ERROR!"}}},
    {"id": "recAAAAAAAAAAAAA3", "createdTime": "2024-03-01T12:30:00.500Z",
     "fields": {"Name": "O'Brien \"Gamma\"", "Score": {"specialValue": "NaN"}}},
]
MODIFIED = {"recAAAAAAAAAAAAA1": 1_706_745_600_000,  # 2024-02-01T00:00:00.000Z
            "recAAAAAAAAAAAAA2": 1_709_294_400_123,  # 2024-03-01T12:00:00.123Z
            "recAAAAAAAAAAAAA3": 1_709_296_200_500}  # 2024-03-01T12:30:00.500Z


@pytest.fixture(scope="module")
def table() -> SandboxTable:
    return SandboxTable("tblFormulaTest001", "T", FIELDS, RECORDS, modified_ms=MODIFIED)


def matching(table: SandboxTable, formula: Any) -> list[int]:
    keep = compile_filter(str(formula), table)
    return [i + 1 for i, record in enumerate(table.records) if keep(record)]


@pytest.mark.parametrize(("formula", "expected"), [
    (F.GT(F.LAST_MODIFIED_TIME(), F.DATETIME_PARSE("2024-03-01T12:00:00.123Z")), [3]),
    (F.GTE(F.LAST_MODIFIED_TIME(), F.DATETIME_PARSE("2024-03-01T12:00:00.123Z")), [2, 3]),
    (F.LT(F.LAST_MODIFIED_TIME(), datetime.datetime(2024, 3, 1)), [1]),
    (F.IS_AFTER(F.LAST_MODIFIED_TIME(), datetime.date(2024, 2, 1)), [2, 3]),
    (F.IS_BEFORE(F.CREATED_TIME(), "2024-02-01T00:00:00.000Z"), [1]),
    (F.EQ(F.CREATED_TIME(), F.DATETIME_PARSE("2024-02-01")), [2]),
    ("LAST_MODIFIED_TIME() <= '2024-02-01T00:00:00.000Z'", [1]),
    (F.AND(F.GT(F.CREATED_TIME(), "2024-01-15"), F.match({"Amount": 250})), [2]),
    (F.OR(F.match({"Name": "Alpha"}), F.EQ(F.RECORD_ID(), "recAAAAAAAAAAAAA3")), [1, 3]),
    (F.match({"Name": "O'Brien \"Gamma\""}), [3]),
    (F.match({"Amount": (">", 20)}), [2]),
    (F.match({"Amount": ("<", 20)}), [1, 3]),  # a blank number compares as 0
    (F.match({"Done": True}), [1]),
    (F.NOT(F.match({"Done": True})), [2, 3]),
    (F.match({"it's {odd}": "x"}), [1]),
    ("{Name} = ''", []),
    ("{Amount} = BLANK()", [3]),
    ("{Tags} = 'b'", [2]),
    ("FIND('b', ARRAYJOIN({Tags}))", [1, 2]),
    ("ISERROR({Score})", [2]),
    ("{Score} > 1", [1]),
    ("IS_SAME({Due}, '2024-03-15', 'month')", [1]),
    ("IS_AFTER(LAST_MODIFIED_TIME(), DATEADD('2024-03-01T12:30:00.000Z', -1, 'hours'))", [2, 3]),
    ("AND({Amount} * 2 >= 20, LOWER({Name}) = 'alpha')", [1]),
    ("SEARCH('BRIEN', {Name})", [3]),
    ("OR(TRUE(), FALSE)", [1, 2, 3]),
])
def test_formulas(table: SandboxTable, formula: Any, expected: list[int]) -> None:
    assert matching(table, formula) == expected


@pytest.mark.parametrize(("formula", "message"), [
    ("FOO(1)", "Unknown function names: FOO"),
    ("{Nope} = 1", "Unknown field names: Nope"),
    ("{Name} =", "unexpected"),
    ("AND(1, 2", "expected ')'"),
    ("NOT()", "wrong number of arguments"),
    ("{Name} = 'x' 'y'", "unexpected"),
    ("{Name} # 1", "unexpected '#'"),
])
def test_unsupported_formulas_raise(table: SandboxTable, formula: str, message: str) -> None:
    with pytest.raises(FormulaError, match=re.escape(message)):
        compile_filter(formula, table)
