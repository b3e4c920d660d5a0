"""``python -m cloud_tools build [--push] -f TEMPLATE -P PLATFORM``: iotedgedev's solution build."""

from __future__ import annotations

import argparse
import os
import sys

from cloud_tools.errors import USAGE, CliError
from cloud_tools.genconfig.build_plan import images_to_build, registry_credentials
from cloud_tools.genconfig.command import add_template_arguments, solution_settings
from cloud_tools.genconfig.deployment import prepare, write_manifest
from cloud_tools.genconfig.errors import GenconfigError
from cloud_tools.image_builder import ImageBuilder

HELP = "build (and push) the module images a deployment template uses, as iotedgedev does"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "build",
        help=HELP,
        description=(
            f"{HELP}: each image the template's modules use that a modules/<folder>/module.json "
            "builds, from its Dockerfile for the platform in its contextPath, tagged "
            "repository:version-platform; with --push, pushed to its registry with the "
            "CONTAINER_REGISTRY_* credentials of .env. Then the deployment manifest is "
            "written, as genconfig writes it. The engine is the one DOCKER_HOST names "
            "(scripts/containers.sh up starts one)."
        ),
    )
    add_template_arguments(parser)
    parser.add_argument("--push", action="store_true", help="push each image after building it")
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print one line per image, not the build's output",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    cwd, env, template, platform = solution_settings(args)
    try:
        generated = prepare(template, platform, env)
        builds = images_to_build(generated)
    except GenconfigError as e:
        raise CliError("\n  ".join(["build: refused, nothing built:", *e.problems]), USAGE) from e
    if not builds:
        print(f"build: {template} uses no image that a module.json builds")
    builder = ImageBuilder.from_env(env)
    credentials = registry_credentials(env)

    def log(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr)

    for image in builds:
        print(
            f"build: {image.tag} from {os.path.relpath(image.dockerfile, image.context)}",
            flush=True,
        )
        seconds = builder.build(image, log)
        print(f"build: {image.tag} built in {seconds:.0f} s", flush=True)
        if args.push:
            server = image.tag.split("/", 1)[0].lower()
            seconds = builder.push(image.tag, credentials.get(server), log)
            print(f"build: {image.tag} pushed in {seconds:.0f} s", flush=True)
    path = write_manifest(generated, cwd)
    print(f"build: {template} -> {path.relative_to(cwd) if path.is_relative_to(cwd) else path}")
    return 0
