"""Backgrounds, clutter and colours: everything in a frame that is not the labelled shape.

All lengths are fractions of the frame's shorter side (``unit``), so a frame rendered at
640x480 and one rendered at 128x128 shrink to the same kind of 32x32 image.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from synthdata._shapes import Points, distractor_blob

# cv2 drawing takes integer points; 4 fractional bits keep small shapes' edges smooth
SHIFT_BITS = 4
_SHIFT_SCALE = float(1 << SHIFT_BITS)

# smooth backgrounds are painted at this long side and upsampled: a linear upsample of a
# gradient or low-frequency texture is indistinguishable from painting it at full size
_SMOOTH_SIDE = 64


def to_cv_points(points: Points) -> np.ndarray:
    return np.round(points * _SHIFT_SCALE).astype(np.int32)


def lerp(easy: float, hard: float, difficulty: float) -> float:
    return easy + (hard - easy) * difficulty


def random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.0, 255.0, 3)


@dataclass(frozen=True)
class Palette:
    """Where a frame's background and shape colours come from.

    Easy frames take the background from the dark end of RGB space and the shape from the
    light end; harder frames widen both ranges until, at the hardest, both come from
    anywhere, and are more and more often inverted (a dark shape on a light ground). The
    seed CNN learns nothing from scratch when every frame pairs arbitrary colours (its loss
    stayed at ln 10 for 750 steps): light shapes on near-black backgrounds, where the input
    is close to zero except on the shape, are what it first learns edges from, and those
    edges carry over to the colourful frames.
    """

    background_max: float
    foreground_min: float
    inverted: bool

    @classmethod
    def for_difficulty(cls, rng: np.random.Generator, difficulty: float) -> Palette:
        return cls(
            background_max=lerp(40.0, 255.0, difficulty),
            foreground_min=lerp(185.0, 0.0, difficulty),
            inverted=bool(rng.random() < 0.4 * difficulty),
        )

    def _orient(self, colours: np.ndarray) -> np.ndarray:
        return 255.0 - colours if self.inverted else colours

    def background(self, rng: np.random.Generator, cells: tuple[int, ...] = ()) -> np.ndarray:
        """One background colour, or a ``cells`` + (3,) field of them."""
        return self._orient(rng.uniform(0.0, self.background_max, (*cells, 3)))

    def foreground(
        self, rng: np.random.Generator, against: np.ndarray, min_distance: float
    ) -> np.ndarray:
        candidates = self._orient(rng.uniform(self.foreground_min, 255.0, (16, 3)))
        return farthest_enough(candidates, against, min_distance)


def contrasting_colour(
    rng: np.random.Generator, against: np.ndarray, min_distance: float
) -> np.ndarray:
    """A random RGB colour at least ``min_distance`` (Euclidean, 0-255) from ``against``."""
    return farthest_enough(rng.uniform(0.0, 255.0, (16, 3)), against, min_distance)


def farthest_enough(candidates: np.ndarray, against: np.ndarray, min_distance: float) -> np.ndarray:
    """The first candidate at least ``min_distance`` from ``against``, else the farthest.

    Candidates come in one batch so the cost is fixed; none being far enough is possible
    only against mid-range references.
    """
    distances = np.linalg.norm(candidates - against, axis=1)
    far = np.flatnonzero(distances >= min_distance)
    index = int(far[0]) if far.size else int(np.argmax(distances))
    result: np.ndarray = candidates[index]
    return result


def _smooth_grid(width: int, height: int) -> tuple[int, int]:
    scale = _SMOOTH_SIDE / max(width, height)
    return max(2, round(width * scale)), max(2, round(height * scale))


def _upsample(small: np.ndarray, width: int, height: int) -> np.ndarray:
    # clip and quantise while small; a linear upsample of in-range values stays in range
    small8 = np.clip(small, 0, 255).astype(np.uint8)
    result: np.ndarray = cv2.resize(small8, (width, height), interpolation=cv2.INTER_LINEAR)
    return result


def _linear_gradient(
    rng: np.random.Generator, palette: Palette, width: int, height: int
) -> np.ndarray:
    gw, gh = _smooth_grid(width, height)
    angle = rng.uniform(0.0, 2 * np.pi)
    ys, xs = np.mgrid[0:gh, 0:gw].astype(np.float32)
    t = xs / gw * np.cos(angle) + ys / gh * np.sin(angle)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    c0, c1 = palette.background(rng), palette.background(rng)
    small = c0 + t[..., None] * (c1 - c0)
    return _upsample(small.astype(np.float32), width, height)


def _radial_gradient(
    rng: np.random.Generator, palette: Palette, width: int, height: int
) -> np.ndarray:
    gw, gh = _smooth_grid(width, height)
    cx, cy = rng.uniform(0.0, gw), rng.uniform(0.0, gh)
    ys, xs = np.mgrid[0:gh, 0:gw].astype(np.float32)
    r = np.hypot(xs - cx, ys - cy)
    t = r / max(float(r.max()), 1e-6)
    c0, c1 = palette.background(rng), palette.background(rng)
    small = c0 + t[..., None] * (c1 - c0)
    return _upsample(small.astype(np.float32), width, height)


def _texture(
    rng: np.random.Generator, palette: Palette, width: int, height: int, difficulty: float
) -> np.ndarray:
    # value noise: a coarse random grid upsampled twice, like mottled walls or foliage
    cells = int(rng.integers(3, 12))
    coarse = palette.background(rng, (cells, cells)).astype(np.float32)
    gw, gh = _smooth_grid(width, height)
    small = cv2.resize(coarse, (gw, gh), interpolation=cv2.INTER_CUBIC)
    # pull toward a base colour so textures are not all rainbow-saturated
    base = palette.background(rng).astype(np.float32)
    mix = np.float32(rng.uniform(0.15, 0.3 + 0.45 * difficulty))
    small = base + mix * (small - base)
    return _upsample(small, width, height)


def _stripes(
    rng: np.random.Generator, palette: Palette, width: int, height: int, difficulty: float
) -> np.ndarray:
    unit = min(width, height)
    period = rng.uniform(0.05, 0.3) * unit
    angle = rng.uniform(0.0, np.pi)
    duty = rng.uniform(0.25, 0.75)
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]
    phase = (xs * np.float32(np.cos(angle)) + ys * np.float32(np.sin(angle))) / np.float32(period)
    on = (phase - np.floor(phase)) < duty
    if rng.random() < 0.3:
        # a second, crossing set of stripes makes plaid or a grid
        angle2 = angle + rng.uniform(np.pi / 4, 3 * np.pi / 4)
        phase2 = (xs * np.float32(np.cos(angle2)) + ys * np.float32(np.sin(angle2))) / np.float32(
            period
        )
        on = on ^ ((phase2 - np.floor(phase2)) < duty)
    c0 = palette.background(rng)
    # stripe colours close-ish together: strong stripes would swamp a 32x32 image
    c1 = np.clip(c0 + rng.normal(0.0, 15.0 + 35.0 * difficulty, 3), 0, 255)
    pair = np.stack([c0, c1]).astype(np.uint8)
    # np.take on a uint8 view is several times faster than boolean fancy indexing here
    result: np.ndarray = np.take(pair, on.view(np.uint8), axis=0)
    return result


def paint_background(
    rng: np.random.Generator, palette: Palette, width: int, height: int, difficulty: float
) -> np.ndarray:
    """A plain, gradient, striped or mottled background; busier ones grow with difficulty."""
    busy = 0.05 + 0.35 * difficulty
    plain = 1.0 - busy
    kind = rng.choice(5, p=[0.35 * plain, 0.45 * plain, 0.2 * plain, busy / 2, busy / 2])
    if kind == 0:
        image = np.empty((height, width, 3), np.uint8)
        image[:] = palette.background(rng).astype(np.uint8)
        return image
    if kind == 1:
        return _linear_gradient(rng, palette, width, height)
    if kind == 2:
        return _radial_gradient(rng, palette, width, height)
    if kind == 3:
        return _stripes(rng, palette, width, height, difficulty)
    return _texture(rng, palette, width, height, difficulty)


def add_clutter(rng: np.random.Generator, image: np.ndarray, count: int) -> None:
    """Draws ``count`` distractors in place: lumpy blobs, dots and scribbled lines.

    Distractors are kept small relative to the labelled shape so that "the big shape" is
    always well defined; they carry no class information by construction.
    """
    height, width = image.shape[:2]
    unit = min(width, height)
    for _ in range(count):
        colour = tuple(float(c) for c in random_colour(rng))
        kind = rng.random()
        centre = rng.uniform((0.0, 0.0), (width, height))
        if kind < 0.45:
            radius = rng.uniform(0.03, 0.1) * unit
            pts = distractor_blob(rng) * radius + centre
            cv2.fillPoly(image, [to_cv_points(pts)], colour, cv2.LINE_AA, SHIFT_BITS)
        elif kind < 0.6:
            radius = rng.uniform(0.01, 0.03) * unit
            cv2.circle(
                image,
                tuple(int(v) for v in to_cv_points(centre)),
                int(radius * _SHIFT_SCALE),
                colour,
                -1,
                cv2.LINE_AA,
                SHIFT_BITS,
            )
        else:
            add_scribble(rng, image, colour)


def add_scribble(
    rng: np.random.Generator, image: np.ndarray, colour: tuple[float, ...] | None = None
) -> None:
    """A thin open polyline across part of the frame (wires, cracks, twigs)."""
    height, width = image.shape[:2]
    unit = min(width, height)
    if colour is None:
        colour = tuple(float(c) for c in random_colour(rng))
    n = int(rng.integers(2, 5))
    start = rng.uniform((0.0, 0.0), (width, height))
    steps = rng.normal(0.0, 0.25 * unit, (n - 1, 2))
    pts = np.vstack([start, start + np.cumsum(steps, axis=0)])
    thickness = max(1, round(rng.uniform(0.006, 0.02) * unit))
    cv2.polylines(image, [to_cv_points(pts)], False, colour, thickness, cv2.LINE_AA, SHIFT_BITS)
