"""``python -m cloud_tools score-video INPUT... --out DIR``: every frame of every video scored.

    --model M.onnx        the model (default: the classifier module's bundled model)
    --annotate            also write each video re-encoded with its labels drawn, audio kept
    --ray ADDRESS         shard the work across a Ray cluster (e.g. 127.0.0.1:6379, or
                          "auto" for the cluster this machine belongs to); without it, here
    --frames-per-shard N  frames per shard (default 256); a shard is the unit that is retried
    --batch N             frames per inference call (default 16)

Writes, per video, ``<name>.predictions.jsonl`` (one line per frame: frame index, pts,
time_s, label, confidence, top) and ``<name>.summary.json``, and ``job.json`` for the run.
The job fails (exit 1) unless every frame the decoder yields has exactly one prediction.
On Ray, every input must be readable at the same path on every node (shared storage).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from classifier.config import DEFAULT_MODEL
from cloud_tools.errors import FAILED, USAGE, CliError
from video_scoring import JobSettings, RaySettings, StepSpec, VideoScoringError, run_job
from video_scoring.errors import VideoError


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "score-video", help="score every frame of whole videos, locally or on Ray"
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--annotate", action="store_true")
    parser.add_argument("--ray", metavar="ADDRESS", help="a Ray cluster's address")
    parser.add_argument("--frames-per-shard", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument(
        "--provider", default="auto", help="ONNX Runtime provider (auto, cuda, cpu, ...)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="ONNX Runtime threads per session (0: every core here; on Ray, the actor's CPUs)",
    )
    parser.add_argument("--actors", type=int, default=0, help="Ray actors (0: one per CPU or GPU)")
    parser.add_argument("--cpus-per-actor", type=float, default=1.0)
    parser.add_argument("--max-attempts", type=int, default=3, help="tries per shard")
    parser.add_argument(
        "--ship-code",
        action="store_true",
        help="send this repository's packages with the job (a cluster without them installed)",
    )
    parser.set_defaults(run=_score_video)


def _score_video(args: argparse.Namespace) -> int:
    missing = [str(p) for p in args.inputs if not p.is_file()]
    if missing:
        raise CliError(f"not a file: {', '.join(missing)}", USAGE)
    if not args.model.is_file():
        raise CliError(f"model not found: {args.model}", USAGE)
    if args.frames_per_shard < 1 or args.batch < 1 or args.max_attempts < 1:
        raise CliError("--frames-per-shard, --batch and --max-attempts must be at least 1", USAGE)
    ray = None
    threads = args.threads
    if args.ray:
        # An actor uses the CPUs Ray gave it, not every core of its node.
        threads = threads or max(1, int(args.cpus_per_actor))
        ray = RaySettings(
            address=args.ray,
            actors=args.actors,
            cpus_per_actor=args.cpus_per_actor,
            max_attempts=args.max_attempts,
            ship_code=_code_paths() if args.ship_code else (),
        )
    settings = JobSettings(
        inputs=tuple(args.inputs),
        out_dir=args.out,
        step=StepSpec.classification(args.model, args.top_k, args.provider, threads),
        frames_per_shard=args.frames_per_shard,
        batch_size=args.batch,
        annotate=args.annotate,
        max_attempts=args.max_attempts,
        ray=ray,
    )
    try:
        report = run_job(settings)
    except VideoError as e:
        raise CliError(str(e), USAGE) from e
    except VideoScoringError as e:
        raise CliError(str(e), FAILED) from e
    for video in report.videos:
        print(
            f"{video['video']}: {video['predictions']} of {video['frames']} frames scored"
            f" ({video['not_decoded']} not decoded) -> {args.out / video['predictions_file']}"
        )
    print(
        f"{report.frames} frames in {report.seconds:.1f} s ({report.frames_per_s:.1f} frames/s, {report.mode})"
    )
    return 0


def _code_paths() -> tuple[Path, ...]:
    import classifier
    import edge_module
    import video_scoring

    return tuple(
        Path(m.__file__).parent for m in (video_scoring, classifier, edge_module) if m.__file__
    )
