"""Where frames come from, by the kind of the source's URL (an explicit registry: the readers
import PyAV or synthdata, so each is imported only when a source of its kind is opened).

    open_reader(settings) -> FrameReader    synthetic, file (video), folder (images), rtsp, http
"""

from __future__ import annotations

from framesource.settings import SourceKind, SourceSettings
from framesource.sources.frames import EncodedFrame, FrameReader, SourceError, SourceFrame

__all__ = ["EncodedFrame", "FrameReader", "SourceError", "SourceFrame", "open_reader"]


def open_reader(settings: SourceSettings) -> FrameReader:
    """Opens the source; ``SourceError`` when it cannot be opened now."""
    kind = settings.kind
    if kind is SourceKind.SYNTHETIC:
        from framesource.sources.synthetic import SyntheticReader

        return SyntheticReader.open(settings)
    if kind is SourceKind.FOLDER:
        from framesource.sources.folder import FolderReader

        return FolderReader.open(settings)
    from framesource.sources.av_stream import AvReader

    return AvReader.open(settings)
