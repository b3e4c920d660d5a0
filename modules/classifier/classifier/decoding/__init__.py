"""The decode stage: encoded frames in, model-ready tensors (or per-frame errors) out.

Two backends share one interface (``Decoder``) and one per-frame routine
(``prepared.prepare_one``):

- ``ThreadDecoder``: a thread pool in the module's own process (``DECODE_PROCESSES=0``);
- ``ProcessDecoder``: worker processes writing into shared-memory batch buffers
  (``DECODE_PROCESSES=N``), for machines where one interpreter's GIL would be the limit.
"""

from __future__ import annotations

from typing import Protocol

from classifier.decoding.batch import DecodedBatch
from classifier.frames import FrameRequest
from classifier.model_store import ServingModel


class Decoder(Protocol):
    async def start(self) -> None: ...

    async def decode(
        self, model: ServingModel, requests: list[FrameRequest], picked_s: float
    ) -> DecodedBatch: ...

    async def close(self) -> None: ...
