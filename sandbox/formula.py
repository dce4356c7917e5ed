"""A recursive-descent parser for the ``filterByFormula`` subset the sandbox evaluates.

Grammar, loosest binding first::

    comparison := concat (("=" | "!=" | "<>" | "<" | "<=" | ">" | ">=") concat)*
    concat     := additive ("&" additive)*
    additive   := term (("+" | "-") term)*
    term       := unary (("*" | "/") unary)*
    unary      := "-" unary | primary
    primary    := number | 'text' | "text" | {Field name} | NAME "(" args ")" | "(" comparison ")"

Functions are those in ``formula_functions.FUNCTIONS`` (dates, logic, text); anything else is
refused with ``FormulaError``, which the server turns into Airtable's 422.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sandbox.formula_functions import (
    ERROR,
    FUNCTIONS,
    FormulaError,
    Row,
    arithmetic,
    cell_value,
    compare,
    truthy,
)

if TYPE_CHECKING:
    from sandbox.model import SandboxTable

Node = Callable[[Row], Any]

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<str>'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*")
  | (?P<field>\{(?:\\.|[^}\\])*\})
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|!=|<>|[=<>&+\-*/,()])
""", re.VERBOSE)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}
_COMPARISONS = {"=", "!=", "<>", "<", "<=", ">", ">="}


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise FormulaError(f"unexpected {text[pos]!r} at position {pos}")
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append((kind, match.group()))
        pos = match.end()
    tokens.append(("end", ""))
    return tokens


def _unquote(literal: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), literal[1:-1],
                  flags=re.DOTALL)


def _constant(value: Any) -> Node:
    return lambda row: value


class _Parser:
    def __init__(self, text: str, resolve: Callable[[str], Node]) -> None:
        self.tokens = _tokens(text)
        self.pos = 0
        self.resolve = resolve

    def parse(self) -> Node:
        node = self.comparison()
        if self.peek()[0] != "end":
            raise FormulaError(f"unexpected {self.peek()[1]!r}")
        return node

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.pos]

    def take(self) -> tuple[str, str]:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def expect(self, text: str) -> None:
        kind, value = self.take()
        if value != text or kind != "op":
            raise FormulaError(f"expected {text!r} but found {value or 'the end'!r}")

    def _binary(self, ops: set[str], operand: Callable[[], Node],
                apply: Callable[[str, Any, Any], Any]) -> Node:
        left = operand()
        while self.peek()[0] == "op" and self.peek()[1] in ops:
            op = self.take()[1]
            op = "!=" if op == "<>" else op
            right = operand()
            left = (lambda o, a, b: lambda row: apply(o, a(row), b(row)))(op, left, right)
        return left

    def comparison(self) -> Node:
        return self._binary(_COMPARISONS, self.concat, compare)

    def concat(self) -> Node:
        return self._binary({"&"}, self.additive, arithmetic)

    def additive(self) -> Node:
        return self._binary({"+", "-"}, self.term, arithmetic)

    def term(self) -> Node:
        return self._binary({"*", "/"}, self.unary, arithmetic)

    def unary(self) -> Node:
        if self.peek() == ("op", "-"):
            self.take()
            operand = self.unary()
            return lambda row: arithmetic("-", 0, operand(row))
        return self.primary()

    def primary(self) -> Node:
        kind, value = self.take()
        if kind == "num":
            number = float(value)
            return _constant(int(number) if number.is_integer() and "e" not in value.lower()
                             else number)
        if kind == "str":
            return _constant(_unquote(value))
        if kind == "field":
            return self.resolve(re.sub(r"\\\}", "}", value[1:-1]))
        if kind == "name":
            return self.call(value)
        if (kind, value) == ("op", "("):
            node = self.comparison()
            self.expect(")")
            return node
        raise FormulaError(f"unexpected {value or 'end of formula'!r}")

    def call(self, name: str) -> Node:
        upper = name.upper()
        if self.peek() != ("op", "("):
            if upper in ("TRUE", "FALSE"):
                return _constant(upper == "TRUE")
            raise FormulaError(f"unknown name {name!r}")
        self.take()
        args: list[Node] = []
        if self.peek() != ("op", ")"):
            args.append(self.comparison())
            while self.peek() == ("op", ","):
                self.take()
                args.append(self.comparison())
        self.expect(")")
        if upper not in FUNCTIONS:
            raise FormulaError(f"Unknown function names: {name}")
        fewest, most, impl = FUNCTIONS[upper]
        if len(args) < fewest or (most is not None and len(args) > most):
            raise FormulaError(f"wrong number of arguments to {upper}()")

        def evaluate(row: Row) -> Any:
            try:
                return impl(row, *(arg(row) for arg in args))
            except (FormulaError, ArithmeticError, ValueError, TypeError):
                return ERROR

        return evaluate


def parse(text: str, table: SandboxTable) -> Node:
    """Parse ``text`` against ``table``'s fields.

    Raises:
        FormulaError: for a syntax error, an unknown field or an unsupported function.
    """
    def resolve(name: str) -> Node:
        target = table.field(name)
        if target is None:
            raise FormulaError(f"Unknown field names: {name}")
        key, kind = target.name, target.type
        return lambda row: cell_value(kind, row.record["fields"].get(key))

    return _Parser(text, resolve).parse()


_ID_TERM = r"""RECORD_ID\(\)\s*=\s*(?:'(rec[A-Za-z0-9]+)'|"(rec[A-Za-z0-9]+)")"""
_ID_SET = re.compile(rf"\s*(?:OR\(\s*{_ID_TERM}(?:\s*,\s*{_ID_TERM})*\s*\)|{_ID_TERM})\s*",
                     re.IGNORECASE)


def record_id_set(text: str) -> set[str] | None:
    """The ids of a formula that only picks records by id (``OR(RECORD_ID()='rec…',…)``), or None.

    Such a formula keeps exactly those records, so the server may look them up instead of
    evaluating the formula per record (a hundred comparisons per record of a 20,000-record
    table take seconds in Python; Airtable answers it at its usual speed).
    """
    if _ID_SET.fullmatch(text) is None:
        return None
    return {a or b for a, b in re.findall(_ID_TERM, text, re.IGNORECASE)}


def compile_filter(text: str, table: SandboxTable) -> Callable[[dict[str, Any]], bool]:
    """A predicate telling which records ``filterByFormula=text`` keeps.

    Raises:
        FormulaError: as ``parse``.
    """
    node = parse(text, table)

    def keep(record: dict[str, Any]) -> bool:
        record_id = record["id"]
        row = Row(record, lambda: table.created_ms(record_id),
                  lambda: table.modified_ms(record_id))
        return truthy(node(row))

    return keep
