"""A folder of images, sent in name order: one frame each, at ``fps`` when pacing.

A JPEG that needs no resizing is sent as it is (no decode, no second lossy encode); other
images are decoded with PyAV and encoded. A file that cannot be read or decoded is skipped
with a warning: one bad image in a folder does not stop the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from framesource.settings import SourceSettings
from framesource.sources.frames import EncodedFrame, SourceError, encode_rgb, output_size

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
_JPEG_MAGIC = b"\xff\xd8\xff"
# Larger files are not frames (a mislabelled video, a disk image): skipped.
MAX_IMAGE_BYTES = 64 * 1024 * 1024


@dataclass
class FolderFrame:
    path: Path
    index: int
    timestamp_s: float
    pts_ms: int | None = None
    truth: str | None = None

    def encode(self, width: int, height: int, quality: int) -> EncodedFrame:
        try:
            data = self.path.read_bytes()
            if len(data) > MAX_IMAGE_BYTES:
                raise SourceError(f"{self.path.name} is larger than {MAX_IMAGE_BYTES} bytes")
            with av.open(str(self.path)) as container:
                frame = next(container.decode(video=0))
                w, h = output_size(frame.width, frame.height, width, height)
                if data.startswith(_JPEG_MAGIC) and (w, h) == (frame.width, frame.height):
                    return EncodedFrame(data, w, h)
                pixels = frame.to_ndarray(format="rgb24", width=w, height=h)
        except (av.FFmpegError, OSError, StopIteration) as e:
            raise SourceError(f"image {self.path.name} cannot be read: {e!r}") from e
        return encode_rgb(np.asarray(pixels, dtype=np.uint8), quality)


class FolderReader:
    def __init__(self, folder: Path, fps: float) -> None:
        self._folder = folder
        self._fps = fps
        self._count = 0

    @classmethod
    def open(cls, settings: SourceSettings) -> FolderReader:
        folder = settings.path
        if not folder.is_dir():
            raise SourceError(f"image folder {folder} does not exist")
        return cls(folder, settings.fps)

    def describe(self) -> dict[str, Any]:
        return {"codec": "images", "files": self._count}

    def frames(self) -> Iterator[FolderFrame]:
        # Listed at each opening: files added meanwhile are sent on the next pass (loop).
        try:
            paths = sorted(
                p
                for p in self._folder.iterdir()
                if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            )
        except OSError as e:
            raise SourceError(f"cannot list {self._folder}: {e}") from e
        self._count = len(paths)
        period_s = 1.0 / self._fps if self._fps > 0 else 0.0
        for index, path in enumerate(paths):
            yield FolderFrame(path, index, index * period_s)

    def close(self) -> None:
        pass
