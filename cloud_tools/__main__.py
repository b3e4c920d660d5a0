"""``python -m cloud_tools``: the operator's command line (hub, storage, models, keys, manifests).

    model upload|push|status|stamp    models in Blob Storage and on devices (docs/module-twin.md)
    model rollout                     a model to a fleet through a layered deployment, canary first
                                      (--gate: judged on the canaries' signals)
    dataset pull|stats                frames the devices captured for labelling
    label                             a local web page to label them
    train                             fine-tune a model on labelled captures
    evaluate                          models' accuracy side by side
    fleet status|deployments          what each device runs; the deployments and their metrics
    invoke                            a module's direct method
    logs                              a module's log lines from a device (tail, level, since)
    restart                           a module on a device, stopped and started again
    deploy                            a deployment manifest to one device
    monitor                           device-to-cloud messages
    keys new|sign                     the model-signing key pair
    quantize                          a static INT8 copy of a model, checked on held-out data
    score-video                       every frame of whole videos scored, locally or on Ray
    genconfig                         deployment manifests from templates, as iotedgedev does
    build                             the module images a template uses (and push), as iotedgedev does

Connection strings come from the environment (``IOTHUB_CONNECTION_STRING``,
``AZURE_STORAGE_CONNECTION_STRING``) or flags, and never appear in output. Against the
simulator: ``eval "$(python -m simulator env)"`` sets them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from types import ModuleType

from cloud_tools.commands import (
    build,
    dataset,
    deploy,
    edge_agent,
    fleet,
    invoke,
    keys,
    model,
    monitor,
    quantize,
    score_video,
    training,
)
from cloud_tools.errors import CliError
from cloud_tools.genconfig import command as genconfig_command

# This docstring is the operator's --help; notes for maintainers live here instead. Each
# command is a module exposing ``register(subparsers)``, which adds its parser and sets ``run``
# (``args -> exit code``) as its default. This tuple is the whole command set: explicit, so a
# broken command module fails loudly instead of vanishing from the help.
COMMANDS: tuple[ModuleType, ...] = (
    model,
    fleet,
    dataset,
    invoke,
    edge_agent,
    deploy,
    monitor,
    keys,
    quantize,
    score_video,
    training,
    genconfig_command,
    build,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cloud_tools",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--log-level", default="warning")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except CliError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. piped into head: not an error of the command
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
