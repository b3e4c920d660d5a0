"""Caps OpenCV's own image-size limits to the module's, before OpenCV is loaded.

Why: the header check (``image_header``) refuses what claims too many pixels, but only a
limit inside the decoder holds when the header and the data disagree. OpenCV has one
(``OPENCV_IO_MAX_IMAGE_PIXELS``, default 2^30 pixels, i.e. 3 GB of BGR), read once from the
environment when the library loads: so it must be set before the first ``import cv2``, which
is why the package's ``__init__`` calls this. Values come from ``MAX_PIXELS`` and
``MAX_SIDE``; an unreadable value leaves the default here and is reported by
``ModuleConfig.from_env``, which refuses to start.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

from classifier.decode_limits import FrameLimits

_CAPS = (
    ("MAX_PIXELS", "OPENCV_IO_MAX_IMAGE_PIXELS", FrameLimits.max_pixels),
    ("MAX_SIDE", "OPENCV_IO_MAX_IMAGE_WIDTH", FrameLimits.max_side),
    ("MAX_SIDE", "OPENCV_IO_MAX_IMAGE_HEIGHT", FrameLimits.max_side),
)


# Whether the package's __init__ set the limits before OpenCV was loaded.
applied_before_load = False


def cap_opencv_image_size(env: MutableMapping[str, str] | None = None) -> bool:
    """Sets OpenCV's limits from the module's; False when OpenCV was loaded already (too late)."""
    global applied_before_load
    env = os.environ if env is None else env
    for ours, opencv, default in _CAPS:
        env[opencv] = str(_positive_int(env.get(ours), default))
    applied_before_load = "cv2" not in sys.modules
    return applied_before_load


def _positive_int(raw: str | None, default: int) -> int:
    try:
        value = int((raw or "").strip())
    except ValueError:
        return default
    return value if value > 0 else default
