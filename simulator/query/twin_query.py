"""Twin queries: ``SELECT ... FROM devices[.modules] [WHERE condition]``.

    twinquery  := "SELECT" ("*" | field ("," field)*) "FROM" collection ["WHERE" condition]
    field      := reference ["AS" name]
    collection := "devices" | "devices.modules"

A projection keeps only the fields named, each under its alias or the last segment of its
path (``properties.reported.model.version`` becomes ``version``), as IoT Hub names them;
a field the document lacks is left out. ``SELECT deviceId FROM devices.modules WHERE ...`` is
the form IoT Hub's deployment metrics use.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.jsondoc import JsonObject, JsonValue, is_object
from simulator.query.syntax import Expr, Parser, reference_path, tokenize

COLLECTIONS = ("devices", "devices.modules")


@dataclass(frozen=True)
class Field:
    path: tuple[str, ...]
    alias: str


@dataclass(frozen=True)
class TwinQuery:
    collection: str  # "devices" | "devices.modules"
    condition: Expr | None
    fields: tuple[Field, ...] | None = None  # None: SELECT *

    def project(self, document: JsonObject) -> JsonObject:
        if self.fields is None:
            return document
        projected: JsonObject = {}
        for field in self.fields:
            value = _lookup(document, field.path)
            if value is not _MISSING:
                projected[field.alias] = value  # type: ignore[assignment]
        return projected


_MISSING = object()


def _lookup(document: JsonValue, path: tuple[str, ...]) -> object:
    node: JsonValue = document
    for segment in path:
        if not is_object(node) or segment not in node:
            return _MISSING
        node = node[segment]
    return node


def parse_twin_query(text: str) -> TwinQuery:
    parser = Parser(tokenize(text))
    if not parser.current.is_keyword("SELECT"):
        raise parser.error("expected SELECT")
    parser.advance()
    fields = _fields(parser)
    if not parser.current.is_keyword("FROM"):
        raise parser.error("expected FROM")
    parser.advance()
    source = parser.current
    if source.kind != "name" or source.text.lower() not in COLLECTIONS:
        raise parser.error("expected devices or devices.modules")
    parser.advance()
    condition: Expr | None = None
    if parser.current.is_keyword("WHERE"):
        parser.advance()
        condition = parser.parse_condition()
    if parser.current.kind != "end":
        raise parser.error("expected WHERE or the end of the query")
    return TwinQuery(source.text.lower(), condition, fields)


def _fields(parser: Parser) -> tuple[Field, ...] | None:
    if parser.current.kind == "punct" and parser.current.text == "*":
        parser.advance()
        return None
    fields: list[Field] = []
    while True:
        token = parser.current
        if token.kind != "name" or token.is_keyword("FROM"):
            raise parser.error("expected * or a property to select")
        parser.advance()
        path = reference_path(token.text)
        alias = path[-1]
        if parser.current.is_keyword("AS"):
            parser.advance()
            if parser.current.kind != "name":
                raise parser.error("expected a name after AS")
            alias = parser.advance().text
        fields.append(Field(path, alias))
        if not (parser.current.kind == "punct" and parser.current.text == ","):
            return tuple(fields)
        parser.advance()


__all__ = ["Field", "TwinQuery", "parse_twin_query"]
