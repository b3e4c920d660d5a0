"""The module's error tree, a branch of the shared library's (``edge_module.errors``: its
``HubError``s are the transport's). Foreign errors are translated at the boundary with ``from e``.

    EdgeModuleError                  (edge_module.errors)
    ├── SettingsError                (edge_module.errors)
    ├── HubError ...                 the IoT Hub / edgeHub transport (edge_module.errors)
    └── ClassifierError
        ├── ConfigError              bad environment or twin settings (also a SettingsError)
        ├── ModelError               a model cannot be used
        │   ├── ModelSpecError       its self-description (metadata or sidecar) is missing or invalid
        │   ├── ModelLoadError       ONNX Runtime refused the file
        │   │   └── ModelIncompatibleError  its inputs/outputs do not fit its spec or the pipeline
        │   └── ProviderError        a required execution provider is not available
        ├── FrameError               one frame cannot be scored (carries a stable ``code``)
        └── ModelUpdateError         a model update through the twin failed (carries a ``code``)

A ``ModelUpdateError`` never stops the module: the model that served before keeps serving, and
the code and reason are reported in the twin's reported properties.

A ``FrameError`` never stops the stream: the pipeline counts it, reports it on the ``errors``
output and moves on. Its ``code`` values are part of the published error schema.
"""

from __future__ import annotations

from enum import StrEnum

from edge_module.errors import EdgeModuleError, SettingsError


class ClassifierError(EdgeModuleError):
    """Base of every error this module raises on purpose."""


class ConfigError(ClassifierError, SettingsError):
    pass


class ModelError(ClassifierError):
    pass


class ModelSpecError(ModelError):
    pass


class ModelLoadError(ModelError):
    pass


class ModelIncompatibleError(ModelLoadError):
    pass


class ProviderError(ModelError):
    pass


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
    CLAIM_CHECK_MISSING = "claim_check_missing"  # the referenced file is gone
    CLAIM_CHECK_ALTERED = "claim_check_altered"  # its size or sha256 differ from the reference
    CLAIM_CHECK_INVALID = "claim_check_invalid"  # a malformed reference, or not a plain file
    CLAIM_CHECK_UNAVAILABLE = "claim_check_unavailable"  # this module has no claim-check volume
    INTERNAL_ERROR = "internal_error"


class FrameError(ClassifierError):
    def __init__(self, code: FrameErrorCode, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class UpdateErrorCode(StrEnum):
    """Why a model update failed; reported as ``modelUpdate.error.code``. Stable values."""

    INVALID_DESIRED = "invalid_desired"  # the desired properties failed validation
    UNSUPPORTED_URL = "unsupported_url"  # not https, file or (when allowed) http
    INSECURE_URL = "insecure_url"  # plain http on a device that does not allow it
    SAS_EXPIRED = "sas_expired"  # the storage refused a SAS whose expiry has passed
    ACCESS_DENIED = "access_denied"  # 401/403 for another reason
    NOT_FOUND = "not_found"  # 404, or a missing file:// path
    HTTP_ERROR = "http_error"  # any other refusal by the server
    DOWNLOAD_FAILED = "download_failed"  # network errors or 5xx after every retry
    DOWNLOAD_TIMEOUT = "download_timeout"  # connect or read timeouts after every retry
    TRUNCATED = "truncated"  # the body ended early on every attempt
    TOO_LARGE = "too_large"  # larger than MODEL_MAX_BYTES
    SIZE_MISMATCH = "size_mismatch"  # not the size the desired properties promised
    INSUFFICIENT_DISK = "insufficient_disk"  # the download would not leave the reserve free
    SHA256_MISMATCH = "sha256_mismatch"
    SIGNATURE_REQUIRED = "signature_required"  # the device has a key; the model is unsigned
    SIGNATURE_INVALID = "signature_invalid"
    MODEL_INVALID = "model_invalid"  # ONNX Runtime refuses the file, or its spec is bad
    MODEL_INCOMPATIBLE = "model_incompatible"  # inputs/outputs do not fit the pipeline
    PROVIDER_UNAVAILABLE = "provider_unavailable"  # a required execution provider is missing
    SELF_TEST_FAILED = "self_test_failed"
    FAILED_ON_LIVE_FRAMES = "failed_on_live_frames"  # inference failed on probation: rolled back
    ROLLED_BACK = "rolled_back"  # the rollback method put the previous model back
    CRASHED_WHILE_LOADING = "crashed_while_loading"  # the process died while trying the model
    CACHE_UNAVAILABLE = "cache_unavailable"  # MODEL_CACHE_DIR cannot be written
    CACHE_CORRUPT = "cache_corrupt"  # a cached model no longer matches its sha256


class ModelUpdateError(ClassifierError):
    def __init__(self, code: UpdateErrorCode, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code.value, "reason": self.reason}
