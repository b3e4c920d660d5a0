"""Whether a whole deployment can run: what IoT Hub refuses up front for ``set-modules`` and
for a base deployment, so a bad manifest never reaches a device's twins."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simulator.deployment.manifest import DeploymentManifest, parse_manifest
from simulator.deployment.routes import parse_routes


def check_modules_content(content: Mapping[str, Any]) -> DeploymentManifest:
    """The typed manifest; ``ManifestError`` or ``RouteSyntaxError`` naming every problem."""
    manifest = parse_manifest({"modulesContent": content})
    parse_routes(manifest.routes)
    return manifest
