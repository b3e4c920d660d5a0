"""Histograms give bounded-error percentiles; top-k picks the best classes above the threshold."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from classifier.metrics import Histogram, Metrics
from classifier.predictions import FEW_LABELS, _rounded, top_labels, top_labels_batch


def test_percentiles_are_within_one_bucket() -> None:
    hist = Histogram()
    for value in range(1, 1001):
        hist.observe(value / 10)  # 0.1 .. 100 ms
    assert hist.percentile(0.5) == pytest.approx(50, rel=0.25)
    assert hist.percentile(0.99) == pytest.approx(99, rel=0.25)
    assert hist.percentile(1.0) == pytest.approx(100)


def test_empty_histogram_reports_zero() -> None:
    assert Histogram().summary()["p99_ms"] == 0.0


def test_snapshot_holds_counters_and_latencies() -> None:
    metrics = Metrics()
    metrics.count("frames", 3)
    metrics.observe("decode", 1.5)
    snap = metrics.snapshot()
    assert snap["counters"] == {"frames": 3}
    assert snap["latency"]["decode"]["count"] == 1


def test_top_k_is_sorted_and_thresholded() -> None:
    scores = np.array([0.05, 0.6, 0.1, 0.25], np.float32)
    labels = ("a", "b", "c", "d")
    assert [label for label, _ in top_labels(scores, labels, 3, 0.0)] == ["b", "d", "c"]
    assert [label for label, _ in top_labels(scores, labels, 3, 0.2)] == ["b", "d"]
    best_label, best_p = top_labels(scores, labels, 10, 0.0)[0]
    assert best_label == "b"
    assert best_p == pytest.approx(0.6)
    assert top_labels(scores, labels, 2, 0.99) == ()


def test_rounded_timings_and_confidences_read_as_round_would_write_them() -> None:
    values = random.Random(7)
    for _ in range(20_000):
        # Timings up to a day in milliseconds; scores as probabilities or logits.
        ms = values.random() * values.choice([1.0, 1e3, 1e8])
        score = values.random() * values.choice([1.0, 100.0])
        assert _rounded(ms, 1e3) == round(ms, 3)
        assert _rounded(score, 1e6) == round(score, 6)
    assert math.isnan(_rounded(math.nan, 1e6))  # a model's NaN score is reported, not a crash
    assert _rounded(math.inf, 1e3) == math.inf


@pytest.mark.parametrize(
    ("frames", "classes"), [(1, 10), (64, 3), (64, FEW_LABELS), (64, FEW_LABELS + 1), (64, 1000)]
)
def test_batch_ranking_matches_sorting_each_row_whatever_the_sizes(
    frames: int, classes: int
) -> None:
    labels = [f"class-{i}" for i in range(classes)]
    scores = np.random.default_rng(classes).random((frames, classes), dtype=np.float32)
    ranked = top_labels_batch(scores, labels, 5, 0.5)
    for row, got in zip(scores.tolist(), ranked, strict=True):
        expected = sorted(zip(labels, row, strict=True), key=lambda pair: -pair[1])[:5]
        assert got == tuple(pair for pair in expected if pair[1] >= 0.5)


def test_a_batch_of_observations_counts_as_each_one_alone() -> None:
    values = [0.01, 0.05, 0.0625, 1.0, 3.3, 3.3, 250.0, 1e9]
    one_by_one, at_once = Histogram(), Histogram()
    for value in values:
        one_by_one.observe(value)
    at_once.observe_all(values)
    at_once.observe_all([])
    assert vars(at_once) == pytest.approx(vars(one_by_one))
