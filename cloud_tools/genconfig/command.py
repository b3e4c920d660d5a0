"""``python -m cloud_tools genconfig -f TEMPLATE -P PLATFORM``: iotedgedev's genconfig, checked."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from cloud_tools.genconfig.deployment import prepare, write_manifest
from cloud_tools.genconfig.environment import IOTEDGEDEV_DEFAULTS, load_environment, modules_path
from cloud_tools.genconfig.errors import GenconfigError

HELP = "expand a deployment template into config/<name>.<platform>.json, as iotedgedev does"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "genconfig",
        help=HELP,
        description=(
            f"{HELP}. Variables come from the environment and .env (DOTENV_FILE names another "
            "file); images from <folder>/module.json in modules/ beside the template, as in an "
            "iotedgedev solution folder ($MODULES_PATH or --modules names another). The result is checked (schemas, "
            "no '$' left, routes against the modules' endpoints, images against module.json) "
            "and nothing is written when a check fails. A layered template is checked on top "
            "of its base (--base, or the solution's deployment template); when the solution's "
            "deployment template is itself a layer, the layer is checked on its own."
        ),
    )
    add_template_arguments(parser)
    parser.add_argument(
        "--base",
        type=Path,
        help="for a layered template: the base deployment template it is checked on "
        "(default: the deployment template beside it)",
    )
    parser.add_argument(
        "--fail-on-validation-error",
        action="store_true",
        help="accepted for iotedgedev compatibility; validation failures always fail here",
    )
    parser.set_defaults(run=run)


def add_template_arguments(parser: argparse.ArgumentParser) -> None:
    """iotedgedev's ``-f TEMPLATE -P PLATFORM``, shared by genconfig and build."""
    parser.add_argument(
        "-f",
        "--file",
        dest="template",
        type=Path,
        default=None,
        help="deployment template (default: $DEPLOYMENT_CONFIG_TEMPLATE_FILE, "
        f"{IOTEDGEDEV_DEFAULTS['DEPLOYMENT_CONFIG_TEMPLATE_FILE']})",
    )
    parser.add_argument(
        "-P",
        "--platform",
        default=None,
        help=f"target platform (default: $DEFAULT_PLATFORM, {IOTEDGEDEV_DEFAULTS['DEFAULT_PLATFORM']})",
    )
    parser.add_argument(
        "--modules",
        type=Path,
        help="the modules folder (DIR/<name>/module.json) for ${MODULES.<name>} images "
        "(default: $MODULES_PATH, modules/ beside the template)",
    )


def solution_settings(args: argparse.Namespace) -> tuple[Path, dict[str, str], Path, str]:
    """(working directory, variables, template, platform), defaults as iotedgedev takes them."""
    cwd = Path.cwd()
    env = {**load_environment(cwd, os.environ), **modules_path(args.modules)}
    template = args.template or cwd / env["DEPLOYMENT_CONFIG_TEMPLATE_FILE"]
    platform = args.platform or env["DEFAULT_PLATFORM"]
    return cwd, env, template, platform


def run(args: argparse.Namespace) -> int:
    cwd, env, template, platform = solution_settings(args)
    try:
        generated = prepare(template, platform, env, base=args.base)
    except GenconfigError as e:
        print("genconfig: refused, nothing written:", file=sys.stderr)
        for problem in e.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    for note in generated.notes:
        print(f"genconfig: note: {note}", file=sys.stderr)
    path = write_manifest(generated, cwd)
    print(f"genconfig: {template} -> {path.relative_to(cwd) if path.is_relative_to(cwd) else path}")
    return 0
