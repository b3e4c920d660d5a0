"""Scoring one shard: decode its frames, run the step on them in batches, account for each.

Decoding starts at the keyframe at or before the shard's first frame (a seek), keeps the
frames whose presentation time is the shard's, and stops past its last. The frames decoded
are checked against the shard's frame list (from the demuxing pass): a frame decoded twice,
or one that is not the shard's, fails the shard (it is retried alone); a frame the decoder
did not yield is tried again on a retry that decodes from the start of the file (a seek that
landed late), and if the decoder still does not yield it, it is reported as not decoded.
Either way every frame of the shard has exactly one line in the output.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import av

from video_scoring.errors import ShardError
from video_scoring.shards import Shard
from video_scoring.steps import FrameStep, RgbArray


@dataclass
class ShardResult:
    shard: Shard
    # One record per frame of the shard, in frame order: a result or an error.
    records: list[dict[str, Any]]
    decoded: int
    not_decoded: int
    seconds: float
    worker: str = ""
    timings: dict[str, float] = field(default_factory=dict)


class ShardScorer:
    """One step (one ONNX Runtime session) scoring shard after shard."""

    def __init__(self, step: FrameStep, batch_size: int, decode_threads: int = 0) -> None:
        self.step = step
        self.batch_size = batch_size
        self.decode_threads = decode_threads  # 0: FFmpeg's choice (every core)
        self.worker = f"{os.uname().nodename}:{os.getpid()}"

    def score(self, shard: Shard) -> ShardResult:
        started = time.perf_counter()
        result = self._score(shard, seek=True)
        if result.not_decoded and shard.first > 0:
            result = self._score(shard, seek=False)  # the seek may have landed late
        result.seconds = time.perf_counter() - started
        return result

    def _score(self, shard: Shard, seek: bool) -> ShardResult:
        started = time.perf_counter()
        results: dict[int, dict[str, Any]] = {}
        batch: list[tuple[int, RgbArray]] = []
        decoded = 0
        for index, pixels in _decode(shard, seek, self.decode_threads):
            if index in results or any(i == index for i, _ in batch):
                raise ShardError(f"{shard.name}: frame {index} was decoded twice")
            decoded += 1
            batch.append((index, pixels))
            if len(batch) == self.batch_size:
                self._run(batch, results)
                batch = []
        self._run(batch, results)
        records = []
        for index in range(shard.first, shard.last + 1):
            result = results.get(index)
            record: dict[str, Any] = {"frame": index}
            if shard.pts is not None:
                record["pts"] = shard.pts[index - shard.first]
            if result is None:
                record["error"] = "not_decoded"
            else:
                record.update(result)
            records.append(record)
        not_decoded = shard.frames - decoded
        return ShardResult(
            shard, records, decoded, not_decoded, time.perf_counter() - started, self.worker
        )

    def _run(self, batch: list[tuple[int, RgbArray]], results: dict[int, dict[str, Any]]) -> None:
        if batch:
            for (index, _), result in zip(
                batch, self.step.process([p for _, p in batch]), strict=True
            ):
                results[index] = result


def _decode(shard: Shard, seek: bool, threads: int) -> Any:
    """(frame index, RGB pixels) for each frame of the shard the decoder yields."""
    try:
        with av.open(str(shard.path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if threads:
                stream.thread_count = threads
            if shard.pts is None:
                # No timestamps: one shard of the whole video, frames in decode order.
                for i, frame in enumerate(container.decode(stream)):
                    yield i, frame.to_ndarray(format="rgb24")
                return
            wanted = {p: shard.first + i for i, p in enumerate(shard.pts)}
            first_pts, last_pts = shard.pts[0], shard.pts[-1]
            if seek and shard.first > 0:
                container.seek(first_pts, stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                if frame.pts > last_pts:
                    break  # frames leave the decoder in presentation order
                index = wanted.get(frame.pts)
                if index is None:
                    if frame.pts >= first_pts:
                        raise ShardError(
                            f"{shard.name}: the decoder yielded a frame at pts {frame.pts} "
                            "that the demuxer did not list"
                        )
                    continue  # before the shard: decoded from the keyframe only to reach it
                yield index, frame.to_ndarray(format="rgb24")
    except (av.FFmpegError, OSError) as e:
        raise ShardError(f"{shard.name}: decoding failed: {e}") from e
