"""``python -m cloud_tools logs|restart``: a module's logs, or a restart, through edgeAgent's
built-in direct methods (``GetModuleLogs``, ``RestartModule``) on the device's ``$edgeAgent``.

    logs --device D --module M [--tail N] [--level L] [--since T] [--until T] [--grep RE]
    restart --device D --module M
"""

from __future__ import annotations

import argparse
import base64
import binascii
import gzip
import json
import re
import sys
from typing import Any

from cloud_tools.errors import FAILED, CliError
from cloud_tools.hub_service import HubService, add_hub_arguments

EDGE_AGENT = "$edgeAgent"
SCHEMA_VERSION = "1.0"
# Syslog severities, as the modules write them (<3> error ... <7> debug).
SEVERITIES = {
    "emergency": 0,
    "alert": 1,
    "critical": 2,
    "error": 3,
    "warning": 4,
    "notice": 5,
    "info": 6,
    "debug": 7,
}


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    logs = commands.add_parser(
        "logs",
        help="a module's logs from a device (edgeAgent's GetModuleLogs)",
        description="Prints a module's log lines as the module wrote them, from the device's "
        "edgeAgent. One answer carries about 127 KB of compressed logs at most: narrow a "
        "long log with --tail or --since.",
    )
    _target(logs)
    logs.add_argument("--tail", type=_count, help="only the last N lines")
    logs.add_argument(
        "--level",
        type=_severity,
        help="only lines of this syslog severity (0-7 or a name: error, warning, info, "
        "debug ...); like edgeAgent, the lines of exactly that severity",
    )
    logs.add_argument(
        "--since", help="only lines since T: a duration (10m, '1 hour'), RFC 3339 or UNIX time"
    )
    logs.add_argument("--until", help="only lines until T (same forms as --since)")
    logs.add_argument("--grep", metavar="REGEX", help="only lines whose text matches REGEX")
    logs.add_argument("--json", action="store_true", help="edgeAgent's JSON records instead")
    logs.set_defaults(run=_logs)

    restart = commands.add_parser(
        "restart",
        help="restart a module on a device (edgeAgent's RestartModule)",
        description="Stops the module and starts it again; returns once it runs again.",
    )
    _target(restart)
    restart.set_defaults(run=_restart)


def _target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", required=True)
    parser.add_argument("--module", required=True)
    parser.add_argument("--timeout", type=int, default=60, help="response timeout in seconds")
    add_hub_arguments(parser)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _severity(text: str) -> int:
    if text.isdigit() and 0 <= int(text) <= 7:
        return int(text)
    if text.lower() in SEVERITIES:
        return SEVERITIES[text.lower()]
    names = ", ".join(SEVERITIES)
    raise argparse.ArgumentTypeError(f"{text!r} is not 0-7 or one of {names}")


def logs_payload(args: argparse.Namespace) -> dict[str, Any]:
    """GetModuleLogs for exactly this module (the id is a regular expression on the device)."""
    options = {
        "tail": args.tail,
        "since": args.since,
        "until": args.until,
        "loglevel": args.level,
        "regex": args.grep,
    }
    return {
        "schemaVersion": SCHEMA_VERSION,
        "items": [
            {
                "id": f"^{re.escape(args.module)}$",
                "filter": {k: v for k, v in options.items() if v is not None},
            }
        ],
        "encoding": "gzip",
        "contentType": "json" if args.json else "text",
    }


def _call(args: argparse.Namespace, method: str, payload: dict[str, Any]) -> tuple[int, Any]:
    status, response = HubService.from_args(args).invoke(
        args.device, EDGE_AGENT, method, payload, args.timeout
    )
    if status != 200:
        message = response.get("message") if isinstance(response, dict) else response
        print(f"error: {method} on {args.device} answered {status}: {message}", file=sys.stderr)
    return status, response


def _logs(args: argparse.Namespace) -> int:
    status, response = _call(args, "GetModuleLogs", logs_payload(args))
    if status != 200:
        return FAILED
    if not isinstance(response, list) or not response:
        raise CliError(f"{args.device} runs no module {args.module!r} (see fleet status)", FAILED)
    text = _payload_text(response[0])
    if args.json:
        print(json.dumps(json.loads(text or "[]"), indent=2))
    else:
        sys.stdout.write(text)
    return 0


def _payload_text(entry: Any) -> str:
    if not isinstance(entry, dict):
        raise CliError(f"edgeAgent answered an unexpected entry: {entry!r}")
    if isinstance(entry.get("payloadBytes"), str):
        try:
            return gzip.decompress(base64.b64decode(entry["payloadBytes"])).decode(
                "utf-8", errors="replace"
            )
        except (binascii.Error, OSError, EOFError) as e:
            raise CliError(f"edgeAgent's compressed logs could not be read: {e}") from e
    return str(entry.get("payload") or "")


def _restart(args: argparse.Namespace) -> int:
    status, _ = _call(args, "RestartModule", {"schemaVersion": SCHEMA_VERSION, "id": args.module})
    if status != 200:
        return FAILED
    print(f"restarted {args.module} on {args.device}")
    return 0
