"""The simulator's one error tree. Foreign errors are translated at the boundary with ``from e``.

    SimulatorError
    ├── SasTokenError        a SAS token is malformed, expired or signed with another key
    ├── ParseError           text in a small language could not be parsed (carries ``position``)
    │   ├── QuerySyntaxError a WHERE condition or a ``SELECT ... FROM devices.modules`` query
    │   └── RouteSyntaxError an edgeHub route (``FROM ... WHERE ... INTO ...``)
    ├── HubError             an operation IoT Hub itself would refuse; carries the HTTP
    │                        ``status`` and IoT Hub's ``code`` (e.g. 404 ModuleNotFound)
    └── MethodError          one of edgeAgent's direct methods answers an error: ``status``
        ├── BadRequestError  400, the caller's mistake (edgeAgent's ArgumentException)
        └── RequestFailedError  500, anything else

``HubError`` is what the service API turns into IoT Hub's error body and what the edgeHub glue
turns into an MQTT twin/method status, so the stores raise it rather than HTTP types.
"""

from __future__ import annotations


class SimulatorError(Exception):
    """Base of every error the simulator raises on purpose."""


class SasTokenError(SimulatorError):
    """A token was refused; ``reason`` is safe to log and to show to the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ParseError(SimulatorError):
    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} (at position {position})")
        self.message = message
        self.position = position


class QuerySyntaxError(ParseError):
    pass


class RouteSyntaxError(ParseError):
    pass


class HubError(SimulatorError):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class MethodError(SimulatorError):
    """A method answered with an error ``status`` and ``{"message": ...}``."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequestError(MethodError):
    status = 400


class RequestFailedError(MethodError):
    status = 500
