"""Frames per second of ``python -m cloud_tools score-video``: locally, and on a local Ray
cluster with 1 and then 2 worker nodes (1 CPU each), interleaved, median of repeats.

    python benchmarks/score_video.py --frames 3000 --repeats 3

The video is made here (H.264 with AAC, 320x240, 25 fps, synthetic classes). Each job is the
CLI as a user runs it, in its own process; frames/s is frames over the job's wall time,
which on Ray includes connecting and starting the actors (each loads its ONNX Runtime
session once). The Ray cluster runs in a private network namespace (tests.support.ray_cluster;
needs root). Other engineers use this machine too: repeat, and read the medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.machine import describe_machine
from tests.support.ray_cluster import ADDRESS, RayCluster
from tests.support.videos import make_video

REPO = Path(__file__).resolve().parent.parent


def job(argv: list[str], cluster: RayCluster | None, out: Path) -> float:
    command = [sys.executable, "-m", "cloud_tools", "score-video", *argv, "--out", str(out)]
    started = time.monotonic()
    if cluster is None:
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
        code, err = done.returncode, done.stderr
    else:
        process = cluster.popen(
            [*command, "--ray", ADDRESS],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _, raw = process.communicate(timeout=1800)
        code, err = process.returncode, raw.decode()
    elapsed = time.monotonic() - started
    if code != 0:
        raise SystemExit(f"score-video failed: {err[-2000:]}")
    frames = json.loads((out / "job.json").read_text())["frames"]
    return float(frames / elapsed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames-per-shard", type=int, default=250)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-video-"))
    video = make_video(work / "bench.mp4", args.frames, fps=25, width=320, height=240, gop=25)
    shard = ["--frames-per-shard", str(args.frames_per_shard)]
    results: dict[str, list[float]] = {"local": [], "ray, 1 worker": [], "ray, 2 workers": []}
    # Two worker nodes throughout; "--actors 1" leaves one of them idle.
    cluster = RayCluster(workers=2)
    try:
        cluster.start()
        for repeat in range(args.repeats):
            results["local"].append(job([str(video.path), *shard], None, work / f"l{repeat}"))
            results["ray, 1 worker"].append(
                job([str(video.path), *shard, "--actors", "1"], cluster, work / f"a{repeat}")
            )
            results["ray, 2 workers"].append(
                job([str(video.path), *shard, "--actors", "2"], cluster, work / f"b{repeat}")
            )
    finally:
        cluster.stop()
    print(describe_machine())
    print(f"video: {args.frames} frames, 320x240 H.264 + AAC; {args.frames_per_shard} frames/shard")
    print("| run | frames/s (median) | runs |")
    print("|---|---|---|")
    for name, rates in results.items():
        shown = ", ".join(f"{r:.0f}" for r in rates)
        print(f"| {name} | {statistics.median(rates):.0f} | {shown} |")
    one, two = (
        statistics.median(results["ray, 1 worker"]),
        statistics.median(results["ray, 2 workers"]),
    )
    print(f"scaling 1 -> 2 workers: {two / one:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
