"""Capture at the edge: the desired ``capture`` section, the policies, rate limits, budget."""

from __future__ import annotations

import random
from typing import Any

import pytest

from classifier.frames import FrameMeta, FrameRequest
from classifier.metrics import Metrics
from classifier.model_update.desired import DesiredProperties, DesiredPropertiesError
from classifier.predictions import ModelInfo, Prediction
from classifier.quality.capture_settings import (
    CAPTURE_OFF,
    CaptureStorage,
    Classes,
    Sample,
    Threshold,
)
from classifier.quality.capture_stage import CaptureStage
from classifier.quality.policies import Candidate, CaptureSelector, DailyBudget, RateLimit

EVERY_POLICY = {
    "low_confidence": {"below": 0.5, "per_minute": 30},
    "margin": {"below": 0.1},
    "random": {"probability": 0.01, "per_minute": 6},
    "classes": {"labels": ["star", "heart"], "per_minute": 10},
    "max_bytes_per_day": 1_000_000,
}


def _parse(capture: Any) -> DesiredProperties:
    return DesiredProperties.parse({"$version": 3, "capture": capture})


def test_a_capture_section_with_every_policy_is_read_whole() -> None:
    capture = _parse(EVERY_POLICY).capture
    assert capture.low_confidence == Threshold(0.5, 30)
    assert capture.margin == Threshold(0.1, 60)  # the default rate when none is given
    assert capture.random == Sample(0.01, 6)
    assert capture.classes == Classes(frozenset({"star", "heart"}), 10)
    assert capture.max_bytes_per_day == 1_000_000 and capture.active


@pytest.mark.parametrize("absent", [None, {}])
def test_no_capture_section_captures_nothing(absent: Any) -> None:
    capture = DesiredProperties.parse({"$version": 1, "capture": absent}).capture
    assert capture == CAPTURE_OFF and not capture.active


@pytest.mark.parametrize(
    ("capture", "problem"),
    [
        ({"low_confidence": {"below": 1.5}}, "capture.low_confidence.below is required"),
        ({"margin": {"below": 0.1, "per_minute": 0}}, "capture.margin.per_minute must be"),
        ({"random": {"probability": True}}, "capture.random.probability is required"),
        ({"classes": {"labels": []}}, "capture.classes.labels must be a list"),
        ({"classes": {"labels": "star"}}, "capture.classes.labels must be a list"),
        ({"low_confidence": {"below": 0.5, "treshold": 1}}, "unknown keys ['treshold']"),
        ({"sharpness": {"below": 3}}, "capture has unknown keys ['sharpness']"),
        ({"max_bytes_per_day": -1}, "capture.max_bytes_per_day must be a positive integer"),
        ("everything", "capture must be an object"),
    ],
)
def test_a_bad_capture_section_rejects_the_whole_document(capture: Any, problem: str) -> None:
    doc = {"$version": 4, "inference": {"top_k": 5}, "capture": capture}
    with pytest.raises(DesiredPropertiesError) as caught:
        DesiredProperties.parse(doc)
    assert any(problem in p for p in caught.value.problems), caught.value.problems


def _selector(**settings: Any) -> tuple[CaptureSelector, list[float]]:
    now = [0.0]
    capture = _parse(settings).capture
    return CaptureSelector(capture, random.Random(1), clock=lambda: now[0]), now


def test_a_frame_goes_to_the_first_policy_that_wants_it() -> None:
    selector, _ = _selector(**EVERY_POLICY)
    unsure = Candidate((("star", 0.4), ("heart", 0.35)))
    assert selector.choose(unsure) == ("low_confidence", [])
    close = Candidate((("circle", 0.52), ("hexagon", 0.47)))
    assert selector.choose(close) == ("margin", [])
    listed = Candidate((("heart", 0.99), ("star", 0.01)))
    assert selector.choose(listed) == ("classes", [])
    sure = Candidate((("circle", 0.99), ("ring", 0.01)))
    assert selector.choose(sure)[0] in (None, "random")


def test_margin_is_top_one_alone_when_there_is_no_runner_up() -> None:
    assert Candidate((("circle", 0.05),)).margin == pytest.approx(0.05)
    assert Candidate(()).top1 == 0.0


def test_a_policy_over_its_rate_limit_passes_the_frame_to_the_next_policy() -> None:
    selector, now = _selector(
        low_confidence={"below": 0.5, "per_minute": 6}, margin={"below": 0.2, "per_minute": 60}
    )
    frame = Candidate((("star", 0.3), ("heart", 0.25)))
    assert selector.choose(frame) == ("low_confidence", [])
    # 6 a minute bursts one at a time: the next frame goes to margin, which still has room
    assert selector.choose(frame) == ("margin", ["low_confidence"])
    now[0] += 10.0  # one token back for low_confidence after 10 s
    assert selector.choose(frame) == ("low_confidence", [])


def test_a_rate_limit_allows_its_rate_over_a_minute_and_no_more() -> None:
    now = [0.0]
    limit = RateLimit(60, clock=lambda: now[0])
    taken = 0
    for _ in range(600):  # ten frames a second for a minute
        now[0] += 0.1
        taken += limit.take()
    assert 60 <= taken <= 60 + limit.capacity


def test_random_captures_about_its_probability() -> None:
    selector, now = _selector(random={"probability": 0.25, "per_minute": 6000})
    sure = Candidate((("circle", 0.99),))
    chosen = 0
    for _ in range(2000):
        now[0] += 1.0
        chosen += selector.choose(sure)[0] == "random"
    assert 400 <= chosen <= 600


def test_the_daily_budget_refuses_past_its_bytes_and_starts_again_the_next_day() -> None:
    clock = [1_800_000_000.0]  # 2027-01-15 08:00 UTC
    budget = DailyBudget(1_000, now=lambda: clock[0])
    assert budget.reserve(600) and not budget.reserve(600)
    budget.release(600)
    assert budget.reserve(900)
    clock[0] += 86_400
    assert budget.reserve(1_000) and budget.used_bytes == 1_000


def test_a_chosen_frame_past_the_day_s_budget_is_dropped_and_counted_under_its_policy() -> None:
    # The writer is never started: only the decision at the outcome is under test.
    storage = CaptureStorage(connection_string="UseDevelopmentStorage=true", queue_capacity=4)
    metrics = Metrics()
    stage = CaptureStage(storage, metrics)
    stage.apply(_parse({"random": {"probability": 1.0}, "max_bytes_per_day": 7_000}).capture)
    for i in range(3):
        meta = FrameMeta(f"f{i}")
        request = FrameRequest(meta, b"\xff\xd8\xff" + bytes(1_000))
        model = ModelInfo("m", "1", "0" * 64, "cpu")
        stage.offer(Prediction(meta, (("star", 0.99),), model, {}, 8, 8, request))
    report = stage.report()["policies"]["random"]
    # each capture reserves its frame plus 2 KiB for the sidecar: two fit in 7,000 bytes
    assert (report["selected"], report["dropped_by_reason"]) == (3, {"budget": 1})
    assert stage.queued == 2 and metrics.counters["captures_dropped.random"] == 1
