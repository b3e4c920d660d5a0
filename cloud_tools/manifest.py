"""createOptions in a deployment manifest: the one home of the chunking rule.

A module's ``createOptions`` is a JSON object in a deployment template. IoT Hub limits a twin
string to 512 characters, so the generated manifest holds it as minified JSON text cut into
``createOptions``, ``createOptions01``, ``createOptions02``, ... Writers and readers differ in
how many chunks they allow: ``iotedgedev genconfig`` refuses more than 8 (4 KB), edgeAgent
reads up to 100. ``cloud_tools.genconfig`` writes with the first limit, the simulator's
runtime reads with the second; both go through this module.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = [
    "EDGE_AGENT_MAX_CHUNKS",
    "IOTEDGEDEV_MAX_CHUNKS",
    "TWIN_STRING_MAX_CHARS",
    "CreateOptionsError",
    "chunk_key",
    "create_options_text",
    "join_create_options",
    "split_create_options",
]

# IoT Hub rejects twin string values longer than this, which is why createOptions is chunked.
TWIN_STRING_MAX_CHARS = 512
# iotedgedev's TWIN_VALUE_MAX_CHUNKS: it refuses createOptions longer than 8 x 512 characters.
IOTEDGEDEV_MAX_CHUNKS = 8
# edgeAgent reads createOptions plus createOptions01..createOptions99.
EDGE_AGENT_MAX_CHUNKS = 100


class CreateOptionsError(ValueError):
    """createOptions cannot be written or read; ``problems`` lists every reason, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def chunk_key(index: int) -> str:
    return "createOptions" if index == 0 else f"createOptions{index:02d}"


def create_options_text(options: object) -> str:
    """The text a template's createOptions becomes: kept as given when already a string,
    else minified JSON with non-ASCII escaped (Python's ``json.dumps`` default, as iotedgedev)."""
    if isinstance(options, str):
        return options
    return json.dumps(options, separators=(",", ":"))


def split_create_options(
    text: str, *, max_chunks: int = EDGE_AGENT_MAX_CHUNKS, module: str = "module"
) -> dict[str, str]:
    """``text`` cut into twin-string-sized chunks, keyed as a manifest's settings hold them.

    An empty text has no chunks (iotedgedev then leaves ``createOptions`` as it was).
    """
    size = TWIN_STRING_MAX_CHARS
    pieces = [text[i : i + size] for i in range(0, len(text), size)]
    if len(pieces) > max_chunks:
        raise CreateOptionsError(
            [
                f"createOptions of {module} is {len(text)} characters, {len(pieces)} chunks of "
                f"{size}; at most {max_chunks} chunks ({max_chunks * size} characters) are allowed"
            ]
        )
    return {chunk_key(i): piece for i, piece in enumerate(pieces)}


def join_create_options(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Reassemble ``createOptions``, ``createOptions01``, ... into the JSON object they encode,
    as edgeAgent reads them.

    Chunks must be consecutive (a gap would silently corrupt the JSON) and each must fit in a
    twin string. The key may also be spelt ``createoptions``, as the schema allows.
    """
    chunks: dict[int, str] = {}
    for key, value in settings.items():
        lowered = key.lower()
        if not lowered.startswith("createoptions"):
            continue
        suffix = lowered.removeprefix("createoptions")
        if suffix and not (suffix.isdigit() and len(suffix) == 2 and suffix != "00"):
            raise CreateOptionsError(
                [f"'{key}': chunk keys are createOptions, createOptions01..99"]
            )
        index = int(suffix) if suffix else 0
        if index in chunks:
            raise CreateOptionsError([f"'{key}': chunk {index} given twice"])
        if not isinstance(value, str):
            raise CreateOptionsError([f"'{key}': createOptions chunks are JSON strings"])
        if len(value) > TWIN_STRING_MAX_CHARS:
            raise CreateOptionsError(
                [
                    f"'{key}' has {len(value)} characters; IoT Hub allows "
                    f"{TWIN_STRING_MAX_CHARS} per twin string"
                ]
            )
        chunks[index] = value
    if not chunks:
        return {}
    missing = [i for i in range(max(chunks) + 1) if i not in chunks]
    if missing:
        names = ", ".join(chunk_key(i) for i in missing)
        raise CreateOptionsError([f"createOptions chunks missing: {names}"])
    text = "".join(chunks[i] for i in range(len(chunks)))
    try:
        options = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as e:
        raise CreateOptionsError([f"createOptions is not valid JSON: {e}"]) from e
    if not isinstance(options, dict):
        raise CreateOptionsError(["createOptions must encode a JSON object"])
    return options
