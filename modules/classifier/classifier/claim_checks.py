"""Frames that arrive as claim checks: a reference message naming a file on the shared volume
(``edge_module.claim_check`` holds the contract; the frame source writes them).

Where it sits: before the pipeline, on the module's loop, one message at a time in arrival
order. The file is read and verified off the loop (a thread), and the message goes on as if
its body had been the file's bytes all along: everything after (intake, decode, batching,
outcomes) is the same code. A reference that cannot be redeemed becomes that frame's error,
with a code of its own. Redeemed files are released (deleted) at once: their bytes are in
memory, and edgeHub already counts the message as delivered. With several consumers of the
same frames, ``CLAIM_CHECK_RELEASE=keep`` leaves the files to the producer's age sweep.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from pathlib import Path

from classifier.errors import FrameError, FrameErrorCode
from classifier.metrics import Metrics
from edge_module.claim_check import (
    CLAIM_CHECK_CONTENT_TYPE,
    ClaimAlteredError,
    ClaimCheckError,
    ClaimInvalidError,
    ClaimMissingError,
    ClaimReference,
    ClaimStore,
    ClaimTooLargeError,
)
from edge_module.hub import InboundMessage

# The frame source image and this image mount the shared volume here (the templates).
DEFAULT_CLAIM_CHECK_DIR = Path("/var/lib/edge-frames/claims")

_CODES: dict[type[ClaimCheckError], FrameErrorCode] = {
    ClaimMissingError: FrameErrorCode.CLAIM_CHECK_MISSING,
    ClaimAlteredError: FrameErrorCode.CLAIM_CHECK_ALTERED,
    ClaimInvalidError: FrameErrorCode.CLAIM_CHECK_INVALID,
    ClaimTooLargeError: FrameErrorCode.TOO_LARGE,
}


@dataclass(frozen=True)
class ClaimCheckSettings:
    folder: Path | None = DEFAULT_CLAIM_CHECK_DIR  # None: claim checks are refused
    release: bool = True  # delete each file once redeemed


def is_claim_check(message: InboundMessage) -> bool:
    media_type = (message.content_type or "").split(";", 1)[0].strip().lower()
    return media_type == CLAIM_CHECK_CONTENT_TYPE


class ClaimChecks:
    def __init__(self, settings: ClaimCheckSettings, max_frame_bytes: int, metrics: Metrics):
        self.settings = settings
        self._max_bytes = max_frame_bytes
        self._metrics = metrics
        self._store = None if settings.folder is None else ClaimStore(settings.folder)

    async def redeem(self, message: InboundMessage) -> InboundMessage:
        """The message with the file's bytes as its body; ``FrameError`` if it cannot be."""
        try:
            data, content_type = await self._redeem(message)
        except FrameError:
            self._metrics.count("claim_checks_failed")
            raise
        self._metrics.count("claim_checks_redeemed")
        return replace(message, body=data, content_type=content_type, content_encoding=None)

    async def _redeem(self, message: InboundMessage) -> tuple[bytes, str]:
        if self._store is None:
            raise FrameError(
                FrameErrorCode.CLAIM_CHECK_UNAVAILABLE,
                "a claim-check reference arrived, but CLAIM_CHECK_DIR is off on this module",
            )
        try:
            reference = ClaimReference.from_message_body(message.body)
            data = await asyncio.to_thread(
                self._store.redeem, reference, self._max_bytes, self.settings.release
            )
        except ClaimCheckError as e:
            raise FrameError(_CODES[type(e)], str(e)) from e
        except OSError as e:  # the volume is not mounted, or not readable by this user
            raise FrameError(
                FrameErrorCode.CLAIM_CHECK_UNAVAILABLE, f"cannot read the claim-check volume: {e}"
            ) from e
        return data, reference.content_type
