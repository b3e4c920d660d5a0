"""``python -m cloud_tools <command>``: the operator's command line.

Each command is a module exposing ``register(subparsers)``, which adds its parser and sets
``run`` (``args -> exit code``) as its default. The list below is the whole command set:
explicit, so a broken command module fails loudly instead of vanishing from the help.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from types import ModuleType

from cloud_tools.genconfig import command as genconfig_command

COMMANDS: tuple[ModuleType, ...] = (genconfig_command,)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cloud_tools",
        description="Operator tools for the edge image classifier: run one COMMAND (-h for its help).",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
