"""``python -m cloud_tools quantize MODEL.onnx --out MODEL-int8.onnx``: an INT8 copy, checked.

    --calibration synthetic|DIR    frames the quantiser calibrates on (default: the synthetic
                                   generator's train split, the default model's distribution)
    --held-out synthetic|DIR       labelled images to compare both models on (DIR: one
                                   sub-folder per label); default: the synthetic test split
    --max-loss-points 1.0          fail (exit 1) when INT8 loses more accuracy than this

Prints both accuracies; the file records them in its spec (``info.quantization``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from classifier.preprocess import Preprocessor
from cloud_tools.errors import FAILED, USAGE, CliError
from cloud_tools.model_file import ModelFileError, read_spec
from cloud_tools.quantize import folder_tensors, quantize_model, synthetic_tensors


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("quantize", help="static INT8 (QDQ) copy of a model, checked")
    parser.add_argument("model", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--calibration", default="synthetic", help="synthetic or a folder")
    parser.add_argument("--calibration-count", type=int, default=512)
    parser.add_argument("--held-out", default="synthetic", help="synthetic or a labelled folder")
    parser.add_argument("--held-out-count", type=int, default=10_000)
    parser.add_argument("--method", choices=("minmax", "entropy", "percentile"), default="minmax")
    parser.add_argument("--per-tensor", action="store_true", help="one scale per weight tensor")
    parser.add_argument(
        "--reduce-range",
        action="store_true",
        help="7-bit weights: avoids saturation on x86 CPUs without VNNI",
    )
    parser.add_argument("--max-loss-points", type=float, default=1.0)
    parser.set_defaults(run=_quantize)


def _quantize(args: argparse.Namespace) -> int:
    try:
        spec = read_spec(args.model)
    except ModelFileError as e:
        raise CliError(str(e), USAGE) from e
    pre = Preprocessor(spec.preprocessing)
    if args.calibration == "synthetic":
        calibration, _ = synthetic_tensors(pre, "train", args.calibration_count)
    else:
        calibration, _ = folder_tensors(pre, Path(args.calibration), None, args.calibration_count)
    if args.held_out == "synthetic":
        held, labels = synthetic_tensors(pre, "test", args.held_out_count)
    else:
        held, labels = folder_tensors(pre, Path(args.held_out), spec.labels, args.held_out_count)
    report = quantize_model(
        args.model,
        args.out,
        (calibration, args.calibration),
        (held, labels, args.held_out),
        per_channel=not args.per_tensor,
        reduce_range=args.reduce_range,
        method=args.method,
    )
    print(f"wrote {report.path}: {report.spec.name} {report.spec.version}, sha256 {report.sha256}")
    print(
        f"held-out accuracy on {report.held_out} images: fp32 {report.fp32_accuracy:.4f}, "
        f"int8 {report.int8_accuracy:.4f} ({report.accuracy_loss_points:+.2f} points lost); "
        f"calibrated on {report.calibration} images"
    )
    if report.accuracy_loss_points > args.max_loss_points:
        print(f"error: more than {args.max_loss_points} points lost")
        return FAILED
    return 0
