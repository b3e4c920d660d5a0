"""The job's output, per video: ``<name>.predictions.jsonl`` (one line per frame, in frame
order) and ``<name>.summary.json``; and the check that every frame is accounted for.

The check, before anything is written: the shards of a video cover its frames exactly once
(none missing, none twice, whatever the frame count and the shard count), every frame has one
record, and the number of predictions is the number of frames the decoder yielded. A frame
the demuxer listed but the decoder never yielded has an ``"error": "not_decoded"`` line.

The predictions file holds only what the frames and the model decide (no timings, no worker
names), so a local run and a Ray run of the same job write the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from video_scoring.errors import JobError
from video_scoring.probe import VideoIndex
from video_scoring.worker import ShardResult


@dataclass(frozen=True)
class VideoOutput:
    index: VideoIndex
    name: str  # the output files' stem (unique within the job)
    records: list[dict[str, Any]]
    decoded: int
    shards: int

    @property
    def predictions_path(self) -> Path:
        return Path(f"{self.name}.predictions.jsonl")


def output_names(indexes: list[VideoIndex]) -> list[str]:
    """Each input's stem; inputs with the same stem are numbered (``clip``, ``clip-2``)."""
    names: list[str] = []
    for index in indexes:
        stem, n = index.path.stem, 1
        name = stem
        while name in names:
            n += 1
            name = f"{stem}-{n}"
        names.append(name)
    return names


def assemble(indexes: list[VideoIndex], results: list[ShardResult]) -> list[VideoOutput]:
    """Each video's records, checked (``JobError`` names what does not add up)."""
    names = output_names(indexes)
    outputs = []
    for video, (index, name) in enumerate(zip(indexes, names, strict=True)):
        mine = sorted((r for r in results if r.shard.video == video), key=lambda r: r.shard.first)
        records = [record for r in mine for record in r.records]
        frames = [record["frame"] for record in records]
        if frames != list(range(index.frame_count)):
            raise JobError(
                f"{index.path}: the shards hold frames {_ranges(frames)}, "
                f"not each of 0-{index.frame_count - 1} once"
            )
        decoded = sum(r.decoded for r in mine)
        predictions = sum("error" not in record for record in records)
        if predictions != decoded:
            raise JobError(f"{index.path}: {predictions} predictions for {decoded} frames decoded")
        for record in records:
            if "pts" in record:
                record["time_s"] = round(index.seconds(record["pts"]), 6)
        outputs.append(VideoOutput(index, name, records, decoded, len(mine)))
    return outputs


def write_video(out_dir: Path, output: VideoOutput, summary: dict[str, Any]) -> dict[str, Any]:
    path = out_dir / output.predictions_path
    with path.open("w", encoding="utf-8") as file:
        for record in output.records:
            file.write(json.dumps({"video": output.index.path.name} | record) + "\n")
    index = output.index
    doc = {
        "video": str(index.path),
        "frames": index.frame_count,
        "predictions": output.decoded,
        "not_decoded": index.frame_count - output.decoded,
        "shards": output.shards,
        "fps": index.fps,
        "width": index.width,
        "height": index.height,
        "codec": index.codec,
        "predictions_file": path.name,
    } | summary
    (out_dir / f"{output.name}.summary.json").write_text(json.dumps(doc, indent=2) + "\n")
    return doc


def _ranges(frames: list[int]) -> str:
    if not frames:
        return "none"
    shown = ", ".join(str(f) for f in frames[:12])
    return shown + (f", ... ({len(frames)} in all)" if len(frames) > 12 else "")
