"""The annotated video: every frame with its result drawn on it, re-encoded (H.264), with the
original audio streams copied as they are (no re-encoding, so no loss and no drift).

Each output frame keeps its input frame's presentation time, so the output has exactly the
input's frames at the input's times, and the audio stays in sync.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np

from video_scoring.errors import JobError
from video_scoring.steps import RgbArray

# Containers that take H.264 and the usual audio codecs; anything else is written as .mkv.
_KEEP_CONTAINER = {".mp4", ".mov", ".mkv", ".m4v"}

Draw = Callable[[RgbArray, dict[str, Any]], RgbArray]


def annotated_path(out_dir: Path, name: str, source: Path) -> Path:
    suffix = source.suffix.lower() if source.suffix.lower() in _KEEP_CONTAINER else ".mkv"
    return out_dir / f"{name}.annotated{suffix}"


def annotate_video(
    source: Path, target: Path, records: list[dict[str, Any]], draw: Draw, fps: float
) -> int:
    """Writes ``target``; returns the number of video frames written."""
    by_pts = {r["pts"]: r for r in records if "pts" in r}
    by_order = records if not by_pts else []
    written = 0
    try:
        with av.open(str(source)) as reader, av.open(str(target), "w") as writer:
            video_in = reader.streams.video[0]
            video_in.thread_type = "AUTO"
            rate = video_in.average_rate or video_in.guessed_rate or round(fps) or 25
            video_out = writer.add_stream("libx264", rate=rate)
            video_out.width = video_in.codec_context.width
            video_out.height = video_in.codec_context.height
            video_out.pix_fmt = "yuv420p"
            video_out.time_base = video_in.time_base
            audio = {s.index: writer.add_stream_from_template(s) for s in reader.streams.audio}
            for packet in reader.demux(video_in, *reader.streams.audio):
                if packet.stream.index in audio:
                    if packet.dts is not None:
                        packet.stream = audio[packet.stream.index]
                        writer.mux(packet)
                    continue
                for frame in packet.decode():
                    if not isinstance(frame, av.VideoFrame):
                        continue
                    record = by_pts.get(frame.pts) if by_pts else _at(by_order, written)
                    pixels = np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
                    if record is not None and "error" not in record:
                        pixels = draw(pixels, record)
                    out = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                    out.pts, out.time_base = frame.pts, frame.time_base
                    writer.mux(video_out.encode(out))
                    written += 1
            writer.mux(video_out.encode())
    except (av.FFmpegError, OSError) as e:
        raise JobError(f"cannot write the annotated video {target}: {e}") from e
    return written


def _at(records: list[dict[str, Any]], position: int) -> dict[str, Any] | None:
    return records[position] if position < len(records) else None
