"""The ten class outlines, in unit coordinates.

Each class is drawn from polygons centred on the origin that fit in (about) the unit circle,
with y pointing down as in image coordinates. Builders take the sample's generator so that
proportions vary within a class (star depth, ring thickness, arrow head size, ...): the
network has to learn the class, not one fixed polygon.

Curved classes are polygons with many vertices; at the sizes frames are rendered at, a
72-gon cannot be told from a circle once anti-aliased and shrunk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Points = np.ndarray  # float64 (K, 2), x right, y down

LABELS: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "cross",
    "ring",
    "hexagon",
    "crescent",
    "arrow",
    "heart",
)

_CURVE_VERTICES = 72


@dataclass(frozen=True)
class Outline:
    """Filled polygons minus holes; a hole may stick out of the solid (the crescent's does)."""

    solids: tuple[Points, ...]
    holes: tuple[Points, ...] = ()


def _regular(n: int, radius: float = 1.0, phase: float = -np.pi / 2) -> Points:
    angles = phase + np.arange(n) * (2 * np.pi / n)
    return np.stack([np.cos(angles), np.sin(angles)], axis=1) * radius


def _circle(_: np.random.Generator) -> Outline:
    return Outline((_regular(_CURVE_VERTICES),))


def _square(_: np.random.Generator) -> Outline:
    # 0.75 keeps the corners near the unit circle while the area stays like the other classes'
    return Outline((np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]]) * 0.75,))


def _triangle(rng: np.random.Generator) -> Outline:
    pts = _regular(3)
    # small vertex jitter: not every triangle is equilateral, but it stays clearly a triangle
    pts = pts + rng.uniform(-0.08, 0.08, size=pts.shape)
    # the equilateral triangle's centroid is the origin; pulling it down centres its bounding box
    return Outline((pts + np.array([0.0, 0.25]),))


def _star(rng: np.random.Generator) -> Outline:
    inner = rng.uniform(0.36, 0.5)
    outer_pts = _regular(5)
    inner_pts = _regular(5, inner, phase=-np.pi / 2 + np.pi / 5)
    pts = np.empty((10, 2))
    pts[0::2] = outer_pts
    pts[1::2] = inner_pts
    return Outline((pts + np.array([0.0, 0.1]),))


def _cross(rng: np.random.Generator) -> Outline:
    w = rng.uniform(0.2, 0.32)
    a = 0.92
    pts = np.array(
        [
            [-w, -a],
            [w, -a],
            [w, -w],
            [a, -w],
            [a, w],
            [w, w],
            [w, a],
            [-w, a],
            [-w, w],
            [-a, w],
            [-a, -w],
            [-w, -w],
        ]
    )
    return Outline((pts,))


def _ring(rng: np.random.Generator) -> Outline:
    hole = rng.uniform(0.48, 0.7)
    return Outline((_regular(_CURVE_VERTICES),), (_regular(_CURVE_VERTICES, hole),))


def _hexagon(_: np.random.Generator) -> Outline:
    return Outline((_regular(6, phase=0.0),))


def _crescent(rng: np.random.Generator) -> Outline:
    radius = rng.uniform(0.8, 0.95)
    offset = rng.uniform(0.4, 0.6)
    hole = _regular(_CURVE_VERTICES, radius) + np.array([offset, -0.1 * offset])
    # shift left so the visible sickle, not the full disc, sits around the origin
    shift = np.array([0.25, 0.0])
    return Outline((_regular(_CURVE_VERTICES) + shift,), (hole + shift,))


def _arrow(rng: np.random.Generator) -> Outline:
    shaft = rng.uniform(0.14, 0.24)
    head_base = rng.uniform(-0.05, 0.3)
    head = rng.uniform(0.48, 0.68)
    pts = np.array(
        [
            [-1.0, -shaft],
            [head_base, -shaft],
            [head_base, -head],
            [1.0, 0.0],
            [head_base, head],
            [head_base, shaft],
            [-1.0, shaft],
        ]
    )
    return Outline((pts,))


def _heart(_: np.random.Generator) -> Outline:
    # the classic parametric heart; its cusp and lobes separate it from circle and crescent
    t = np.linspace(0.0, 2 * np.pi, _CURVE_VERTICES, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    pts = np.stack([x, y], axis=1) / 17.0
    return Outline((pts + np.array([0.0, 0.1]),))


BUILDERS: tuple[Callable[[np.random.Generator], Outline], ...] = (
    _circle,
    _square,
    _triangle,
    _star,
    _cross,
    _ring,
    _hexagon,
    _crescent,
    _arrow,
    _heart,
)
assert len(BUILDERS) == len(LABELS)


def distractor_blob(rng: np.random.Generator) -> Points:
    """A lumpy closed polygon for clutter: irregular enough that it is no class's outline."""
    n = int(rng.integers(7, 13))
    angles = np.sort(rng.uniform(0.0, 2 * np.pi, n))
    radii = rng.uniform(0.45, 1.0, n)
    return np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1)
