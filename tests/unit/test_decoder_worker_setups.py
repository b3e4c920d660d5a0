"""A decoder process keeps how to decode for the few models it has seen lately, not for every
model of a long run, and rebuilds one it let go when a batch for it still comes."""

from __future__ import annotations

from dataclasses import replace

from classifier.decode_limits import FrameLimits
from classifier.decoding.worker import MAX_SETUPS, _set_up, setup_bytes
from classifier.model_spec import Preprocessing
from classifier.preprocess import Preprocessor
from tests.support.tiny_models import colour_spec


def test_setups_are_kept_for_the_latest_models_only_and_rebuilt_when_needed_again() -> None:
    base = colour_spec().preprocessing
    specs = [replace(base, width=8 + i, height=8 + i) for i in range(MAX_SETUPS + 3)]
    setups: dict[bytes, tuple[Preprocessor, FrameLimits]] = {}
    for spec in specs:
        preprocessor, limits = _set_up(setups, setup_bytes(spec, FrameLimits()))
        assert preprocessor.spec == spec and limits == FrameLimits()
    assert len(setups) == MAX_SETUPS
    again, _ = _set_up(setups, setup_bytes(specs[0], FrameLimits()))
    assert again.spec == specs[0]
    latest = setup_bytes(specs[-1], FrameLimits())
    assert _set_up(setups, latest) is setups[latest]  # the same one, not rebuilt


def test_the_same_setup_is_pickled_once() -> None:
    spec: Preprocessing = colour_spec().preprocessing
    assert setup_bytes(spec, FrameLimits()) is setup_bytes(spec, FrameLimits())
