"""``dataset stats``: what a dataset folder holds, for deciding what to label and train on."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from cloud_tools.dataset.captures import captures, read_labels


def dataset_stats(folder: Path) -> dict[str, Any]:
    found = captures(folder)
    labels = read_labels(folder)
    by: dict[str, Counter[str]] = {
        name: Counter() for name in ("device", "day", "policy", "model", "top1")
    }
    confidence = 0.0
    agreed = labelled = 0
    for capture in found:
        sidecar = capture.sidecar
        model = sidecar.get("model") or {}
        by["device"][str(sidecar.get("device"))] += 1
        by["day"][capture.key.split("/")[1] if "/" in capture.key else "?"] += 1
        by["policy"][capture.policy] += 1
        by["model"][f"{model.get('name')} {model.get('version')}"] += 1
        top = capture.top_k[0] if capture.top_k else ("?", 0.0)
        by["top1"][top[0]] += 1
        confidence += top[1]
        record = labels.get(capture.key)
        if record is not None:
            labelled += 1
            agreed += record.get("label") == top[0]
    return {
        "captures": len(found),
        "bytes": sum(c.frame_path.stat().st_size for c in found),
        "mean_top1_confidence": round(confidence / len(found), 4) if found else None,
        "labelled": labelled,
        "model_agrees_with_label": round(agreed / labelled, 4) if labelled else None,
        "held_out": sum(1 for c in found if c.held_out),
        **{f"by_{name}": dict(counts.most_common()) for name, counts in by.items()},
    }


def print_stats(stats: dict[str, Any]) -> None:
    print(f"captures   {stats['captures']} ({stats['bytes'] / 1e6:.1f} MB)")
    print(f"labelled   {stats['labelled']} (held out from training: {stats['held_out']})")
    if stats["mean_top1_confidence"] is not None:
        print(f"top-1      mean confidence {stats['mean_top1_confidence']:.3f}")
    if stats["model_agrees_with_label"] is not None:
        print(f"model      agrees with the label on {stats['model_agrees_with_label']:.1%}")
    for name in ("device", "day", "policy", "model", "top1"):
        counts = stats[f"by_{name}"]
        shown = ", ".join(f"{k} {v}" for k, v in counts.items())
        print(f"{name:<10} {shown}")
