"""The one error genconfig raises: every problem found, one line each, ready to print."""

from __future__ import annotations


class GenconfigError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
