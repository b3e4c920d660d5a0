"""Evaluation of the IoT Hub query subset (syntax in ``simulator.query.syntax``).

Evaluation follows IoT Hub's three-valued logic: a missing reference is *undefined*; comparing
undefined, null, or values of different types gives undefined; ``NOT undefined`` is undefined;
a condition selects a message or twin only when it evaluates to exactly ``true``. Values are
never coerced: an application property is a string, so compare it with a string or wrap it
in ``AS_NUMBER()``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeAlias

from simulator.jsondoc import JsonValue, is_object
from simulator.query.syntax import Compare, Expr, InList, Literal, Logical, Not, Reference

__all__ = [
    "FUNCTIONS",
    "UNDEFINED",
    "Resolver",
    "Value",
    "compare",
    "evaluate",
    "matches",
    "resolve_in_document",
]


class _Undefined:
    _instance: _Undefined | None = None

    def __new__(cls) -> _Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"


UNDEFINED: Final = _Undefined()
Value: TypeAlias = "JsonValue | _Undefined"
Resolver: TypeAlias = Callable[[tuple[str, ...]], Value]

# -- evaluation ------------------------------------------------------------------------------


def matches(expr: Expr, resolve: Resolver) -> bool:
    """True only when the condition evaluates to exactly ``true``."""
    return evaluate(expr, resolve) is True


def evaluate(expr: Expr, resolve: Resolver) -> Value:
    if isinstance(expr, Literal):
        return expr.value
    if isinstance(expr, Reference):
        return resolve(expr.path)
    if isinstance(expr, Compare):
        return compare(expr.op, evaluate(expr.left, resolve), evaluate(expr.right, resolve))
    if isinstance(expr, Logical):
        return _logical(expr, resolve)
    if isinstance(expr, Not):
        inner = evaluate(expr.operand, resolve)
        return (not inner) if isinstance(inner, bool) else UNDEFINED
    if isinstance(expr, InList):
        value = evaluate(expr.operand, resolve)
        if value is UNDEFINED or value is None:
            return UNDEFINED
        found = any(compare("=", value, item) is True for item in expr.items)
        return found != expr.negated
    return FUNCTIONS[expr.name].apply([evaluate(a, resolve) for a in expr.args])


def _logical(expr: Logical, resolve: Resolver) -> Value:
    left = evaluate(expr.left, resolve)
    # Short-circuit as SQL does: the right side cannot change a decided result.
    if expr.op == "AND" and left is False:
        return False
    if expr.op == "OR" and left is True:
        return True
    right = evaluate(expr.right, resolve)
    if expr.op == "AND":
        if right is False:
            return False
        return True if left is True and right is True else UNDEFINED
    if right is True:
        return True
    return False if left is False and right is False else UNDEFINED


def _kind(value: Value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if is_object(value):
        return "object"
    return "null" if value is None else "undefined"


def compare(op: str, left: Value, right: Value) -> Value:
    kind = _kind(left)
    if kind in ("undefined", "null") or kind != _kind(right):
        return UNDEFINED
    if op == "=":
        return left == right
    if op == "!=":
        return left != right
    if kind not in ("number", "string"):
        return UNDEFINED
    return _ORDERINGS[op](left, right)


_ORDERINGS: dict[str, Callable[[Value, Value], bool]] = {
    "<": lambda a, b: a < b,  # type: ignore[operator]
    ">": lambda a, b: a > b,  # type: ignore[operator]
    "<=": lambda a, b: a <= b,  # type: ignore[operator]
    ">=": lambda a, b: a >= b,  # type: ignore[operator]
}


@dataclass(frozen=True)
class _Function:
    arity: int
    apply: Callable[[list[Value]], Value]


def _string_fn(fn: Callable[[str], Value]) -> Callable[[list[Value]], Value]:
    def apply(args: list[Value]) -> Value:
        return fn(args[0]) if isinstance(args[0], str) else UNDEFINED

    return apply


def _pair_fn(fn: Callable[[str, str], bool]) -> Callable[[list[Value]], Value]:
    def apply(args: list[Value]) -> Value:
        a, b = args
        return fn(a, b) if isinstance(a, str) and isinstance(b, str) else UNDEFINED

    return apply


def _as_number(text: str) -> Value:
    try:
        number = float(text)
    except ValueError:
        return UNDEFINED
    return number if math.isfinite(number) else UNDEFINED


FUNCTIONS: dict[str, _Function] = {
    "IS_DEFINED": _Function(1, lambda a: a[0] is not UNDEFINED),
    "IS_NULL": _Function(1, lambda a: a[0] is None),
    "IS_BOOL": _Function(1, lambda a: _kind(a[0]) == "bool"),
    "IS_NUMBER": _Function(1, lambda a: _kind(a[0]) == "number"),
    "IS_STRING": _Function(1, lambda a: _kind(a[0]) == "string"),
    "IS_OBJECT": _Function(1, lambda a: _kind(a[0]) == "object"),
    "LOWER": _Function(1, _string_fn(str.lower)),
    "UPPER": _Function(1, _string_fn(str.upper)),
    "LENGTH": _Function(1, _string_fn(len)),
    "AS_NUMBER": _Function(1, _string_fn(_as_number)),
    "STARTS_WITH": _Function(2, _pair_fn(str.startswith)),
    "ENDS_WITH": _Function(2, _pair_fn(str.endswith)),
    "CONTAINS": _Function(2, _pair_fn(str.__contains__)),
}


def resolve_in_document(document: JsonValue) -> Resolver:
    """A resolver that walks dotted paths through a JSON document (twin queries)."""

    def resolve(path: tuple[str, ...]) -> Value:
        node: JsonValue = document
        for segment in path:
            if not is_object(node) or segment not in node:
                return UNDEFINED
            node = node[segment]
        return node

    return resolve
