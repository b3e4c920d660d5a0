"""``python -m cloud_tools genconfig``: deployment templates -> deployment manifests.

Byte-identical to ``iotedgedev genconfig`` 3.3.9 for what it writes (``generate``), stricter
in what it lets through (``checks``), and aware of layered deployments (``layers``).

Public surface: ``load_environment``, ``generate_deployment``, ``prepare``,
``write_manifest``, ``device_manifest``, ``compose``, ``GenconfigError``, ``Generated``.
"""

from cloud_tools.genconfig.deployment import device_manifest, prepare, write_manifest
from cloud_tools.genconfig.environment import load_environment
from cloud_tools.genconfig.errors import GenconfigError
from cloud_tools.genconfig.generate import Generated, generate_deployment
from cloud_tools.genconfig.layers import compose

__all__ = [
    "GenconfigError",
    "Generated",
    "compose",
    "device_manifest",
    "generate_deployment",
    "load_environment",
    "prepare",
    "write_manifest",
]
