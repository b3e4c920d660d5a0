"""``python -m cloud_tools deploy --device D --manifest FILE``: set a device's modules.

The manifest is a generated deployment (``{"modulesContent": ...}``), as ``az iot edge
set-modules`` takes it; the hub validates it and refuses it whole when it is invalid.
"""

from __future__ import annotations

import argparse
import json

from cloud_tools.errors import USAGE, CliError
from cloud_tools.hub_service import HubService, add_hub_arguments


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("deploy", help="apply a deployment manifest to one device")
    parser.add_argument("--device", required=True)
    parser.add_argument("--manifest", required=True, help="a generated deployment.json")
    add_hub_arguments(parser)
    parser.set_defaults(run=_deploy)


def _deploy(args: argparse.Namespace) -> int:
    try:
        with open(args.manifest, encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        raise CliError(f"cannot read {args.manifest}: {e}", USAGE) from e
    content = manifest.get("modulesContent") if isinstance(manifest, dict) else None
    if not isinstance(content, dict):
        raise CliError(f"{args.manifest} has no modulesContent object", USAGE)
    text = json.dumps(content)
    if "${" in text:
        raise CliError(
            f"{args.manifest} still holds unexpanded ${{...}} variables: generate it first", USAGE
        )
    HubService.from_args(args).deploy(args.device, content)
    modules = sorted(content.get("$edgeAgent", {}).get("properties.desired", {}).get("modules", {}))
    print(f"deployed to {args.device}: {', '.join(modules) or 'system modules only'}")
    return 0
