"""The outcome message's JSON body: the standard library, orjson and msgspec side by side.

    python benchmarks/outcome_encoding.py [--count 50000]

One prediction as the pipeline makes it (three labels, six timings, a source and a capture
time), encoded the three ways in one run, each the median of five rounds; then the whole
``Prediction.to_message`` the module uses (orjson, the model's part encoded once). All three
bodies are checked to decode to the same document first.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable

import msgspec
import orjson

from benchmarks.machine import describe_machine
from classifier.frames import FrameMeta
from classifier.predictions import ModelInfo, Prediction


def sample() -> Prediction:
    info = ModelInfo("default", "1.0.0", "ab" * 32, "CPUExecutionProvider")
    return Prediction(
        FrameMeta("cam-1-000123", "cam-1", "2026-12-06T10:00:00.000Z"),
        (("red", 0.91234567), ("green", 0.0512345), ("blue", 0.0012)),
        info,
        {
            "queue": 1.2345,
            "decode": 0.2222,
            "preprocess": 0.0333,
            "inference": 3.4444,
            "batch_size": 32.0,
            "total": 5.5555,
        },
        640,
        480,
    )


def per_call_us(step: Callable[[], object], count: int) -> float:
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(count):
            step()
        rounds.append((time.perf_counter() - started) / count * 1e6)
    return statistics.median(rounds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=50_000)
    args = parser.parse_args(argv)
    prediction = sample()
    document = prediction.to_dict()
    encoder = msgspec.json.Encoder()
    ways: dict[str, Callable[[], bytes]] = {
        "json (standard library)": lambda: json.dumps(document, separators=(",", ":")).encode(),
        "orjson": lambda: orjson.dumps(document),
        "msgspec": lambda: encoder.encode(document),
    }
    bodies = {name: json.loads(way()) for name, way in ways.items()}
    assert all(body == bodies["orjson"] for body in bodies.values()), "the encoders disagree"
    print(describe_machine())
    print(f"{len(ways['orjson']())}-byte prediction body, median of 5 rounds of {args.count}\n")
    print("| encoder | us per body | vs json |")
    print("| --- | --- | --- |")
    base = per_call_us(ways["json (standard library)"], args.count)
    for name, way in ways.items():
        us = base if name.startswith("json") else per_call_us(way, args.count)
        print(f"| {name} | {us:.2f} | {base / us:.1f}x |")
    whole = per_call_us(prediction.to_message, args.count)
    print(f"| the module's Prediction.to_message (orjson) | {whole:.2f} | whole message |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
