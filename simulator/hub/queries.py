"""Twin queries over the hub's documents: ``POST /devices/query``, deployment target
conditions and deployment metrics all run here, so they agree on what a device looks like.

``SELECT ... FROM devices`` runs over device twins (tags, capabilities, properties);
``FROM devices.modules`` over module twins, ``$edgeAgent``'s with its ``configurations``.
"""

from __future__ import annotations

from simulator.errors import HubError, QuerySyntaxError
from simulator.hub.documents import TwinDocuments
from simulator.jsondoc import JsonObject
from simulator.query import Expr, TwinQuery, matches, parse_condition, parse_twin_query
from simulator.query import resolve_in_document as resolver

EVERY_DEVICE = "*"


def parse_query(text: str) -> TwinQuery:
    try:
        return parse_twin_query(text)
    except QuerySyntaxError as e:
        raise HubError(400, "InvalidQuery", str(e)) from e


def run_query(query: TwinQuery, documents: TwinDocuments) -> list[JsonObject]:
    candidates = (
        documents.module_twins()
        if query.collection == "devices.modules"
        else documents.device_twins()
    )
    condition = query.condition
    selected = [d for d in candidates if condition is None or matches(condition, resolver(d))]
    return [query.project(d) for d in selected]


def count(text: str, documents: TwinDocuments) -> int:
    return len(run_query(parse_query(text), documents))


def target_condition(text: str) -> Expr | None:
    """A deployment's target condition; None for ``*`` (every device). An empty condition
    targets nothing: callers check for it."""
    stripped = text.strip()
    if stripped == EVERY_DEVICE:
        return None
    return parse_condition(stripped)


def targets(condition: Expr | None, device_twin: JsonObject) -> bool:
    return condition is None or matches(condition, resolver(device_twin))
