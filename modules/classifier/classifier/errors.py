"""The module's one error tree. Foreign errors are translated at the boundary with ``from e``.

    ClassifierError
    ├── ConfigError              bad environment or twin settings (rejected whole)
    ├── ModelError               a model cannot be used
    │   ├── ModelSpecError       its self-description (metadata or sidecar) is missing or invalid
    │   ├── ModelLoadError       ONNX Runtime refused the file, or its inputs/outputs do not fit
    │   └── ProviderError        a required execution provider is not available
    ├── FrameError               one frame cannot be scored (carries a stable ``code``)
    └── HubError                 the IoT Hub / edgeHub transport failed
        ├── OutboundRejectedError    edgeHub or the SDK refuses this message: retrying cannot help
        └── HubWedgedError           connected by the SDK's account, but calls stopped completing

A ``FrameError`` never stops the stream: the pipeline counts it, reports it on the ``errors``
output and moves on. Its ``code`` values are part of the published error schema.
"""

from __future__ import annotations

from enum import StrEnum


class ClassifierError(Exception):
    """Base of every error this module raises on purpose."""


class ConfigError(ClassifierError):
    pass


class ModelError(ClassifierError):
    pass


class ModelSpecError(ModelError):
    pass


class ModelLoadError(ModelError):
    pass


class ProviderError(ModelError):
    pass


class HubError(ClassifierError):
    pass


class OutboundRejectedError(HubError):
    """The message itself is refused (too large, not encodable): sending it again cannot help."""


class HubWedgedError(HubError):
    """The SDK reports a connection, but sends or twin calls have not completed for too long."""


class FrameErrorCode(StrEnum):
    EMPTY = "empty_frame"
    TOO_LARGE = "frame_too_large"
    UNSUPPORTED_CONTENT_TYPE = "unsupported_content_type"
    UNRECOGNISED_FORMAT = "unrecognised_format"
    CORRUPT_IMAGE = "corrupt_image"
    DIMENSIONS = "bad_dimensions"
    DECOMPRESSION_BOMB = "decompression_bomb"
    RAW_FORMAT = "unsupported_raw_format"
    RAW_SIZE_MISMATCH = "raw_size_mismatch"
    MALFORMED_JSON = "malformed_json"
    BAD_BASE64 = "bad_base64"
    OVERLOADED = "dropped_queue_full"
    SHUTDOWN = "not_scored_shutdown"
    INFERENCE_FAILED = "inference_failed"
    UNSUPPORTED_CONTENT_ENCODING = "unsupported_content_encoding"
    TOO_MANY_ENTRIES = "too_many_entries"
    UNKNOWN_INPUT = "unknown_input"
    OUTCOME_NOT_SENDABLE = "outcome_not_sendable"
    INTERNAL_ERROR = "internal_error"


class FrameError(ClassifierError):
    def __init__(self, code: FrameErrorCode, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
