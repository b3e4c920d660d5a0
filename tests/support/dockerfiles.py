"""Reading the module Dockerfiles without a Docker engine: instructions, COPY sources, the
build context and what ``.dockerignore`` keeps out of it."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO

MODULE_DIRS = (REPO / "modules" / "classifier", REPO / "modules" / "framesource")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    line: int


@dataclass(frozen=True)
class Dockerfile:
    path: Path
    platform: str
    context: Path
    instructions: tuple[Instruction, ...]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def base_images(self) -> list[str]:
        return [i.arguments.split()[0] for i in self.all("FROM")]

    def copy_sources(self) -> list[str]:
        """Sources of every COPY/ADD from the build context (not from another stage)."""
        sources = []
        for instruction in self.all("COPY") + self.all("ADD"):
            words = shlex.split(instruction.arguments)
            if any(w.startswith("--from=") for w in words):
                continue
            paths = [w for w in words if not w.startswith("--")]
            sources += paths[:-1]
        return sources

    def requirement_files(self) -> list[str]:
        return [
            m.group(1) for i in self.all("RUN") for m in re.finditer(r"-r\s+(\S+)", i.arguments)
        ]


def parse(path: Path, platform: str, context: Path) -> Dockerfile:
    instructions = []
    pending, start = "", 0
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text = pending + line
        pending = ""
        keyword, _, arguments = text.partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip(), start))
    return Dockerfile(path, platform, context, tuple(instructions))


def module_dockerfiles() -> list[Dockerfile]:
    """Every Dockerfile every module.json names, with its platform and build context."""
    found = []
    for folder in MODULE_DIRS:
        image = json.loads((folder / "module.json").read_text())["image"]
        context = (folder / image.get("contextPath", ".")).resolve()
        for platform, dockerfile in image["tag"]["platforms"].items():
            found.append(parse((folder / dockerfile).resolve(), platform, context))
    return found


class DockerIgnore:
    """``.dockerignore`` rules: in order, the last matching rule wins, ``!`` re-includes; a
    rule matching a directory covers what is under it."""

    def __init__(self, context: Path) -> None:
        path = context / ".dockerignore"
        lines = path.read_text().splitlines() if path.is_file() else []
        self.rules = [
            (line.startswith("!"), line.lstrip("!").strip().rstrip("/"))
            for line in (raw.strip() for raw in lines)
            if line and not line.startswith("#")
        ]

    def excludes(self, relative: str) -> bool:
        parts = relative.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        excluded = False
        for negate, pattern in self.rules:
            if any(fnmatch.fnmatchcase(p, pattern) for p in prefixes):
                excluded = not negate
        return excluded
