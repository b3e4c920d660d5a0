"""The IoT Hub query language subset: edgeHub route conditions, twin queries and deployment
target conditions all use it. ``syntax`` parses (tokens, a typed tree); ``evaluate`` runs a
condition over a resolver with IoT Hub's three-valued logic.

Public surface: ``parse_condition``, ``parse_twin_query``, ``matches``, ``evaluate``,
``resolve_in_document``, ``references``, ``UNDEFINED`` and the tree types.
"""

from simulator.query.evaluate import (
    FUNCTIONS,
    UNDEFINED,
    Resolver,
    Value,
    compare,
    evaluate,
    matches,
    resolve_in_document,
)
from simulator.query.syntax import Expr, Parser, parse_condition, references, tokenize
from simulator.query.twin_query import TwinQuery, parse_twin_query

__all__ = [
    "FUNCTIONS",
    "UNDEFINED",
    "Expr",
    "Parser",
    "Resolver",
    "TwinQuery",
    "Value",
    "compare",
    "evaluate",
    "matches",
    "parse_condition",
    "parse_twin_query",
    "references",
    "resolve_in_document",
    "tokenize",
]
