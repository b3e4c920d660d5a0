"""``train`` (fine-tuning on labelled captures) and ``evaluate`` (models side by side).

    train --init-from MODEL.onnx --labels DIR/labels.jsonl --out NEW.onnx [--version V]
    evaluate --model A.onnx [--model B.onnx] [--labels DIR/labels.jsonl] [--drift angle=1]

TensorFlow is imported only when ``train`` runs: every other command starts without it.
Training from scratch on the synthetic data is ``python -m cloud_tools.train``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cloud_tools.dataset.evaluate import eval_sets, evaluation_table, parse_drift


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    train = commands.add_parser(
        "train", help="fine-tune a seed CNN on labelled captures, with synthetic replay"
    )
    train.add_argument("--init-from", type=Path, required=True, help="the model to start from")
    train.add_argument("--labels", type=Path, required=True, help="a dataset's labels.jsonl")
    train.add_argument("--out", type=Path, required=True)
    train.add_argument("--version", default="1.1.0", help="the new model's version")
    train.add_argument("--replay", type=int, default=3000, help="synthetic samples mixed in")
    train.add_argument("--epochs", type=int, default=4)
    train.add_argument("--learning-rate", type=float, default=0.005)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--json", action="store_true", help="print the figures as JSON")
    train.set_defaults(run=_train)

    evaluate = commands.add_parser("evaluate", help="models' accuracy side by side")
    evaluate.add_argument("--model", type=Path, action="append", required=True)
    evaluate.add_argument("--labels", type=Path, help="a dataset's labels.jsonl (its hold-out)")
    evaluate.add_argument("--synthetic", type=int, default=2000, help="synthetic test images")
    evaluate.add_argument(
        "--drift", help="also the camera stream with this drift, e.g. angle=1,lighting=0.5"
    )
    evaluate.add_argument("--stream", type=int, default=1000, help="camera frames per stream")
    evaluate.set_defaults(run=_evaluate)


def _train(args: argparse.Namespace) -> int:
    from cloud_tools.training.fine_tune import FineTuneSettings, fine_tune

    figures = fine_tune(
        FineTuneSettings(
            init_from=args.init_from,
            labels=args.labels,
            out=args.out,
            version=args.version,
            replay=args.replay,
            epochs=args.epochs,
            learning_rate=args.learning_rate,
            seed=args.seed,
        )
    )
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    before, after = figures["before"], figures["after"]
    print(f"model      {args.out} ({figures['sha256'][:12]}), version {args.version}")
    print(
        f"data       {figures['captures_train']} labelled captures (x replay "
        f"{figures['replay']} synthetic), {figures['captures_held_out']} held out"
    )
    for name in ("captures_held_out", "synthetic_held_out"):
        print(f"{name:<20} before {_pct(before[name])}  after {_pct(after[name])}")
    print(f"time       fit {figures['fit_duration_s']:.0f} s, total {figures['total_s']:.0f} s")
    return 0


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _evaluate(args: argparse.Namespace) -> int:
    drift = parse_drift(args.drift) if args.drift else None
    sets = eval_sets(args.labels, args.synthetic, drift, args.stream)
    for line in evaluation_table(args.model, sets):
        print(line)
    return 0
