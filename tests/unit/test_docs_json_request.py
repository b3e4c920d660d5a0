"""Where the docs describe the JSON scoring request, they give its entry limit as the code
enforces it: over the limit, the whole request is refused with ``too_many_entries``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from classifier.errors import FrameErrorCode
from classifier.intake import DEFAULT_MAX_ENTRIES

REPO = Path(__file__).resolve().parents[2]


def passage_describing_the_json_request(path: Path) -> str:
    """The paragraph, list item or table row of ``path`` that introduces the request."""
    text = path.read_text(encoding="utf-8")
    blocks = re.split(r"\n(?=- |\| |\n)", text)
    found = [b for b in blocks if "JSON scoring request" in b and '"<name>"' in b]
    assert found, f"{path.name} no longer describes the JSON scoring request"
    return found[0]


@pytest.mark.parametrize("doc", ["README.md", "docs/message-schemas.md"])
def test_the_json_request_description_says_a_request_over_the_limit_is_refused_whole(
    doc: str,
) -> None:
    passage = passage_describing_the_json_request(REPO / doc)
    assert "MAX_REQUEST_ENTRIES" in passage, passage
    assert f"({DEFAULT_MAX_ENTRIES})" in passage, passage
    assert f"`{FrameErrorCode.TOO_MANY_ENTRIES.value}`" in passage, passage
    assert "refused whole" in passage, passage
