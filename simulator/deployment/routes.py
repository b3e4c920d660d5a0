"""edgeHub routes: ``FROM <source> [WHERE <condition>] INTO <sink>``.

Sources match as edgeHub's routing core matches them: the route's source loses a trailing
``*`` and ``/``, and selects every message whose own source path starts with it (ignoring
case). A module's message has the source ``/messages/modules/{m}/outputs/{o}``, or
``/messages/modules/{m}`` when sent without an output; a leaf device's has
``/messages/events``. So ``/messages/modules/m/*`` takes m's messages with or without an
output, and ``/messages/modules/m/outputs/*`` only those sent through one.

Sinks are ``$upstream`` or ``BrokeredEndpoint("/modules/{m}/inputs/{i}")``. When several
matching routes share a sink the message goes there once, under the route with the best
priority (0 is highest, as in edgeHub's schema 1.1), ties going to the first route declared.

Conditions are the IoT Hub query subset of ``simulator.query``; references resolve to
application properties by name, ``$``-prefixed system properties (``$contentType``,
``$connectionModuleId``, ...) and ``$body.a.b`` for JSON bodies.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from simulator.errors import QuerySyntaxError, RouteSyntaxError
from simulator.jsondoc import JsonValue, is_object
from simulator.messages import Message, with_source
from simulator.query import UNDEFINED, Expr, Parser, Resolver, Value, matches, references, tokenize

UPSTREAM = "$upstream"
DEFAULT_PRIORITY = 0
_FROM_RE = re.compile(r"\s*FROM\s+(\S+)", re.IGNORECASE)
_ENDPOINT_RE = re.compile(r"/modules/([^/\s]+)/inputs/([^/\s]+)")
# System properties a route may name, keyed by lower case (IoT Hub matches them that way).
_SYSTEM_PROPERTIES = {
    name.lower(): name
    for name in (
        "messageId",
        "correlationId",
        "userId",
        "contentType",
        "contentEncoding",
        "expiryTimeUtc",
        "connectionDeviceId",
        "connectionModuleId",
        "outputName",
    )
}


@dataclass(frozen=True)
class Sink:
    """``$upstream`` when ``module_id`` is None, else a module's input."""

    module_id: str | None = None
    input_name: str | None = None

    @property
    def is_upstream(self) -> bool:
        return self.module_id is None

    def __str__(self) -> str:
        if self.module_id is None:
            return UPSTREAM
        return f'BrokeredEndpoint("/modules/{self.module_id}/inputs/{self.input_name}")'


UPSTREAM_SINK = Sink()


@dataclass(frozen=True)
class Route:
    name: str
    text: str
    source: str  # normalised: no trailing '*' or '/', except the root "/"
    condition: Expr | None
    sink: Sink
    priority: int = DEFAULT_PRIORITY
    time_to_live_s: int | None = None

    def matches_source(self, source_path: str) -> bool:
        pattern = _with_slash(self.source).lower()
        return _with_slash(source_path).lower().startswith(pattern)


@dataclass(frozen=True)
class RouteMatch:
    sink: Sink
    route: Route


def message_source_path(module_id: str | None, output: str | None) -> str:
    if module_id is None:
        return "/messages/events"
    if output:
        return f"/messages/modules/{module_id}/outputs/{output}"
    return f"/messages/modules/{module_id}"


def _with_slash(path: str) -> str:
    return path.strip().rstrip("/") + "/"


def parse_route(
    text: str,
    name: str = "route",
    *,
    priority: int = DEFAULT_PRIORITY,
    time_to_live_s: int | None = None,
) -> Route:
    """Parse one route; a malformed route raises ``RouteSyntaxError`` naming it."""
    if not isinstance(text, str):
        raise RouteSyntaxError(f"route {name!r} is not a string", 0)
    match = _FROM_RE.match(text)
    if match is None:
        raise RouteSyntaxError(f"route {name!r} must start with 'FROM <source>'", 0)
    source = match.group(1)
    if not source.startswith("/"):
        raise RouteSyntaxError(f"route {name!r}: the source must start with '/'", match.start(1))
    normalised = source.rstrip("*")
    normalised = normalised.rstrip("/") if len(normalised) > 1 else normalised
    try:
        parser = Parser(tokenize(text[match.end() :], match.end()), frozenset({"INTO"}))
        condition: Expr | None = None
        if parser.current.is_keyword("WHERE"):
            parser.advance()
            condition = parser.parse_condition()
        if not parser.current.is_keyword("INTO"):
            raise parser.error("expected WHERE or INTO" if condition is None else "expected INTO")
        parser.advance()
        sink = _parse_sink(parser)
        if parser.current.kind != "end":
            raise parser.error("expected the end of the route")
        if condition is not None:
            _check_references(condition)
    except QuerySyntaxError as e:
        raise RouteSyntaxError(f"route {name!r}: {e.message}", e.position) from e
    return Route(name, text, normalised or "/", condition, sink, priority, time_to_live_s)


