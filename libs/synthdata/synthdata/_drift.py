"""Camera drift: what changes when a camera ages, moves or its scene changes, as strengths.

Each kind of drift is a strength in [0, 1]: 0 leaves the frame as the model was trained on it,
1 is the strongest that a person can still label at a glance. They combine:

    lighting     the scene darkens and flattens (gain down to 0.3, gamma up to 1.8)
    colour_cast  a warm white-balance error (red up to +90%, green -10%, blue -75%)
    blur         defocus, up to a Gaussian sigma of 5% of the short side
    noise        low-light chroma noise in blotches (about 64 on the short side), up to sigma
                 45 (0-255 scale): per-pixel noise would average away in the shrink to 32x32
    background   a fraction of frames get a backdrop never seen in training (bold tiles)
    angle        the camera tilts: frames rotate by 37..75 degrees, beyond training's 30 (edges
                 smear outward: a mirrored border would show a second shape)

Drift draws its own randomness from a generator of its own (``drift_rng``), so a drifted frame
shows the same scene as the undrifted frame of the same index, only seen differently, and an
undrifted stream is bit-for-bit what it was before drift existed.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import cv2
import numpy as np

from synthdata._dataset import jpeg_round_trip, sample_rng, shrink
from synthdata._render import render
from synthdata._shapes import LABELS

DRIFT_KINDS = ("lighting", "colour_cast", "blur", "noise", "background", "angle")
# The spawn-key branch that keeps drift's draws apart from the scene's (sample_rng uses (i,)).
_DRIFT_BRANCH = 0xD1F7


@dataclass(frozen=True)
class Drift:
    lighting: float = 0.0
    colour_cast: float = 0.0
    blur: float = 0.0
    noise: float = 0.0
    background: float = 0.0
    angle: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"drift {f.name} must be in [0, 1], got {value}")

    @property
    def active(self) -> bool:
        return any(getattr(self, f.name) > 0 for f in fields(self))

    def to_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def only(cls, kind: str, strength: float = 1.0) -> Drift:
        """One kind of drift alone, e.g. ``Drift.only("blur")``."""
        if kind not in DRIFT_KINDS:
            raise ValueError(f"unknown drift {kind!r} (known: {', '.join(DRIFT_KINDS)})")
        fields_: dict[str, Any] = {kind: strength}
        return cls(**fields_)


NO_DRIFT = Drift()


def drift_rng(seed: int, index: int) -> np.random.Generator:
    """The generator behind the drift of sample ``index`` of the stream with ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index, _DRIFT_BRANCH)))


def wants_backdrop(drift: Drift, rng: np.random.Generator) -> bool:
    """Whether this frame's background is replaced; drawn first, so the other draws follow."""
    return drift.background > 0 and bool(rng.random() < drift.background)


def paint_backdrop(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Bold tiles in two saturated colours: a wall the training set never showed."""
    unit = min(width, height)
    tile = max(2, round(rng.uniform(0.08, 0.2) * unit))
    hues = rng.integers(0, 180, 2)
    colours = np.array(
        [[[h, int(rng.integers(150, 256)), int(rng.integers(120, 256))]] for h in hues],
        np.uint8,
    )
    rgb_pair = cv2.cvtColor(colours, cv2.COLOR_HSV2RGB).reshape(2, 3)
    ys = np.arange(height)[:, None] // tile
    xs = (np.arange(width)[None, :] + (ys % 2) * tile // 2) // tile  # offset rows: bricks
    pattern = ((xs + ys) % 2).astype(np.uint8)
    result: np.ndarray = np.take(rgb_pair, pattern, axis=0)
    # mortar lines between the bricks, a further texture of its own
    result[(np.arange(height) % tile) == 0, :] = 235
    return result


def apply_drift(image: np.ndarray, drift: Drift, rng: np.random.Generator) -> np.ndarray:
    """The frame as the drifted camera sees it (uint8 RGB in, uint8 RGB out, same size).

    Order follows light into a camera: the camera's angle on the scene, then exposure and
    white balance, then defocus, then sensor noise on what reaches the sensor.
    """
    if not drift.active:
        return image
    height, width = image.shape[:2]
    unit = min(width, height)
    out = image
    if drift.angle > 0:
        degrees = rng.uniform(0.5, 1.0) * 75.0 * drift.angle * rng.choice((-1.0, 1.0))
        matrix = cv2.getRotationMatrix2D((width / 2, height / 2), float(degrees), 1.0)
        out = cv2.warpAffine(
            out, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
    if drift.lighting > 0 or drift.colour_cast > 0:
        gain = 1.0 - 0.7 * drift.lighting
        gamma = 1.0 + 0.8 * drift.lighting
        c = drift.colour_cast
        cast = np.array([1.0 + 0.9 * c, 1.0 - 0.1 * c, 1.0 - 0.75 * c])
        levels = np.arange(256, dtype=np.float64)[:, None] / 255.0
        curve = 255.0 * (levels**gamma) * gain * cast
        lut = np.clip(curve, 0, 255).astype(np.uint8).reshape(256, 1, 3)
        out = cv2.LUT(out, lut)
    if drift.blur > 0:
        out = cv2.GaussianBlur(out, (0, 0), max(0.3, 0.05 * drift.blur * unit))
    if drift.noise > 0:
        cells = 64 / unit
        grid = (max(2, round(width * cells)), max(2, round(height * cells)))
        coarse = rng.normal(0.0, 45.0 * drift.noise, (grid[1], grid[0], 3)).astype(np.float32)
        noise = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_NEAREST)
        out = np.clip(out.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    return out


def render_drifted(
    class_id: int,
    scene_rng: np.random.Generator,
    width: int,
    height: int,
    drift: Drift,
    rng: np.random.Generator,
) -> np.ndarray:
    """``render``'s frame of the same scene as the drifted camera sees it."""
    backdrop = paint_backdrop(rng, width, height) if wants_backdrop(drift, rng) else None
    frame = render(class_id, scene_rng, width, height, backdrop=backdrop)
    return apply_drift(frame, drift, rng)


def make_camera_stream(
    n: int,
    seed: int,
    drift: Drift = NO_DRIFT,
    frame_size: tuple[int, int] = (320, 240),
    jpeg_quality: int = 85,
    size: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """The synthetic camera's first ``n`` frames as the classifier sees them: rendered at the
    camera's size with its drift, sent as JPEG, shrunk to the model's ``size``.

    Frame ``i`` is the frame the frame source sends as frame ``i`` with the same seed and
    drift, so accuracy measured here is accuracy on that stream.
    """
    width, height = frame_size
    labels = np.arange(n, dtype=np.int64) % len(LABELS)
    images = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        frame = render_drifted(
            int(labels[i]), sample_rng(seed, i), width, height, drift, drift_rng(seed, i)
        )
        images[i] = shrink(jpeg_round_trip(frame, jpeg_quality), size)
    return images, labels
