"""Scoring shards in this process, one after another, with one step (one ONNX Runtime session
using every core): the same shards and the same per-shard code as on Ray."""

from __future__ import annotations

from typing import Any

from video_scoring.errors import JobError, ShardError
from video_scoring.progress import Progress
from video_scoring.shards import Shard
from video_scoring.steps import StepSpec, build_step
from video_scoring.worker import ShardResult, ShardScorer


def run_local(
    shards: list[Shard], spec: StepSpec, batch_size: int, progress: Progress, max_attempts: int
) -> tuple[list[ShardResult], dict[str, Any]]:
    scorer = ShardScorer(build_step(spec), batch_size, spec.threads)
    progress.workers = 1
    results = []
    for shard in shards:
        for attempt in range(1, max_attempts + 1):
            try:
                result = scorer.score(shard)
            except ShardError as e:
                if attempt == max_attempts:
                    raise JobError(f"{shard.name} failed {attempt} times; last: {e}") from e
                progress.retry(shard.name, str(e))
                continue
            results.append(result)
            progress.shard_done(shard.frames)
            break
    return results, scorer.step.describe()