def _parse_sink(parser: Parser) -> Sink:
    token = parser.current
    if token.kind == "name" and token.text.lower() == UPSTREAM:
        parser.advance()
        return UPSTREAM_SINK
    if token.kind == "name" and token.text.lower() == "brokeredendpoint":
        parser.advance()
        parser.expect_punct("(")
        target = parser.current
        if target.kind != "string" or not isinstance(target.value, str):
            raise parser.error('expected "/modules/<module>/inputs/<input>"')
        endpoint = _ENDPOINT_RE.fullmatch(target.value)
        if endpoint is None:
            raise QuerySyntaxError(
                f"endpoint {target.value!r} is not /modules/<module>/inputs/<input>",
                target.position,
            )
        parser.advance()
        parser.expect_punct(")")
        return Sink(endpoint.group(1), endpoint.group(2))
    raise parser.error('expected $upstream or BrokeredEndpoint("/modules/<m>/inputs/<i>")')


def _check_references(condition: Expr) -> None:
    for ref in references(condition):
        head = ref.path[0]
        if not head.startswith("$") or head.lower() == "$body":
            continue
        if head.lower() == "$twin":
            raise QuerySyntaxError("edgeHub routes cannot query $twin", ref.position)
        if len(ref.path) > 1 or head[1:].lower() not in _SYSTEM_PROPERTIES:
            known = ", ".join("$" + n for n in _SYSTEM_PROPERTIES.values())
            raise QuerySyntaxError(
                f"unknown system property {'.'.join(ref.path)!r} (known: $body, {known})",
                ref.position,
            )


def parse_routes(routes: object) -> list[Route]:
    """The edgeHub desired ``routes`` object: name -> text, or name -> {route, priority, ttl}."""
    if not is_object(routes):
        raise RouteSyntaxError("routes must be a JSON object of name -> route", 0)
    parsed: list[Route] = []
    for name, spec in routes.items():
        if isinstance(spec, str):
            parsed.append(parse_route(spec, name))
            continue
        if not is_object(spec) or not isinstance(spec.get("route"), str):
            raise RouteSyntaxError(f"route {name!r} must be a string or have a 'route' string", 0)
        route_text = spec["route"]
        assert isinstance(route_text, str)
        priority = _int_field(spec, "priority", name, 9)
        ttl = _int_field(spec, "timeToLiveSecs", name, 2**31 - 1)
        parsed.append(
            parse_route(
                route_text,
                name,
                priority=DEFAULT_PRIORITY if priority is None else priority,
                time_to_live_s=ttl,
            )
        )
    return parsed


def _int_field(spec: Mapping[str, JsonValue], key: str, name: str, high: int) -> int | None:
    value = spec.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise RouteSyntaxError(f"route {name!r}: {key} must be an integer 0..{high}", 0)
    return value


def message_resolver(message: Message) -> Resolver:
    """Resolve route references against one message (the JSON body is parsed at most once)."""
    system = {k.lower(): v for k, v in message.system_properties().items()}
    body_cache: list[tuple[bool, JsonValue]] = []

    def resolve(path: tuple[str, ...]) -> Value:
        head = path[0]
        if head.lower() == "$body":
            if not body_cache:
                body_cache.append(message.json_body())
            ok, node = body_cache[0]
            if not ok:
                return UNDEFINED
            for segment in path[1:]:
                if not is_object(node) or segment not in node:
                    return UNDEFINED
                node = node[segment]
            return node
        if head.startswith("$"):
            return system.get(head[1:].lower(), UNDEFINED)
        return message.properties.get(".".join(path), UNDEFINED)

    return resolve


class Router:
    """Evaluates a fixed set of routes; build a new Router when the routes change."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = list(routes)

    @classmethod
    def from_edgehub_desired(cls, desired: object) -> Router:
        """From ``$edgeHub``'s desired properties (``{"routes": {...}, ...}``)."""
        if not is_object(desired):
            raise RouteSyntaxError("$edgeHub desired properties must be a JSON object", 0)
        return cls(parse_routes(desired.get("routes", {})))

    def route(
        self,
        source_device: str,
        source_module: str | None,
        output: str | None,
        message: Message,
    ) -> list[RouteMatch]:
        """Where ``message`` goes: one entry per sink, in the order routes were declared."""
        source_path = message_source_path(source_module, output)
        # Conditions on $connectionDeviceId etc. must see the connection, not sender claims.
        resolve = message_resolver(with_source(message, source_device, source_module, output))
        chosen: dict[Sink, RouteMatch] = {}
        for route in self.routes:
            if not route.matches_source(source_path):
                continue
            if route.condition is not None and not matches(route.condition, resolve):
                continue
            best = chosen.get(route.sink)
            if best is None or route.priority < best.route.priority:
                chosen[route.sink] = RouteMatch(route.sink, route)
        return list(chosen.values())
