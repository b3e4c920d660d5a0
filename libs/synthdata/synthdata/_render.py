"""One frame: background, clutter, the labelled shape, then camera-like degradations.

Stage order matters and mirrors a camera: the scene is built first (background, clutter
behind, the shape, an occasional wire in front), then exposure, sensor grain and defocus
apply to the whole frame, as they would to light reaching a sensor.
"""

from __future__ import annotations

import cv2
import numpy as np

from synthdata._paint import (
    SHIFT_BITS,
    Palette,
    add_clutter,
    add_scribble,
    contrasting_colour,
    lerp,
    paint_background,
    to_cv_points,
)
from synthdata._shapes import BUILDERS, LABELS, Outline, Points

MIN_SIDE = 8
MAX_SIDE = 8192

# The labelled shape's circumradius as a fraction of the shorter side. The lower bound keeps
# the smallest shapes about 16 px across at 32x32, where a hexagon's corners still show.
_MIN_RADIUS_EASY, _MIN_RADIUS_HARD, _MAX_RADIUS = 0.3, 0.26, 0.42
# fill must stand out from the local background by this much (RGB distance, 0-255 scale)
_MIN_FILL_CONTRAST_EASY, _MIN_FILL_CONTRAST_HARD = 150.0, 110.0
_MAX_CLUTTER = 4
# Shapes are stretched by up to this aspect ratio; the camera's own 3:4..4:3 frames stretch
# them again when the module squares the frame, so the two compound.
_MAX_SHAPE_ASPECT = 1.2
# Shapes stand roughly upright, as objects do in camera frames. Arbitrary rotation makes the
# network learn every orientation of every class separately: with the seed's recipe, held-out
# accuracy after 750 steps was 56% with any rotation against 74% with this tilt range.
_MAX_TILT_RAD = np.deg2rad(30.0)


def render(
    class_id: int,
    rng: np.random.Generator,
    width: int,
    height: int,
    difficulty: float | None = None,
    backdrop: np.ndarray | None = None,
) -> np.ndarray:
    """Renders one RGB frame (uint8, ``height`` x ``width`` x 3) showing class ``class_id``.

    Everything random comes from ``rng``, so the same generator state gives the same frame.
    Geometry is relative to the frame, so any size from 8x8 up shows the same kind of scene.

    ``difficulty`` in [0, 1] scales clutter, busy backgrounds, patterned fills, free colours,
    low contrast, blur and grain; by default each frame draws its own as ``uniform() ** 2``.
    The spread matters for training: from scratch, the seed CNN finds no foothold in
    uniformly hard scenes (its loss sat at ln 10 for 750 steps), while the easy end teaches
    it shapes that carry over to the hard end.

    ``backdrop`` (``height`` x ``width`` x 3) replaces the background (camera drift: a scene
    the model never saw). The usual background is still drawn first, so every later draw
    from ``rng`` (clutter, the shape's place) is the same as without it.
    """
    if not 0 <= class_id < len(LABELS):
        raise ValueError(f"class_id must be in 0..{len(LABELS) - 1}, got {class_id}")
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise ValueError(f"frame must be {MIN_SIDE}..{MAX_SIDE} px a side, got {width}x{height}")
    if difficulty is None:
        # squared uniform: half the frames below 0.25, a long tail up to fully hard
        difficulty = float(rng.uniform()) ** 2
    elif not 0.0 <= difficulty <= 1.0:
        raise ValueError(f"difficulty must be in [0, 1], got {difficulty}")
    unit = min(width, height)
    palette = Palette.for_difficulty(rng, difficulty)
    image = paint_background(rng, palette, width, height, difficulty)
    if backdrop is not None:
        if backdrop.shape != image.shape:
            raise ValueError(f"backdrop of shape {backdrop.shape} for a {width}x{height} frame")
        image = backdrop.astype(np.uint8, copy=True)
    add_clutter(rng, image, int(rng.integers(0, 1 + round(_MAX_CLUTTER * difficulty))))
    _draw_shape(rng, image, BUILDERS[class_id](rng), palette, difficulty)
    if rng.random() < 0.35 * difficulty:
        add_scribble(rng, image)
    return _degrade(rng, image, unit, difficulty)


