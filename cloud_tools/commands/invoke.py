"""``python -m cloud_tools invoke --device D --module M --method NAME [--payload JSON]``.

Prints the method's response payload as JSON; exits 0 for a 2xx status, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cloud_tools.errors import FAILED, USAGE, CliError
from cloud_tools.transport import add_transport_arguments, module_service


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("invoke", help="call a module's direct method")
    parser.add_argument(
        "--device", required=True, help="with --mqtt: the replica's client id, or any"
    )
    parser.add_argument("--module", required=True)
    parser.add_argument("--method", required=True)
    parser.add_argument("--payload", default="{}", help="JSON; @FILE reads it from a file")
    parser.add_argument("--timeout", type=int, default=30, help="response timeout in seconds")
    add_transport_arguments(parser)
    parser.set_defaults(run=_invoke)


def _payload(text: str) -> Any:
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as e:
            raise CliError(f"cannot read the payload file: {e}", USAGE) from e
    try:
        return json.loads(text)
    except ValueError as e:
        raise CliError(f"--payload is not JSON: {e}", USAGE) from e


def _invoke(args: argparse.Namespace) -> int:
    payload = _payload(args.payload)
    status, response = module_service(args).invoke(
        args.device, args.module, args.method, payload, args.timeout
    )
    print(json.dumps({"status": status, "payload": response}, indent=2))
    if not 200 <= status < 300:
        print(f"{args.method} answered {status}", file=sys.stderr)
        return FAILED
    return 0
