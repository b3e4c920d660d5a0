"""Syntax of the IoT Hub query subset: conditions (route WHERE clauses, twin queries, targets).

Grammar (keywords and function names are case-insensitive)::

    condition := or
    or        := and ("OR" and)*
    and       := not ("AND" not)*
    not       := "NOT" not | compare
    compare   := operand [(= | != | <> | < | > | <= | >=) operand | ["NOT"] "IN" list]
    operand   := literal | reference | function "(" [condition ("," condition)*] ")"
               | "(" condition ")"
    list      := "[" [literal ("," literal)*] "]"
    reference := name ("." name)*          e.g. level, $contentType, $body.a.b, tags.site
    name      := [A-Za-z_$][A-Za-z0-9_$-]* | "[[" any but brackets "]]"   e.g. [[my.deploy]]

Names may contain ``-`` (there is no arithmetic to confuse it with). The parser is a plain
recursive descent over a token list, with bounded nesting; every malformed input becomes a
``QuerySyntaxError`` with a position, never another exception.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

from simulator.errors import QuerySyntaxError
from simulator.jsondoc import JsonValue

# -- tokens ----------------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>(?:[A-Za-z_$][A-Za-z0-9_$\-]*|\[\[[^\[\]]+\]\])
              (?:\.(?:[A-Za-z0-9_$\-]+|\[\[[^\[\]]+\]\]))*)
  | (?P<op><=|>=|<>|!=|=|<|>)
  | (?P<punct>[()\[\],*])
  | (?P<quote>['"])
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}
MAX_NESTING = 50
_MAX_NUMBER_CHARS = 64


@dataclass(frozen=True)
class Token:
    kind: str  # "number" | "name" | "string" | "op" | "punct" | "end"
    text: str
    position: int
    value: JsonValue = None

    def is_keyword(self, word: str) -> bool:
        return self.kind == "name" and self.text.upper() == word


def tokenize(text: str, offset: int = 0) -> list[Token]:
    """Split ``text`` into tokens; positions are reported relative to ``offset``."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            raise QuerySyntaxError(f"unexpected character {text[pos]!r}", offset + pos)
        kind = match.lastgroup or ""
        if kind == "quote":
            string, pos = _read_string(text, pos, offset)
            tokens.append(
                Token("string", text[match.start() : pos], offset + match.start(), string)
            )
            continue
        if kind == "number":
            tokens.append(
                Token("number", match.group(), offset + pos, _number(match.group(), offset + pos))
            )
        elif kind != "ws":
            tokens.append(Token(kind, match.group(), offset + pos))
        pos = match.end()
    tokens.append(Token("end", "", offset + len(text)))
    return tokens


def _number(text: str, position: int) -> JsonValue:
    # Bounded first: int() refuses very long digit strings and float() overflows to inf.
    if len(text) > _MAX_NUMBER_CHARS:
        raise QuerySyntaxError("number too long", position)
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    number = float(text)
    if not math.isfinite(number):
        raise QuerySyntaxError("number out of range", position)
    return number


def _read_string(text: str, start: int, offset: int) -> tuple[str, int]:
    quote = text[start]
    chars: list[str] = []
    pos = start + 1
    while pos < len(text):
        ch = text[pos]
        if ch == "\\" and pos + 1 < len(text):
            chars.append(_ESCAPES.get(text[pos + 1], text[pos + 1]))
            pos += 2
        elif ch == quote:
            return "".join(chars), pos + 1
        else:
            chars.append(ch)
            pos += 1
    raise QuerySyntaxError("unterminated string", offset + start)


# -- syntax tree -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    value: JsonValue


@dataclass(frozen=True)
class Reference:
    path: tuple[str, ...]
    position: int


@dataclass(frozen=True)
class Compare:
    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Logical:
    op: str  # "AND" | "OR"
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Not:
    operand: Expr


@dataclass(frozen=True)
class InList:
    operand: Expr
    items: tuple[JsonValue, ...]
    negated: bool


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Expr, ...]


Expr = Literal | Reference | Compare | Logical | Not | InList | Call


def references(expr: Expr) -> Iterator[Reference]:
    """Every reference in ``expr`` (so callers can check names before evaluating)."""
    if isinstance(expr, Reference):
        yield expr
    elif isinstance(expr, Compare | Logical):
        yield from references(expr.left)
        yield from references(expr.right)
    elif isinstance(expr, Not | InList):
        yield from references(expr.operand)
    elif isinstance(expr, Call):
        for arg in expr.args:
            yield from references(arg)


# -- parser ----------------------------------------------------------------------------------


