"""Wires a source to a ``Hub``: frames out on ``frames``, settings in from the twin, state out.

Each frame is a JPEG message with its frame id (the message id), ``source_id``,
``capture_time`` (epoch ms), ``seq`` (the module's frame counter), ``pts_ms`` for a file and
``truth`` for a synthetic frame. One that would exceed edgeHub's limit (or
``CLAIM_CHECK_ABOVE_BYTES``) is written to the shared volume and a claim-check reference
(``edge_module.claim_check``) goes instead, with the same properties.

Messages leave through the outbox (``HubSession``): while edgeHub is away, the newest
``OUTBOX_CAPACITY`` frames wait and older ones are dropped and counted (``drop_oldest``:
a live camera's old frames are worth less than its new ones); ``block`` makes the source wait.

Desired properties: the ``source`` section overrides the environment's source settings; every
change is validated as a whole, and an accepted one restarts the source with the new settings.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from typing import Any

from edge_module.claim_check import CLAIM_CHECK_CONTENT_TYPE, ClaimCheckError, ClaimStore
from edge_module.counting import Counts
from edge_module.errors import HubError, HubWedgedError, SettingsError
from edge_module.hub import Hub, MethodResult, OutboundMessage
from edge_module.message_size import fits
from edge_module.outbox import Outgoing
from edge_module.session import HubSession
from framesource.config import FrameSourceConfig
from framesource.settings import SourceSettings, source_from_twin
from framesource.sources import SourceFrame
from framesource.sources.frames import EncodedFrame
from framesource.streamer import Streamer, StreamStats

log = logging.getLogger(__name__)

SCHEMA_VERSION = "1.0"


class FrameSourceModule:
    def __init__(self, hub: Hub, config: FrameSourceConfig) -> None:
        self.hub = hub
        self.config = config
        self.counts = Counts()
        self.session = HubSession(hub, config.hub, self.counts)
        self.settings: SourceSettings = config.source
        folder = config.claim_checks.folder
        self.claims = None if folder is None else ClaimStore(folder, config.claim_checks.limits)
        self._claims_lock = threading.Lock()  # the streamer deposits, the sweeper sweeps
        self._seq = 0
        self._streamer: Streamer | None = None
        self._stats = StreamStats()  # the current source's (the last one's once stopped)
        self._state: dict[str, Any] = {"state": "starting"}
        self._desired_version: int | None = None
        self._settings_status: dict[str, Any] = {"status": "environment", "error": None}
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        if self.claims is not None:
            try:
                # The image has it; a local run (the simulator) may not yet.
                await asyncio.to_thread(self.claims.folder.mkdir, parents=True, exist_ok=True)
            except OSError as e:
                log.warning("claim checks off: cannot use %s: %s", self.claims.folder, e)
                self.claims = None
        self.hub.on_desired_properties(self._on_desired)
        self.hub.on_method(self._on_method)
        await self.session.open(stop)
        await self._resync()
        if self._streamer is None:
            self._start(self.settings)
        sweeping = asyncio.create_task(self._sweep_claims(), name="claim-sweep")
        try:
            await stop.wait()
        finally:
            sweeping.cancel()
            await self.session.stop_watching()
            await self._stop_streamer()
            await asyncio.gather(sweeping, return_exceptions=True)
            await self.session.close(self.config.shutdown_grace_s, self._report("stopped"))
        if self.session.wedged.is_set():
            raise HubWedgedError(self.session.wedged_reason)

    # -- the source ------------------------------------------------------------------------

    def _start(self, settings: SourceSettings) -> None:
        self.settings = settings
        streamer = Streamer(settings, self._deliver, self._on_state, self.counts)
        self._streamer = streamer
        self._stats = streamer.stats
        log.info("source %s", settings.describe())
        streamer.start()

    async def _stop_streamer(self) -> None:
        streamer, self._streamer = self._streamer, None
        if streamer is not None:
            timeout_s = streamer.settings.read_timeout_s + 1.0
            if not await asyncio.to_thread(streamer.stop, timeout_s):
                log.warning("the source thread is still in a read; it ends on its own")

    def _deliver(self, frame: SourceFrame, encoded: EncodedFrame, stop: threading.Event) -> bool:
        """In the streamer's thread: the frame as a message, into the outbox; False: stop."""
        loop = self._loop
        assert loop is not None
        item = self._message(frame, encoded)
        if item is None:
            return True
        future = asyncio.run_coroutine_threadsafe(self.session.outbox.put(item), loop)
        # put() waits only under the "block" policy; a stopping streamer stops waiting.
        while True:
            try:
                future.result(timeout=0.5)
                return True
            except concurrent.futures.TimeoutError:
                if stop.is_set():
                    future.cancel()
                    return False

    def _message(self, frame: SourceFrame, encoded: EncodedFrame) -> Outgoing | None:
        self._seq += 1
        frame_id = f"{self.config.source_id}-{self._seq}"
        properties = {
            "source_id": self.config.source_id,
            "capture_time": str(int(time.time() * 1000)),
            "seq": str(self._seq),
        }
        if frame.pts_ms is not None:
            properties["pts_ms"] = str(frame.pts_ms)
        if frame.truth is not None:
            properties["truth"] = frame.truth
        message = OutboundMessage(
            encoded.jpeg,
            content_type="image/jpeg",
            content_encoding="binary",
            message_id=frame_id,
            properties=properties,
        )
        if not fits(message, self.config.claim_checks.above_bytes):
            reference = self._claim_check(message, frame_id)
            if reference is None:
                return None
            message = reference
        self.counts.count("frames_sent")
        return Outgoing(self.config.output, message, None, frame_id)

    def _claim_check(self, message: OutboundMessage, frame_id: str) -> OutboundMessage | None:
        if self.claims is None:
            self.counts.count("frames_too_large")
            log.warning(
                "frame %s is %d bytes: too large, and CLAIM_CHECK_DIR is off",
                frame_id,
                len(message.body),
            )
            return None
        try:
            with self._claims_lock:
                reference, evicted = self.claims.deposit(message.body, "image/jpeg", frame_id)
        except (ClaimCheckError, OSError) as e:
            self.counts.count("claim_checks_failed")
            log.warning("frame %s could not be written to the claim-check volume: %s", frame_id, e)
            return None
        self.counts.count("claim_checks")
        if evicted:
            self.counts.count("claim_checks_evicted", evicted)
        return OutboundMessage(
            reference.to_message_body(),
            content_type=CLAIM_CHECK_CONTENT_TYPE,
            content_encoding="utf-8",
            message_id=message.message_id,
            properties=message.properties,
        )

    async def _sweep_claims(self) -> None:
        if self.claims is None:
            return
        claims = self.claims
        while True:
            await asyncio.sleep(self.config.claim_checks.sweep_interval_s)

            def sweep() -> int:
                with self._claims_lock:
                    return claims.sweep().expired

            try:
                expired = await asyncio.to_thread(sweep)
            except OSError as e:
                log.warning("claim-check sweep failed: %s", e)
                continue
            if expired:
                self.counts.count("claim_checks_expired", expired)

    def _on_state(self, state: str, details: dict[str, Any]) -> None:
        """In the streamer's thread: the new state, reported from the module's loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        self._state = {"state": state} | details
        if state == "stopped":
            return  # the shutdown reports it
        with contextlib.suppress(RuntimeError):  # the loop is closing
            asyncio.run_coroutine_threadsafe(self._report_now(), loop)

    # -- twin and methods ------------------------------------------------------------------

    async def _on_desired(self, patch: dict[str, Any]) -> None:
        await self._resync()

    async def _resync(self) -> None:
        try:
            desired = await self.hub.get_desired_properties()
        except HubError as e:
            log.warning("cannot read the desired properties now: %s", e)
            return
        version = desired.get("$version")
        if version is not None and version == self._desired_version:
            return
        self._desired_version = version if isinstance(version, int) else None
        section = desired.get("source")
        try:
            wanted = (
                self.config.source
                if section is None
                else source_from_twin(section, self.config.source)
            )
        except SettingsError as e:
            log.warning("desired source rejected: %s", e)
            self._settings_status = {
                "status": "rejected",
                "error": str(e),
                "desiredVersion": version,
            }
            await self._report_now()
            return
        self._settings_status = {"status": "applied", "error": None, "desiredVersion": version}
        if wanted != self.settings or self._streamer is None:
            await self._stop_streamer()
            self._start(wanted)
        await self._report_now()

    async def _on_method(self, name: str, payload: Any) -> MethodResult:
        if name == "get_status":
            return MethodResult(200, self.status())
        return MethodResult(404, {"error": f"unknown method {name!r}", "methods": ["get_status"]})

    def status(self) -> dict[str, Any]:
        stats = self._stats.__dict__
        return self._report(self._state.get("state", "starting")) | {
            "stats": dict(stats),
            "counters": self.counts.snapshot(),
            "outbox": self.session.outbox.depth,
        }

    def _report(self, state: str) -> dict[str, Any]:
        return {
            "schemaVersion": SCHEMA_VERSION,
            "state": state,
            # Every key each time: a reported patch merges, and a stale error must go.
            "detail": {"error": None, "retry_in_s": None, "stream": None}
            | {k: v for k, v in self._state.items() if k != "state"},
            "source": self.settings.describe(),
            "settings": dict(self._settings_status),
            "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    async def _report_now(self) -> None:
        try:
            await self.hub.report(self._report(self._state.get("state", "starting")))
        except HubError as e:
            log.warning("could not report the source's state: %s", e)
