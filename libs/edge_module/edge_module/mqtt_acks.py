"""When the MQTT hub acknowledges an input message: once the module's outcome for it is out.

A frame's PUBACK is the broker's licence to forget it, so it waits until a message that
names the frame as its correlation (a prediction or an error, which carry the frame id) has
been published and acknowledged in turn. A module killed between the two loses nothing: the
broker redelivers the frame to the replica's resumed session, and a consumer may then see
one outcome twice. JSON requests with several entries answer as ``<frame id>/<entry>``.

A redelivery of a frame whose outcome went out (the same id, bytes and properties) is
acknowledged at once and not handed to the module again. A frame whose outcome will never name it (an id the module had to
shorten, a repeat the module recognised and skipped) is acknowledged after the timeout and
counted, so a stray frame cannot hold a slot of the broker's receive window for ever.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

# Frame ids whose outcomes went out recently: a redelivery of one of them is answered at once.
SETTLED_MEMORY = 4096


@dataclass
class _Held:
    packet_ids: set[int]
    since_s: float
    digest: bytes


@dataclass
class Acknowledgements:
    timeout_s: float
    _held: OrderedDict[str, _Held] = field(default_factory=OrderedDict)
    _settled: OrderedDict[str, bytes] = field(default_factory=OrderedDict)

    @property
    def held(self) -> int:
        return len(self._held)

    def hold(self, frame_id: str, packet_id: int, now_s: float, digest: bytes) -> None:
        """Holds the PUBACK for ``packet_id`` until ``frame_id`` settles. ``digest``: of the
        message's bytes and properties, to tell a redelivery from a new frame with a reused id."""
        held = self._held.get(frame_id)
        if held is None:
            self._held[frame_id] = _Held({packet_id}, now_s, digest)
        else:
            held.packet_ids.add(packet_id)

    def answered(self, frame_id: str, digest: bytes) -> bool:
        """Whether this very message was answered recently: a redelivery (the broker never got
        its PUBACK, lost in a reconnect) that needs no second outcome."""
        return self._settled.get(frame_id) == digest

    def settle(self, correlation_id: str | None) -> set[int]:
        """The packet ids to acknowledge now that an outcome naming ``correlation_id`` is out."""
        if not correlation_id:
            return set()
        for frame_id in (correlation_id, correlation_id.rpartition("/")[0]):
            held = self._held.pop(frame_id, None)
            if held is not None:
                self._remember(frame_id, held.digest)
                return held.packet_ids
        return set()

    def expired(self, now_s: float) -> set[int]:
        """Packet ids held past the timeout: acknowledged without their outcome."""
        due: set[int] = set()
        # Held in arrival order, so the oldest are first.
        while self._held:
            frame_id, held = next(iter(self._held.items()))
            if now_s - held.since_s < self.timeout_s:
                break
            del self._held[frame_id]
            due |= held.packet_ids
        return due

    def _remember(self, frame_id: str, digest: bytes) -> None:
        self._settled[frame_id] = digest
        if len(self._settled) > SETTLED_MEMORY:
            self._settled.popitem(last=False)
