"""Video files, RTSP cameras and HTTP (MJPEG) streams, through PyAV (FFmpeg's libraries).

One reader is one opening of the source. FFmpeg's blocking reads are bounded by PyAV's
``timeout`` (open, read), so a camera that stops sending ends ``frames`` with a
``SourceError`` within ``read_timeout_s`` instead of hanging; the streamer then reconnects.
RTP over the RTSP connection (``rtsp_transport=tcp``, the default) loses no packets on a busy
link, where UDP would show as torn frames.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import av.container
import av.video.frame
import numpy as np

from framesource.settings import SourceKind, SourceSettings, redact
from framesource.sources.frames import EncodedFrame, SourceError, encode_rgb, output_size

log = logging.getLogger(__name__)


@dataclass
class AvFrame:
    frame: av.video.frame.VideoFrame
    index: int
    timestamp_s: float
    pts_ms: int | None
    truth: str | None = None

    def encode(self, width: int, height: int, quality: int) -> EncodedFrame:
        w, h = output_size(self.frame.width, self.frame.height, width, height)
        try:
            # swscale resizes and converts in one pass; area averaging when shrinking.
            pixels = self.frame.to_ndarray(format="rgb24", width=w, height=h, interpolation="AREA")
        except (av.FFmpegError, ValueError) as e:
            raise SourceError(f"frame {self.index} cannot be converted: {e}") from e
        return encode_rgb(np.asarray(pixels, dtype=np.uint8), quality)


class AvReader:
    def __init__(self, container: av.container.InputContainer, settings: SourceSettings):
        self._container = container
        self._settings = settings
        self._stream = container.streams.video[0]
        # Frame threads decode ahead: most of the cost of a camera at full rate.
        self._stream.thread_type = "AUTO"

    @classmethod
    def open(cls, settings: SourceSettings) -> AvReader:
        options: dict[str, str] = {}
        if settings.kind is SourceKind.RTSP:
            options["rtsp_transport"] = settings.rtsp_transport
        url = str(settings.path) if settings.kind is SourceKind.FILE else settings.url
        try:
            container = av.open(
                url,
                options=options,
                timeout=(settings.open_timeout_s, settings.read_timeout_s),
            )
        except (av.FFmpegError, OSError) as e:
            raise SourceError(f"cannot open {redact(settings.url)}: {_why(e)}") from e
        if not container.streams.video:
            container.close()
            raise SourceError(f"{redact(settings.url)} has no video stream")
        return cls(container, settings)

    def describe(self) -> dict[str, Any]:
        stream = self._stream
        rate = stream.average_rate or stream.guessed_rate
        return {
            "codec": stream.codec_context.name,
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "fps": round(float(rate), 3) if rate else None,
        }

    def frames(self) -> Iterator[AvFrame]:
        live = self._settings.kind.live
        index = 0
        try:
            for frame in self._container.decode(self._stream):
                seconds = _seconds(frame.pts, frame.time_base)
                pts_ms = None if live or seconds is None else round(seconds * 1000)
                # Streams: the arrival time (camera clocks and RTP timestamps wander).
                timestamp = time.monotonic() if live or seconds is None else seconds
                yield AvFrame(frame, index, timestamp, pts_ms)
                index += 1
        except (av.FFmpegError, OSError) as e:
            raise SourceError(f"reading {redact(self._settings.url)} failed: {_why(e)}") from e

    def close(self) -> None:
        self._container.close()


def _seconds(pts: int | None, time_base: Fraction | None) -> float | None:
    if pts is None or time_base is None:
        return None
    return float(pts * time_base)


def _why(error: BaseException) -> str:
    # FFmpeg's messages may quote the URL, credentials included.
    text = str(error)
    return text.split(": '", 1)[0] if ": '" in text else text
