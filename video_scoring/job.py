"""A whole batch job: probe every input, plan the shards, score them (here or on Ray), check
that every frame is accounted for, write the outputs, and re-assemble annotated videos."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from video_scoring.annotate import annotate_video, annotated_path
from video_scoring.errors import JobError
from video_scoring.local_runner import run_local
from video_scoring.output import assemble, write_video
from video_scoring.probe import VideoIndex, probe_video
from video_scoring.progress import Progress
from video_scoring.ray_runner import RaySettings, run_on_ray
from video_scoring.shards import Shard, plan_shards
from video_scoring.steps import StepSpec, annotator


@dataclass(frozen=True)
class JobSettings:
    inputs: tuple[Path, ...]
    out_dir: Path
    step: StepSpec
    frames_per_shard: int = 256
    batch_size: int = 16
    annotate: bool = False
    max_attempts: int = 3
    ray: RaySettings | None = None  # None: score here


@dataclass(frozen=True)
class JobReport:
    videos: list[dict[str, Any]]
    frames: int
    seconds: float
    retries: int
    mode: str

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


def run_job(settings: JobSettings, progress: Progress | None = None) -> JobReport:
    started = time.monotonic()
    indexes = [probe_video(path) for path in settings.inputs]
    shards: list[Shard] = []
    for video, index in enumerate(indexes):
        shards += plan_shards(video, index, settings.frames_per_shard)
    frames = sum(i.frame_count for i in indexes)
    progress = progress or Progress(len(shards), frames)
    if settings.ray is None:
        mode = "local"
        results, step_info = run_local(
            shards, settings.step, settings.batch_size, progress, settings.max_attempts
        )
    else:
        mode = f"ray {settings.ray.address}"
        results, step_info = run_on_ray(
            shards, settings.step, settings.batch_size, progress, settings.ray
        )
    progress.show(final=True)
    outputs = assemble(indexes, results)
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    scored_s = time.monotonic() - started
    summaries = []
    for output in outputs:
        summary: dict[str, Any] = {
            "model": step_info,
            "mode": mode,
            "frames_per_shard": settings.frames_per_shard,
            "batch_size": settings.batch_size,
            "retries": progress.retries,
        }
        if settings.annotate:
            summary["annotated"] = _annotate(settings, output.index, output.name, output.records)
        summaries.append(write_video(settings.out_dir, output, summary))
    report = JobReport(summaries, frames, scored_s, progress.retries, mode)
    (settings.out_dir / "job.json").write_text(
        json.dumps(
            {
                "mode": mode,
                "videos": [s["video"] for s in summaries],
                "frames": frames,
                "scoring_seconds": round(scored_s, 3),
                "frames_per_s": round(report.frames_per_s, 2),
                "retries": progress.retries,
            },
            indent=2,
        )
        + "\n"
    )
    return report


def _annotate(
    settings: JobSettings, index: VideoIndex, name: str, records: list[dict[str, Any]]
) -> dict[str, Any]:
    target = annotated_path(settings.out_dir, name, index.path)
    written = annotate_video(index.path, target, records, annotator(settings.step.kind), index.fps)
    if written != index.frame_count - sum("error" in r for r in records):
        raise JobError(f"{target}: {written} frames written for {index.frame_count}")
    return {"file": target.name, "frames": written, "audio_streams": index.audio_streams}
