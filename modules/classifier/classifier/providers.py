"""Which ONNX Runtime execution providers to ask for, and what to say when one cannot start.

One ordered chain serves every policy: TensorRT, CUDA, OpenVINO, CPU (best first).

- ``auto`` asks for every provider of the chain that this onnxruntime build offers, except
  TensorRT when its libraries cannot be loaded: GPU builds of onnxruntime always list
  TensorRT, and on a device without it ONNX Runtime prints an "EP Error" block before
  retrying. Nobody asked for TensorRT there, so the fallback is normal and logged at INFO.
- ``prefer X`` asks for X, then for the providers after X in the chain that the build
  offers: a GPU that cannot run TensorRT still runs CUDA, not the CPU. When X itself cannot
  start, that is worth a warning: the user asked for it by name.
- ``require X`` asks for X (and the CPU for the nodes X does not support) and fails when X
  is not what runs the model.

The available list and the TensorRT probe are parameters so that the chain is tested on any
machine, GPU or not.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache

from classifier.errors import ProviderError

log = logging.getLogger(__name__)

PROVIDER_NAMES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
# Best first. Every policy walks this one chain.
CHAIN = ("tensorrt", "cuda", "openvino", "cpu")
CPU = PROVIDER_NAMES["cpu"]
TENSORRT = PROVIDER_NAMES["tensorrt"]

# onnxruntime-gpu 1.2x-1.3x links TensorRT 10; its provider library dlopens these by soname.
_TENSORRT_LIBRARIES = {
    "linux": ("libnvinfer.so.10", "libnvonnxparser.so.10"),
    "win32": ("nvinfer_10.dll", "nvonnxparser_10.dll"),
}


class ProviderPolicy(StrEnum):
    AUTO = "auto"  # the best provider that starts; fallbacks are normal, logged at INFO
    PREFER = "prefer"  # the named provider, else the next one of the chain, with a warning
    REQUIRE = "require"  # the named provider or fail


@dataclass(frozen=True)
class ProviderRequest:
    """What the engine asks ONNX Runtime for, and why."""

    providers: tuple[str, ...]  # ONNX Runtime names, in order; the last is always the CPU
    policy: ProviderPolicy
    explicit: str | None  # the provider the user named (prefer/require), None for auto

    def check_in_use(self, in_use: str, model_name: str) -> None:
        """Logs or refuses a session that does not run on the first provider asked for."""
        if in_use == self.providers[0]:
            log.info("%s runs on %s (asked for %s)", model_name, in_use, ", ".join(self.providers))
            return
        message = f"{self.providers[0]} could not start for {model_name}; it runs on {in_use}"
        if self.policy is ProviderPolicy.REQUIRE:
            raise ProviderError(f"{self.providers[0]} is required but {message}")
        if self.explicit is not None:
            log.warning("provider fallback: %s", message)
        else:
            log.info("%s (the next provider of the chain)", message)


@cache
def tensorrt_loadable() -> bool:
    """Whether TensorRT's runtime libraries can be loaded: a dlopen, no session, no GPU work."""
    names = _TENSORRT_LIBRARIES.get(sys.platform)
    if names is None:
        return False
    try:
        for name in names:
            ctypes.CDLL(name)
    except OSError as e:
        log.debug("TensorRT is not loadable here: %s", e)
        return False
    return True


def request_providers(
    provider: str,
    policy: ProviderPolicy,
    available: Sequence[str],
    tensorrt_probe: Callable[[], bool] = tensorrt_loadable,
) -> ProviderRequest:
    """The providers to ask for, given what the onnxruntime build offers (``available``)."""
    if provider != "auto" and provider not in PROVIDER_NAMES:
        raise ProviderError(
            f"unknown execution provider {provider!r}; use auto, {', '.join(PROVIDER_NAMES)}"
        )
    if provider == "auto":
        chain = [PROVIDER_NAMES[p] for p in CHAIN if PROVIDER_NAMES[p] in available]
        if TENSORRT in chain and not tensorrt_probe():
            chain.remove(TENSORRT)
        return ProviderRequest(_ending_in_cpu(chain), ProviderPolicy.AUTO, None)

    name = PROVIDER_NAMES[provider]
    if policy is ProviderPolicy.REQUIRE:
        if name not in available:
            raise ProviderError(
                f"{name} is required but this onnxruntime build offers only {list(available)}"
            )
        return ProviderRequest(_ending_in_cpu([name]), policy, name)

    after = CHAIN[CHAIN.index(provider) + 1 :]
    rest = [PROVIDER_NAMES[p] for p in after if PROVIDER_NAMES[p] in available]
    if name not in available:
        log.warning(
            "%s is not available in this onnxruntime build (it offers %s); using %s",
            name,
            ", ".join(available),
            _ending_in_cpu(rest)[0],
        )
        return ProviderRequest(_ending_in_cpu(rest), ProviderPolicy.PREFER, name)
    return ProviderRequest(_ending_in_cpu([name, *rest]), ProviderPolicy.PREFER, name)


def _ending_in_cpu(providers: list[str]) -> tuple[str, ...]:
    # The CPU provider runs whatever nodes the others do not support; it is always last.
    return (*[p for p in providers if p != CPU], CPU)