def _place(
    rng: np.random.Generator, outline: Outline, width: int, height: int, difficulty: float
) -> Outline:
    unit = min(width, height)
    min_radius = lerp(_MIN_RADIUS_EASY, _MIN_RADIUS_HARD, difficulty)
    radius = rng.uniform(min_radius, _MAX_RADIUS) * unit
    aspect = np.exp(rng.uniform(-np.log(_MAX_SHAPE_ASPECT), np.log(_MAX_SHAPE_ASPECT)))
    angle = rng.uniform(-_MAX_TILT_RAD, _MAX_TILT_RAD)
    cos, sin = np.cos(angle), np.sin(angle)
    linear = np.array([[cos, -sin], [sin, cos]]) @ np.diag(
        [radius * np.sqrt(aspect), radius / np.sqrt(aspect)]
    )
    solids = [p @ linear.T for p in outline.solids]
    holes = [p @ linear.T for p in outline.holes]
    every = np.vstack(solids)
    lo, hi = every.min(axis=0), every.max(axis=0)
    # the shape may poke out of the frame by a few percent, as objects do in real framing
    slack = 0.08 * (hi - lo)
    low_centre = -lo - slack
    high_centre = np.array([width, height]) - hi + slack
    centre = rng.uniform(np.minimum(low_centre, high_centre), np.maximum(low_centre, high_centre))
    return Outline(tuple(p + centre for p in solids), tuple(p + centre for p in holes))


def _fill_pattern(
    rng: np.random.Generator,
    shape: tuple[int, int],
    base: np.ndarray,
    second: np.ndarray,
    difficulty: float,
) -> np.ndarray:
    """The shape's paint: flat, a gradient or stripes, in float32 (h, w, 3)."""
    h, w = shape
    style = rng.random()
    patterned = 0.15 + 0.3 * difficulty
    if style >= patterned:
        return np.broadcast_to(base.astype(np.float32), (h, w, 3))
    style /= patterned
    angle = rng.uniform(0.0, 2 * np.pi)
    ys = np.arange(h, dtype=np.float32)[:, None] / max(h, 1)
    xs = np.arange(w, dtype=np.float32)[None, :] / max(w, 1)
    t = xs * np.float32(np.cos(angle)) + ys * np.float32(np.sin(angle))
    if style < 0.65:
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    else:
        # broad stripes: at most about five across the shape, so the outline stays readable
        t = ((t * np.float32(rng.uniform(2.0, 5.0))) % 1.0 < 0.5).astype(np.float32)
    paint: np.ndarray = (base + t[..., None] * (second - base)).astype(np.float32)
    return paint


def _draw_shape(
    rng: np.random.Generator,
    image: np.ndarray,
    outline: Outline,
    palette: Palette,
    difficulty: float,
) -> None:
    height, width = image.shape[:2]
    unit = min(width, height)
    placed = _place(rng, outline, width, height, difficulty)
    every = np.vstack(placed.solids)
    x0, y0 = np.maximum(np.floor(every.min(axis=0)).astype(int) - 2, 0)
    x1, y1 = np.minimum(np.ceil(every.max(axis=0)).astype(int) + 3, (width, height))
    if x1 <= x0 or y1 <= y0:
        return
    origin = np.array([x0, y0], dtype=np.float64)
    roi = image[y0:y1, x0:x1]
    roi_h, roi_w = roi.shape[:2]
    mask = np.zeros((roi_h, roi_w), np.uint8)
    for solid in placed.solids:
        cv2.fillPoly(mask, [to_cv_points(solid - origin)], 255, cv2.LINE_AA, SHIFT_BITS)
    for hole in placed.holes:
        cv2.fillPoly(mask, [to_cv_points(hole - origin)], 0, cv2.LINE_AA, SHIFT_BITS)

    local = np.array(cv2.mean(roi)[:3])
    contrast = lerp(_MIN_FILL_CONTRAST_EASY, _MIN_FILL_CONTRAST_HARD, difficulty)
    base = palette.foreground(rng, local, contrast)
    second = palette.foreground(rng, local, contrast * 0.7)
    paint = _fill_pattern(rng, (roi_h, roi_w), base, second, difficulty)
    out = _blend(roi.astype(np.float32), paint, mask)
    if rng.random() < 0.35:
        out = _stroke(rng, out, placed, origin, mask, base, unit)
    # blends are convex combinations of in-range colours, so rounding needs no clipping
    roi[...] = (out + np.float32(0.5)).astype(np.uint8)


