"""Fuzzes the module's intake, header parsing and decoding through the whole pipeline.

    python -m tests.fuzz.intake_fuzz --examples 200          # a fixed budget (CI)
    python -m tests.fuzz.intake_fuzz --seconds 1800          # a time budget (locally)

Each example sends one to four generated messages (``frame_strategies``) into a running
module (real codecs, a real ONNX model, the in-process hub) and checks the invariant:

- exactly one outcome per frame: a message gets one outcome for the whole message, or one
  per entry of its JSON request (as many as it had entries when it was built intact),
  never both, never two for one frame id;
- no exception escapes: ``deliver`` never raises, the event loop reports nothing, and no
  frame needed the catch-all ``internal_error`` (that would be a class of input nobody named);
- memory stays bounded by the configured limits: the growth of the peak resident set size,
  measured from after warm-up, stays under ``memory_bound_bytes``.

Exits 0 with a summary line when the invariant held, 1 with hypothesis's smallest failing
example otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

import classifier  # noqa: F401  # first: caps OpenCV's limits before it loads
from classifier.app import ClassifierModule
from classifier.config import ModuleConfig
from classifier.decode_limits import FrameLimits
from classifier.engine import InferenceEngine
from classifier.metrics import Metrics
from classifier.model_store import ModelStore
from classifier.pipeline import Pipeline
from edge_module.hub import InboundMessage
from edge_module.local_hub import LocalHub
from tests.fuzz.frame_strategies import Frame, frames
from tests.support.tiny_models import write_colour_model

# Small limits, so that what the limits allow is cheap and what they refuse would show.
LIMITS = FrameLimits(max_frame_bytes=1_000_000, max_pixels=2_000_000, max_side=4_096)
DECODE_WORKERS = 2
MAX_ENTRIES = 32
OUTCOME_TIMEOUT_S = 60.0


def memory_bound_bytes() -> int:
    """Peak growth the limits allow: per decode worker, one frame at the pixel limit held as
    decoded BGR, the decoder's own buffers, a resized copy and a colour conversion (4 x 3
    bytes a pixel); the message's bytes a few times over (base64, JSON, copies); slack for
    allocator fragmentation and hypothesis's own bookkeeping."""
    per_frame = LIMITS.max_pixels * 3 * 4
    return DECODE_WORKERS * per_frame + 8 * LIMITS.max_frame_bytes + 96 * 1024 * 1024


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak_rss() -> None:
    # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux 4.0 and later).
    Path("/proc/self/clear_refs").write_text("5")


