"""The library's error tree; each module's own tree (``ClassifierError``, ...) extends the root.

    EdgeModuleError
    ├── SettingsError            bad environment or twin settings (rejected whole)
    └── HubError                 the IoT Hub / edgeHub transport failed
        ├── OutboundRejectedError    edgeHub or the SDK refuses this message: retrying cannot help
        └── HubWedgedError           connected by the SDK's account, but calls stopped completing

Foreign errors (the SDK's, the operating system's) are translated where they enter, with
``raise ... from e``.
"""

from __future__ import annotations


class EdgeModuleError(Exception):
    """Base of every error an edge module raises on purpose."""


class SettingsError(EdgeModuleError):
    pass


class HubError(EdgeModuleError):
    pass


class OutboundRejectedError(HubError):
    """The message itself is refused (too large, not encodable): sending it again cannot help."""


class HubWedgedError(HubError):
    """The SDK reports a connection, but sends or twin calls have not completed for too long."""
