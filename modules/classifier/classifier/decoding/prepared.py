"""A frame after the decode stage: its tensor (or why it has none), size and stage timings.

``prepare_frames`` is the per-frame work every decoder backend does, in a thread or in a
worker process: decode with the module's own safe decoder, then preprocess for the model,
writing into a caller's buffer row when one is given.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from classifier.decode import decode_frame
from classifier.decode_limits import FrameLimits
from classifier.errors import FrameError, FrameErrorCode
from classifier.frames import FrameRequest
from classifier.preprocess import FloatArray, Preprocessor

log = logging.getLogger(__name__)


@dataclass
class PreparedFrame:
    request: FrameRequest
    tensor: FloatArray | None = None
    error: FrameError | None = None
    width: int = 0
    height: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)


# What a decoder reports for one frame besides its tensor: (width, height, timings in ms,
# (error code, reason) or None). A plain tuple, because a worker process sends one per frame
# through its pipe, where a tuple pickles and unpickles about four times faster than a
# dataclass (0.14 against 0.63 us to pickle, docs/benchmarks.md section 10c).
FrameResult = tuple[int, int, dict[str, float], tuple[str, str] | None]


def prepare_one(
    request: FrameRequest,
    preprocessor: Preprocessor,
    limits: FrameLimits,
    out: FloatArray | None = None,
) -> tuple[FloatArray | None, FrameResult]:
    """Decodes and preprocesses one frame; never raises (a failure is in the result)."""
    try:
        if request.rejected is not None:
            raise request.rejected
        image = decode_frame(request, limits, preprocessor.spec)
        tensor = preprocessor(image, out)
        return tensor, (image.width, image.height, image.timings_ms, None)
    except FrameError as e:
        return None, (0, 0, {}, (e.code.value, e.reason))
    except Exception as e:  # a decoder bug must cost one frame, not the stream
        log.exception("unexpected error decoding frame %r", request.meta.frame_id)
        reason = f"decoding failed: {e!r}"
        return None, (0, 0, {}, (FrameErrorCode.INTERNAL_ERROR.value, reason))


def to_prepared(
    request: FrameRequest, tensor: FloatArray | None, result: FrameResult, queue_ms: float
) -> PreparedFrame:
    width, height, timings_ms, failed = result
    error = None if failed is None else FrameError(FrameErrorCode(failed[0]), failed[1])
    return PreparedFrame(
        request,
        tensor if error is None else None,
        error,
        width,
        height,
        {"queue": queue_ms, **timings_ms},
    )


def prepare_frames(
    requests: Sequence[FrameRequest],
    preprocessor: Preprocessor,
    limits: FrameLimits,
    picked_s: float,
    out_row: Callable[[int], FloatArray | None] = lambda i: None,
) -> list[PreparedFrame]:
    prepared = []
    for i, request in enumerate(requests):
        tensor, result = prepare_one(request, preprocessor, limits, out_row(i))
        prepared.append(
            to_prepared(request, tensor, result, (picked_s - request.received_s) * 1000)
        )
    return prepared
