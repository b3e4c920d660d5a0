"""One provider chain (TensorRT, CUDA, OpenVINO, CPU) for auto and prefer; require unchanged.

The available-provider list and the TensorRT probe are injected, so these run without a GPU.
"""

from __future__ import annotations

import logging

import pytest

from classifier.errors import ProviderError
from classifier.providers import ProviderPolicy, ProviderRequest, request_providers

TRT, CUDA, OV, CPU = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "OpenVINOExecutionProvider",
    "CPUExecutionProvider",
)
# onnxruntime-gpu lists TensorRT whether or not its libraries are installed.
GPU_BUILD = [TRT, CUDA, CPU]
CPU_BUILD = [CPU]
OPENVINO_BUILD = [OV, CPU]


def _with_tensorrt() -> bool:
    return True


def _without_tensorrt() -> bool:
    return False


def _request(
    provider: str,
    policy: ProviderPolicy,
    available: list[str],
    tensorrt: bool = False,
) -> ProviderRequest:
    probe = _with_tensorrt if tensorrt else _without_tensorrt
    return request_providers(provider, policy, available, probe)


@pytest.mark.parametrize(
    ("available", "tensorrt", "expected"),
    [
        (GPU_BUILD, True, (TRT, CUDA, CPU)),
        (GPU_BUILD, False, (CUDA, CPU)),
        ([TRT, CUDA, OV, CPU], True, (TRT, CUDA, OV, CPU)),
        (OPENVINO_BUILD, False, (OV, CPU)),
        (CPU_BUILD, False, (CPU,)),
    ],
)
def test_auto_walks_the_chain_over_what_this_build_offers(
    available: list[str], tensorrt: bool, expected: tuple[str, ...]
) -> None:
    request = _request("auto", ProviderPolicy.AUTO, available, tensorrt)
    assert request.providers == expected
    assert request.explicit is None


def test_auto_never_probes_tensorrt_on_a_build_without_it() -> None:
    probed = []

    def probe() -> bool:
        probed.append(True)
        return True

    request_providers("auto", ProviderPolicy.AUTO, [CUDA, CPU], probe)
    assert probed == []


def test_auto_keeps_the_chains_order_whatever_order_the_build_lists() -> None:
    request = _request("auto", ProviderPolicy.AUTO, [CPU, CUDA, TRT], tensorrt=True)
    assert request.providers == (TRT, CUDA, CPU)


def test_prefer_tensorrt_falls_back_to_cuda_not_the_cpu() -> None:
    request = _request("tensorrt", ProviderPolicy.PREFER, GPU_BUILD)
    assert request.providers == (TRT, CUDA, CPU)
    assert request.explicit == TRT


def test_prefer_cuda_skips_tensorrt_which_comes_before_it() -> None:
    request = _request("cuda", ProviderPolicy.PREFER, [TRT, CUDA, OV, CPU], tensorrt=True)
    assert request.providers == (CUDA, OV, CPU)


def test_prefer_a_provider_this_build_lacks_takes_the_next_available_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        request = _request("tensorrt", ProviderPolicy.PREFER, [CUDA, CPU])
    assert request.providers == (CUDA, CPU)
    assert "TensorrtExecutionProvider is not available" in caplog.text
    assert "using CUDAExecutionProvider" in caplog.text


def test_prefer_cuda_on_a_cpu_build_runs_on_the_cpu_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        request = _request("cuda", ProviderPolicy.PREFER, CPU_BUILD)
    assert request.providers == (CPU,)
    assert "not available" in caplog.text


def test_prefer_cpu_asks_only_for_the_cpu() -> None:
    assert _request("cpu", ProviderPolicy.PREFER, GPU_BUILD).providers == (CPU,)


def test_require_asks_for_the_named_provider_and_the_cpu_for_unsupported_nodes() -> None:
    request = _request("cuda", ProviderPolicy.REQUIRE, GPU_BUILD)
    assert request.providers == (CUDA, CPU)


def test_require_a_provider_this_build_lacks_fails() -> None:
    with pytest.raises(ProviderError, match="required"):
        _request("cuda", ProviderPolicy.REQUIRE, CPU_BUILD)


def test_unknown_provider_name_is_refused() -> None:
    with pytest.raises(ProviderError, match="unknown execution provider 'tpu'"):
        _request("tpu", ProviderPolicy.PREFER, GPU_BUILD)


def test_auto_fallback_when_a_provider_cannot_start_is_info_not_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    request = _request("auto", ProviderPolicy.AUTO, GPU_BUILD, tensorrt=True)
    with caplog.at_level(logging.INFO):
        request.check_in_use(CUDA, "m.onnx")
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    assert "TensorrtExecutionProvider could not start" in caplog.text


def test_prefer_fallback_when_the_named_provider_cannot_start_is_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    request = _request("tensorrt", ProviderPolicy.PREFER, GPU_BUILD)
    with caplog.at_level(logging.INFO):
        request.check_in_use(CUDA, "m.onnx")
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "runs on CUDAExecutionProvider" in caplog.text


def test_require_fails_when_the_named_provider_is_not_what_runs() -> None:
    request = _request("cuda", ProviderPolicy.REQUIRE, GPU_BUILD)
    with pytest.raises(ProviderError, match="CUDAExecutionProvider is required"):
        request.check_in_use(CPU, "m.onnx")


def test_the_provider_asked_for_running_is_logged_at_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    request = _request("cuda", ProviderPolicy.PREFER, GPU_BUILD)
    with caplog.at_level(logging.INFO):
        request.check_in_use(CUDA, "m.onnx")
    assert [r.levelno for r in caplog.records] == [logging.INFO]


def test_tensorrt_probe_is_false_where_its_libraries_are_missing() -> None:
    from classifier.providers import tensorrt_loadable

    try:
        import ctypes

        ctypes.CDLL("libnvinfer.so.10")
    except OSError:
        assert tensorrt_loadable() is False
    else:
        pytest.skip("TensorRT is installed on this machine")
