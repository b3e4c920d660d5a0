"""Where one device's module stands with one model, read from its module twin.

The module's reported ``modelUpdate`` says what it did for which desired ``$version``
(docs/module-twin.md); a state is only believed for the desired document that asks for the
model, so an earlier attempt at the same file, or a report from before the module read the
new desired properties, is never taken for the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Progress(StrEnum):
    WAITING = "waiting"  # the deployment has not reached the twin, or the module not acted
    UPDATING = "updating"  # downloading, verifying, loading
    ACTIVE = "active"
    FAILED = "failed"


@dataclass(frozen=True)
class ModelState:
    progress: Progress
    detail: str

    @property
    def settled(self) -> bool:
        return self.progress in (Progress.ACTIVE, Progress.FAILED)


def model_state(desired: dict[str, Any], reported: dict[str, Any], sha256: str) -> ModelState:
    """Where a module whose twin holds ``desired`` and ``reported`` stands with ``sha256``."""
    wanted = desired.get("model") or {}
    if wanted.get("sha256") != sha256:
        return ModelState(Progress.WAITING, "the deployment has not reached the module twin")
    version = desired.get("$version")
    document = reported.get("desired") or {}
    if document.get("version") == version and document.get("status") == "rejected":
        return ModelState(Progress.FAILED, f"invalid_desired: {document.get('reason')}")
    update = reported.get("modelUpdate") or {}
    seen = update.get("desiredVersion")
    if not isinstance(seen, int) or not isinstance(version, int) or seen < version:
        return ModelState(Progress.WAITING, "the module has not read the desired properties yet")
    state = str(update.get("state"))
    target = (update.get("target") or {}).get("sha256")
    if state == "active" and (reported.get("model") or {}).get("sha256") == sha256:
        return ModelState(Progress.ACTIVE, "active")
    if state in ("failed", "rolled_back") and target == sha256:
        error = update.get("error") or {}
        return ModelState(Progress.FAILED, f"{state}: {error.get('code')}: {error.get('reason')}")
    if state == "downloading":
        percent = (update.get("progress") or {}).get("percent")
        return ModelState(
            Progress.UPDATING, f"downloading {percent}%" if percent is not None else state
        )
    return ModelState(Progress.UPDATING, state)
