"""One paragraph that says what machine a benchmark ran on, printed above every table."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    return "unknown memory"


def _gpu() -> str:
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return "no GPU provider"
    return "CUDA provider available"


def describe_machine() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"machine: {_cpu_model()}, {cores} cores usable, {_memory_gib()}, {_gpu()}; "
        f"{platform.system()} {platform.machine()}, Python {platform.python_version()}, "
        f"onnxruntime {ort.__version__}, OpenCV {cv2.__version__}, numpy {np.__version__}"
    )
