"""How many batches a CPU model infers at once ("lanes"), and ONNX Runtime's threads per run.

Why lanes: ONNX Runtime runs one batch on N threads by splitting each operator across them,
and the threads meet at the end of every operator. In the pipeline the decoders share those
cores, so whenever one of ONNX Runtime's threads is preempted by a decoder the others wait
for it. Two batches run at once, each on one thread, have nothing to wait for. On the
2-core machine of docs/benchmarks.md (section 10), inference alone, frames/s:

| model | one run on 2 threads | 2 runs at once, 1 thread each |
| --- | --- | --- |
| default (32x32) | 2,441 (batch 32) | 2,851 (batch 32) |
| MobileNetV2 (224x224) | 456 (batch 8) | 559 (batch 1) |

and in the pipeline, where the decoders take their share, the gap is larger. The cost is
latency when frames are few: a lone frame runs on one thread (default model 1.26 ms against
1.32 ms on two; MobileNetV2 4.1 ms against 3.1 ms).

The rule for ``INFERENCE_LANES=auto`` (the module's default), decided per model when it loads:
lanes, one per usable core and each run on one thread, for a CPU model with a small input
(at most ``MAX_LANE_INPUT_PIXELS``, the default model's 32x32 and the like) on a machine
with 2 to ``MAX_AUTO_LANES`` cores. Otherwise one run at a time on every core, as before:
MobileNetV2 (224x224) gained nothing from lanes in the pipeline (371 frames/s against 381-391,
within the noise, the decoders evicting what the single-threaded runs kept in cache), and its
lone frames would wait 1 ms longer; on larger machines a lone frame's latency would grow with
the core count, and lanes were not measured there. ``INTRA_OP_THREADS`` other than 0 means
the operator chose the threads: auto then keeps one lane. GPU models always take turns.
"""

from __future__ import annotations

import os

MAX_AUTO_LANES = 4
MAX_LANE_INPUT_PIXELS = 96 * 96
CPU_PROVIDER = "CPUExecutionProvider"


def usable_cores() -> int:
    return len(os.sched_getaffinity(0))


def auto_lanes(intra_op_threads: int, cores: int | None = None) -> int:
    """Lanes a small CPU model gets under auto on this machine (1: none)."""
    cores = usable_cores() if cores is None else cores
    if intra_op_threads or cores > MAX_AUTO_LANES or cores < 2:
        return 1
    return cores


def lanes_for_model(
    requested: int | None, provider: str, input_pixels: int, intra_op_threads: int
) -> int:
    """The lanes one loaded model runs in: ``requested`` (None: auto) where it applies."""
    if provider != CPU_PROVIDER:
        return 1
    if requested is not None:
        return requested
    return auto_lanes(intra_op_threads) if input_pixels <= MAX_LANE_INPUT_PIXELS else 1
