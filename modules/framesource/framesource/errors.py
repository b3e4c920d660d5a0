"""The frame source's errors, a branch of the shared library's tree.

    EdgeModuleError                  (edge_module.errors)
    ├── SettingsError                bad environment or twin settings (rejected whole)
    ├── HubError ...                 the edgeHub transport
    └── FrameSourceError
        └── SourceError              the source cannot be opened or read (sources.frames)

A ``SourceError`` never stops the module: it reconnects with backoff and reports its state.
"""

from __future__ import annotations

from edge_module.errors import EdgeModuleError


class FrameSourceError(EdgeModuleError):
    pass