class Harness:
    def __init__(self, work_dir: Path) -> None:
        model = write_colour_model(work_dir / "colour.onnx")
        config = ModuleConfig.from_env({"MODEL_PATH": str(model)})
        self.config = replace(
            config,
            pipeline=replace(
                config.pipeline,
                limits=LIMITS,
                decode_workers=DECODE_WORKERS,
                max_request_entries=MAX_ENTRIES,
                passthrough_properties=("lot",),
            ),
        )
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(self._loop_error)
        self.loop_errors: list[str] = []
        self.hub = LocalHub()
        self.engine = InferenceEngine.from_path(model)
        self.module = ClassifierModule(
            self.hub,
            Pipeline(ModelStore.serving(self.engine), self.config.pipeline, Metrics()),
            self.config,
        )
        self.stop = asyncio.Event()
        self.ids = itertools.count(1)
        self.codes: Counter[str] = Counter()
        self.messages = 0
        self.baseline_kb: int | None = None
        self.peak_growth = 0
        self.running = self.loop.create_task(self.module.run(self.stop))
        self.loop.run_until_complete(self.hub.ready.wait())

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.loop_errors.append(str(context.get("exception") or context.get("message")))

    def close(self) -> None:
        self.stop.set()
        self.loop.run_until_complete(self.running)
        self.loop.close()

    def check(self, batch: list[Frame]) -> None:
        if self.baseline_kb is None:
            self.loop.run_until_complete(self._check(batch))
            return
        # The peak is reset before each example, so a transient peak is charged to the
        # example that made it and hypothesis can shrink to that input; a slow drift of the
        # resident size (a leak) still adds up against the same baseline.
        before_kb = _status_kb("VmRSS")
        reset_peak_rss()
        self.loop.run_until_complete(self._check(batch))
        peak_kb = _status_kb("VmHWM")
        growth = (peak_kb - self.baseline_kb) * 1024
        self.peak_growth = max(self.peak_growth, growth)
        assert growth <= memory_bound_bytes(), (
            f"peak RSS {growth / 2**20:.0f} MiB above the baseline, "
            f"{(peak_kb - before_kb) / 1024:.0f} MiB above the RSS before this example"
        )

    def start_measuring(self) -> None:
        """From here on, peak RSS growth is measured from the current RSS."""
        self.hub.sent.clear()  # what the warm-up sent is not the module's memory
        self.baseline_kb = _status_kb("VmRSS")
        reset_peak_rss()

    async def _check(self, batch: list[Frame]) -> None:
        ids = [f"x{next(self.ids)}" for _ in batch]
        # Only this example's outcomes are kept: the hub's lists are the harness's memory,
        # not the module's, and must not grow with the run.
        for sent in self.hub.sent.values():
            sent.clear()
        seen = {output: 0 for output in ("predictions", "errors")}
        for message_id, frame in zip(ids, batch, strict=True):
            self.messages += 1
            await self.hub.deliver(
                InboundMessage(
                    "frames",
                    frame.body,
                    frame.content_type,
                    frame.content_encoding,
                    message_id,
                    None,
                    frame.properties,
                )
            )
        by_message = await self._outcomes_for(ids, batch, seen)
        assert not self.loop_errors, f"the event loop reported: {self.loop_errors}"
        for message_id, frame in zip(ids, batch, strict=True):
            outcomes = by_message[message_id]
            whole = [o for o in outcomes if o[0] == message_id]
            entries = [o for o in outcomes if o[0] != message_id]
            assert outcomes, f"{message_id}: no outcome"
            assert not (whole and entries), f"{message_id}: whole and entry outcomes {outcomes}"
            assert len(whole) <= 1, f"{message_id}: {len(whole)} outcomes"
            assert len({o[0] for o in entries}) == len(entries), f"{message_id}: repeated ids"
            if entries and frame.entries is not None:
                assert len(entries) == len(frame.entries), f"{message_id}: {outcomes}"
            for _, code in outcomes:
                self.codes[code] += 1
                assert code != "internal_error", f"{message_id}: internal_error for {frame!r:.300}"

    async def _outcomes_for(
        self, ids: list[str], batch: list[Frame], seen: dict[str, int]
    ) -> dict[str, list[tuple[str, str]]]:
        """Waits until every message has its outcomes (as many as the pipeline counted)."""
        deadline = time.monotonic() + OUTCOME_TIMEOUT_S
        wanted = set(ids)
        while True:
            found: dict[str, list[tuple[str, str]]] = {i: [] for i in ids}
            for output in ("predictions", "errors"):
                for message in self.hub.sent[output][seen[output] :]:
                    frame_id = message.correlation_id or ""
                    owner = frame_id.split("/", 1)[0]
                    if owner in wanted:
                        found[owner].append((frame_id, message.properties.get("code", "scored")))
            pending = self.module.pipeline.pending + self.module.outbox.depth
            if (all(found.values()) and not pending) or time.monotonic() > deadline:
                await asyncio.sleep(0)
                return found
            await asyncio.sleep(0.005)


def run(examples: int | None, seconds: float | None, start_seed: int, progress: bool) -> int:
    with tempfile.TemporaryDirectory() as work:
        harness = Harness(Path(work))
        # Warm-up: one of each seed kind, so first-use allocations do not count as growth.
        harness.check([Frame(b"\xff\xd8\xff", "image/jpeg", None, {})])
        harness.start_measuring()
        started = time.monotonic()
        chunk = examples or 100

        @settings(
            max_examples=chunk,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(st.lists(frames(), min_size=1, max_size=4))
        def invariant(batch: list[Frame]) -> None:
            harness.check(batch)

        rounds = 0
        try:
            while True:
                seed(start_seed + rounds)(invariant)()
                rounds += 1
                if progress:
                    rss_mib = _status_kb("VmRSS") / 1024
                    print(f"round {rounds}: RSS {rss_mib:.0f} MiB", file=sys.stderr, flush=True)
                if seconds is None or time.monotonic() - started >= seconds:
                    break
        finally:
            growth = harness.peak_growth
            harness.close()
        elapsed = time.monotonic() - started
        bound = memory_bound_bytes()
        print(
            f"fuzz: {rounds * chunk} examples, {harness.messages} messages in {elapsed:.0f} s; "
            f"peak RSS growth {growth / 2**20:.1f} MiB (bound {bound / 2**20:.0f} MiB); "
            f"outcomes by code {dict(sorted(harness.codes.items()))}"
        )
        if growth > bound:
            print("fuzz: memory bound exceeded", file=sys.stderr)
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.intake_fuzz")
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--examples", type=int, help="hypothesis examples to run")
    budget.add_argument("--seconds", type=float, help="run rounds of 100 examples this long")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", "0")))
    parser.add_argument("--progress", action="store_true", help="print RSS after each round")
    args = parser.parse_args(argv)
    return run(args.examples, args.seconds, args.seed, args.progress)


if __name__ == "__main__":
    sys.exit(main())