def _stroke(
    rng: np.random.Generator,
    out: np.ndarray,
    placed: Outline,
    origin: np.ndarray,
    mask: np.ndarray,
    base: np.ndarray,
    unit: int,
) -> np.ndarray:
    """An outline in a second colour, drawn inside the shape so the silhouette is unchanged."""
    edge = np.zeros_like(mask)
    contours: list[Points] = [*placed.solids, *placed.holes]
    thickness = max(1, round(rng.uniform(0.015, 0.045) * unit))
    cv2.polylines(
        edge,
        [to_cv_points(c - origin) for c in contours],
        True,
        255,
        thickness,
        cv2.LINE_AA,
        SHIFT_BITS,
    )
    # clipping to the fill removes the parts of a hole's contour that lie outside the solid
    edge = np.minimum(edge, mask)
    colour = contrasting_colour(rng, base, 80.0).astype(np.float32)
    return _blend(out, np.broadcast_to(colour, out.shape), edge)


def _blend(under: np.ndarray, over: np.ndarray, mask: np.ndarray) -> np.ndarray:
    alpha = (mask.astype(np.float32) * np.float32(1.0 / 255.0))[..., None]
    result: np.ndarray = under + (over - under) * alpha
    return result


def _degrade(
    rng: np.random.Generator, image: np.ndarray, unit: int, difficulty: float
) -> np.ndarray:
    height, width = image.shape[:2]
    # exposure and white balance as one per-channel lookup table: cheap at any frame size
    gain = rng.uniform(0.75, 1.25) * rng.uniform(0.92, 1.08, 3)
    bias = rng.uniform(-25.0, 25.0)
    levels = np.arange(256, dtype=np.float64)[:, None] * gain + bias
    lut = np.clip(levels, 0, 255).astype(np.uint8).reshape(256, 1, 3)
    image = cv2.LUT(image, lut)

    if rng.random() < 0.15 + 0.35 * difficulty:
        sigma_rel = rng.uniform(0.004, 0.006 + 0.01 * difficulty)
        image = _defocus(image, sigma_rel * unit)

    sigma = rng.uniform(0.0, 3.0 + 8.0 * difficulty)
    if sigma > 2.0:
        # grain on a coarse grid (about 48 cells on the short side), so it survives the
        # shrink to 32x32 whatever the frame size; per-pixel noise on a 640x480 frame
        # would average away
        cells = 48 / unit
        gw, gh = max(2, round(width * cells)), max(2, round(height * cells))
        coarse = rng.normal(0.0, sigma, (gh, gw, 3)).astype(np.float32)
        grain = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR)
        image = np.clip(image.astype(np.float32) + grain, 0, 255).astype(np.uint8)
    return image


def _defocus(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur of ``sigma_px``, computed at a reduced size when the kernel is large.

    A 10 px sigma on a 640x480 frame would need a 61-tap kernel; blurring a shrunk copy and
    scaling it back is several times cheaper and looks the same after the final shrink.
    """
    height, width = image.shape[:2]
    factor = max(1.0, sigma_px / 1.5)
    if factor > 1.0:
        small_size = (max(2, round(width / factor)), max(2, round(height / factor)))
        small = cv2.resize(image, small_size, interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), sigma_px / factor)
        return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    return cv2.GaussianBlur(image, (0, 0), sigma_px)
