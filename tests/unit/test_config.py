"""The environment is read once and validated as a whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from classifier.config import DEFAULT_MODEL, ModuleConfig
from classifier.errors import ConfigError
from classifier.frame_queue import OverflowPolicy
from classifier.providers import ProviderPolicy


def test_defaults_need_no_environment() -> None:
    config = ModuleConfig.from_env({})
    assert config.model_path == DEFAULT_MODEL
    assert config.engine.provider == "auto"
    assert config.pipeline.overflow is OverflowPolicy.DROP_OLDEST
    assert (config.input_name, config.predictions_output, config.errors_output) == (
        "frames",
        "predictions",
        "errors",
    )


def test_every_setting_is_read() -> None:
    config = ModuleConfig.from_env(
        {
            "MODEL_PATH": "/models/m.onnx",
            "EXECUTION_PROVIDER": "CUDA",
            "INTRA_OP_THREADS": "2",
            "MAX_BATCH": "16",
            "MAX_WAIT_MS": "12.5",
            "QUEUE_CAPACITY": "10",
            "OVERFLOW_POLICY": "block",
            "TOP_K": "1",
            "CONFIDENCE_THRESHOLD": "0.5",
            "MAX_PIXELS": "1000",
            "RuntimeLogLevel": "debug",
        }
    )
    assert config.model_path == Path("/models/m.onnx")
    assert config.engine.provider == "cuda"
    assert (
        config.engine.policy is ProviderPolicy.PREFER
    )  # naming a provider means "prefer" by default
    assert config.pipeline.max_batch == 16 and config.pipeline.max_wait_ms == 12.5
    assert config.pipeline.overflow is OverflowPolicy.BLOCK
    assert config.pipeline.limits.max_pixels == 1000
    assert config.log_level == "DEBUG"


def test_required_provider_policy_is_kept() -> None:
    config = ModuleConfig.from_env({"EXECUTION_PROVIDER": "tensorrt", "PROVIDER_POLICY": "require"})
    assert config.engine.policy is ProviderPolicy.REQUIRE


def test_all_problems_are_named_in_one_error() -> None:
    with pytest.raises(ConfigError) as info:
        ModuleConfig.from_env(
            {
                "MAX_BATCH": "zero",
                "TOP_K": "0",
                "OVERFLOW_POLICY": "sometimes",
                "EXECUTION_PROVIDER": "tpu",
            }
        )
    message = str(info.value)
    for name in ("MAX_BATCH", "TOP_K", "OVERFLOW_POLICY", "EXECUTION_PROVIDER"):
        assert name in message


def test_blank_values_mean_default() -> None:
    assert ModuleConfig.from_env({"MAX_BATCH": "  "}).pipeline.max_batch == 8
