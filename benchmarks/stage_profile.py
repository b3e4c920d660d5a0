"""Where a frame's CPU goes, by pipeline stage, sampled by py-spy with native frames.

    python benchmarks/stage_profile.py [--model null] [--decode-processes N] [--seconds 20]

Two runs of the same workload as ``pipeline_bound.py`` (the synthetic camera's 640x480 JPEGs,
fed as fast as the pipeline takes them, each outcome serialised): the first unprofiled, for
frames/s and CPU per frame (the module's process and its decoder processes, from /proc); the
second under ``py-spy record --native --subprocesses``, whose samples are sorted into stages
by the innermost frame that names one. A stage's share of the CPU samples times the CPU per
frame of the unprofiled run is its budget: native sampling stops the process for every
sample, so the profiled run's own speed is not the figure. Samples of threads waiting (for
work, for the event loop, or for the GIL, which CPython 3.11 waits for in
``pthread_cond_timedwait``) are counted apart, never as a stage's CPU.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.machine import describe_machine

# (stage, names any of which in a frame's function or file puts the sample there), tried
# from the innermost frame outwards; the first that matches takes the sample.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("decode: libjpeg-turbo (C)", ("simplejpeg", "libturbojpeg", "libjpeg")),
    ("preprocess: OpenCV and numpy (C)", ("cv2.", "libopencv", "_multiarray_umath", "numpy")),
    ("inference: ONNX Runtime", ("onnxruntime", "InferenceEngine.")),
    (
        "decode: header, EXIF, checks (Python)",
        ("decode.py", "image_header.py", "exif_orient", "prepared.py", "_prepare ("),
    ),
    ("preprocess (Python)", ("preprocess.py",)),
    ("decoder hand-off: chunks, pipes, results", ("decoding/", "pickle", "connection.py")),
    ("outcome JSON (orjson) and message", ("orjson", "to_message", "_body", "utc_now")),
    ("ranking, predictions, metrics", ("_predicted", "top_labels", "metrics.py", "_hand_on")),
    ("intake: message to frame request", ("intake/", "Pipeline.submit", "Pipeline._submit")),
    ("frame queue and batching", ("frame_queue.py", "Pipeline._assemble", "_decode_batch")),
    ("outcome stage and emit", ("outcome_stage.py", "run_pipeline.<locals>.emit")),
    ("benchmark sender (the hub's part)", ("run_pipeline",)),
    ("event loop and threads (asyncio, futures)", ("asyncio", "_asynciomodule", "futures")),
)
WAITS = ("pthread_cond_timedwait", "pthread_cond_wait", "epoll_wait", "sem_", "PyThread_acquire")
GIL_WAIT = "waiting for the GIL"


def classify(frames: list[str]) -> str:
    """The stage of one sample (its stack, outermost first)."""
    leafward = frames[::-1]
    if any(w in f for f in leafward[:3] for w in WAITS):
        waiting_for_work = any(
            k in f
            for f in leafward[:6]
            for k in ("SimpleQueue_get", "select_epoll", "epoll_wait", "_wait_for_tstate")
        )
        return "idle: waiting for work" if waiting_for_work else GIL_WAIT
    for frame in leafward:
        for stage, names in STAGES:
            if any(name in frame for name in names):
                return stage
    return "other"


def read_samples(raw: Path) -> collections.Counter[str]:
    stages: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            stages[classify(stack.split(";"))] += int(count)
    return stages


def run_workload(args: argparse.Namespace, profile_to: Path | None) -> dict[str, float]:
    command = [
        sys.executable,
        "-m",
        "benchmarks.stage_workload",
        args.model,
        str(args.seconds),
        str(args.decode_processes),
        args.lanes,
    ]
    if profile_to is not None:
        spy = shutil.which("py-spy")
        if spy is None:
            raise SystemExit("py-spy is not installed (pip install -r requirements.txt)")
        command = [
            spy,
            "record",
            "--native",
            "--threads",
            "--subprocesses",
            "--rate",
            str(args.rate),
            "--format",
            "raw",
            "--output",
            str(profile_to),
            "--",
            *command,
        ]
    result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=900)
    line = next(x for x in result.stdout.splitlines() if x.startswith("workload "))
    return {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="null", help="default, mobilenetv2 or null")
    parser.add_argument("--decode-processes", default="auto")
    parser.add_argument("--lanes", default="auto")
    parser.add_argument("--seconds", type=float, default=15.0, help="frames flowing, per run")
    parser.add_argument("--rate", type=int, default=50, help="py-spy samples per second")
    parser.add_argument("--samples-out", type=Path, help="keep py-spy's raw samples here")
    args = parser.parse_args(argv)
    print(describe_machine())
    plain = run_workload(args, None)
    with tempfile.TemporaryDirectory() as work:
        raw = Path(work) / "samples.txt"
        profiled = run_workload(args, raw)
        samples = read_samples(raw)
        if args.samples_out is not None:
            shutil.copyfile(raw, args.samples_out)
    cpu_us = plain["cpu_us_per_frame"]
    busy = {k: v for k, v in samples.items() if not k.startswith("idle") and k != GIL_WAIT}
    total = sum(busy.values())
    print(
        f"model={args.model} decoders={plain['decoders']:.0f} "
        f"({'processes' if plain['processes'] else 'threads'}) lanes={plain['lanes']:.0f}: "
        f"{plain['fps']:.0f} frames/s unprofiled, {cpu_us:.0f} us of CPU per frame "
        f"({plain['module_us_per_frame']:.0f} of them the module's process) "
        f"({plain['cores_busy']:.2f} of {os.cpu_count()} cores busy); profiled run "
        f"{profiled['fps']:.0f} frames/s, {sum(samples.values())} samples at {args.rate}/s\n"
    )
    print("| stage | share of CPU samples | us per frame |")
    print("| --- | --- | --- |")
    for stage, count in sorted(busy.items(), key=lambda kv: -kv[1]):
        print(f"| {stage} | {count / total:.1%} | {cpu_us * count / total:.1f} |")
    print(f"| **all** | 100% | **{cpu_us:.0f}** |")
    waits = samples[GIL_WAIT]
    print(
        f"\nthreads waiting for the GIL: {waits} samples, {waits / max(1, total):.0%} of the "
        f"CPU samples' count (wall time lost to it, not CPU)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