class Parser:
    """Recursive descent over tokens; ``stop_words`` end a condition (e.g. ``INTO``)."""

    def __init__(self, tokens: list[Token], stop_words: frozenset[str] = frozenset()) -> None:
        self._tokens = tokens
        self._index = 0
        self._depth = 0
        self._stop_words = stop_words

    @property
    def current(self) -> Token:
        return self._tokens[self._index]

    def advance(self) -> Token:
        token = self._tokens[self._index]
        if token.kind != "end":
            self._index += 1
        return token

    def expect_punct(self, text: str) -> Token:
        token = self.current
        if token.kind != "punct" or token.text != text:
            raise self.error(f"expected {text!r}")
        return self.advance()

    def error(self, message: str) -> QuerySyntaxError:
        token = self.current
        found = "end of text" if token.kind == "end" else repr(token.text)
        return QuerySyntaxError(f"{message}, found {found}", token.position)

    def parse_condition(self) -> Expr:
        self._depth += 1
        if self._depth > MAX_NESTING:
            raise self.error(f"condition nested more than {MAX_NESTING} levels deep")
        try:
            return self._or()
        finally:
            self._depth -= 1

    def _or(self) -> Expr:
        left = self._and()
        while self.current.is_keyword("OR"):
            self.advance()
            left = Logical("OR", left, self._and())
        return left

    def _and(self) -> Expr:
        left = self._not()
        while self.current.is_keyword("AND"):
            self.advance()
            left = Logical("AND", left, self._not())
        return left

    def _not(self) -> Expr:
        if self.current.is_keyword("NOT"):
            self.advance()
            self._depth += 1
            if self._depth > MAX_NESTING:
                raise self.error(f"NOT nested more than {MAX_NESTING} levels deep")
            try:
                return Not(self._not())
            finally:
                self._depth -= 1
        return self._compare()

    def _compare(self) -> Expr:
        left = self._operand()
        token = self.current
        if token.kind == "op":
            self.advance()
            op = "!=" if token.text == "<>" else token.text
            return Compare(op, left, self._operand())
        negated = False
        if token.is_keyword("NOT") or token.is_keyword("NIN"):
            negated = True
            self.advance()
            if token.is_keyword("NIN"):
                return InList(left, self._list(), negated)
        if self.current.is_keyword("IN"):
            self.advance()
            return InList(left, self._list(), negated)
        if negated:
            raise self.error("expected IN after NOT")
        return left

    def _list(self) -> tuple[JsonValue, ...]:
        self.expect_punct("[")
        items: list[JsonValue] = []
        while not (self.current.kind == "punct" and self.current.text == "]"):
            start = self.current
            operand = self._operand()
            if not isinstance(operand, Literal):
                raise QuerySyntaxError("IN lists hold literals only", start.position)
            items.append(operand.value)
            if self.current.kind == "punct" and self.current.text == ",":
                self.advance()
            elif not (self.current.kind == "punct" and self.current.text == "]"):
                raise self.error("expected ',' or ']'")
        self.advance()
        return tuple(items)

    def _operand(self) -> Expr:
        token = self.current
        if token.kind in ("number", "string"):
            self.advance()
            return Literal(token.value)
        if token.kind == "punct" and token.text == "(":
            self.advance()
            inner = self.parse_condition()
            self.expect_punct(")")
            return inner
        if token.kind != "name":
            raise self.error("expected a value, a property or '('")
        word = token.text.upper()
        if word in ("TRUE", "FALSE"):
            self.advance()
            return Literal(word == "TRUE")
        if word == "NULL":
            self.advance()
            return Literal(None)
        if word in _RESERVED or word in self._stop_words:
            raise self.error("expected a value, a property or '('")
        self.advance()
        if self.current.kind == "punct" and self.current.text == "(":
            return self._call(token)
        return _reference(token)

    def _call(self, name: Token) -> Expr:
        arity = FUNCTION_ARITIES.get(name.text.upper())
        if arity is None:
            raise QuerySyntaxError(f"unknown function {name.text!r}", name.position)
        self.advance()
        args: list[Expr] = []
        if not (self.current.kind == "punct" and self.current.text == ")"):
            args.append(self.parse_condition())
            while self.current.kind == "punct" and self.current.text == ",":
                self.advance()
                args.append(self.parse_condition())
        self.expect_punct(")")
        if len(args) != arity:
            raise QuerySyntaxError(
                f"{name.text.upper()} takes {arity} argument(s), got {len(args)}",
                name.position,
            )
        return Call(name.text.upper(), tuple(args))


# Names and argument counts of the built-in functions (evaluated in simulator.query).
FUNCTION_ARITIES = {
    "IS_DEFINED": 1,
    "IS_NULL": 1,
    "IS_BOOL": 1,
    "IS_NUMBER": 1,
    "IS_STRING": 1,
    "IS_OBJECT": 1,
    "LOWER": 1,
    "UPPER": 1,
    "LENGTH": 1,
    "AS_NUMBER": 1,
    "STARTS_WITH": 2,
    "ENDS_WITH": 2,
    "CONTAINS": 2,
}
_RESERVED = frozenset({"AND", "OR", "NOT", "IN", "NIN", "SELECT", "FROM", "WHERE"})


_SEGMENT_RE = re.compile(r"\[\[([^\[\]]+)\]\]|([^.\[\]]+)")


def reference_path(text: str) -> tuple[str, ...]:
    """``configurations.[[my.deploy]].status`` -> ("configurations", "my.deploy", "status")."""
    return tuple(m.group(1) or m.group(2) for m in _SEGMENT_RE.finditer(text))


def _reference(token: Token) -> Reference:
    return Reference(reference_path(token.text), token.position)


def parse_condition(text: str) -> Expr:
    """Parse a whole condition (a route's WHERE clause or a query's WHERE clause)."""
    parser = Parser(tokenize(text))
    expr = parser.parse_condition()
    if parser.current.kind != "end":
        raise parser.error("expected AND, OR or the end of the condition")
    return expr
