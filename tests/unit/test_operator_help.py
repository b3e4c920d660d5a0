"""The operator's ``--help`` says what an operator can do, not how the code is organised."""

from __future__ import annotations

import pytest

from cloud_tools.__main__ import build_parser

# Words of the code's own organisation, which no operator types or needs.
IMPLEMENTATION_WORDS = ("register(", "subparsers", "args -> exit code", "command module", "tuple")


def test_the_top_level_help_names_every_command_and_no_implementation_note() -> None:
    text = build_parser().format_help()
    for word in IMPLEMENTATION_WORDS:
        assert word not in text, f"--help shows an implementation note ({word!r}):\n{text}"
    for command in ("model", "fleet", "invoke", "deploy", "monitor", "keys", "quantize"):
        assert f"\n    {command}" in text, text


@pytest.mark.parametrize("words", [("IOTHUB_CONNECTION_STRING",), ("python -m simulator env",)])
def test_the_top_level_help_says_where_connection_strings_come_from(words: tuple[str]) -> None:
    assert all(w in build_parser().format_help() for w in words)
