"""Error and loss on the plane through three networks (Garipov et al. 2018).

The line between two networks is one direction of a space with millions of
them. The plane through three networks W_a, W_b, W_c shows how the error
surface around them looks: whether the barrier on the line a -> b is a
ridge that a detour through c avoids, and where c sits relative to both.

The plane gets an orthonormal basis by Gram–Schmidt over every path
variable flattened into one vector (``interpolation.path_variables``: the
same variables the line interpolates):

    û = (W_b − W_a) / |W_b − W_a|
    v̂ = r / |r|,  r = (W_c − W_a) − <W_c − W_a, û> û

so the point (x, y) of the plane is W(x, y) = W_a + x·û + y·v̂, distances
in the plane are distances between weight vectors, and the three networks
sit at (0, 0), (|W_b − W_a|, 0) and (<W_c − W_a, û>, |r|). The grid covers
the three with ``margin`` times their span added on every side. Basis,
coordinates and points are computed in float64 on the host and written in
the variables' dtype (float32): W(x, y) at a network's own coordinates
reproduces that network to float32 rounding of a float64 value within a
few float64 ulps of it, i.e. bit for bit except where a weight lies within
that distance of a float32 rounding boundary (a weight of exactly 0 may
come back as a value of order 1e-16 times the weights' scale).

Every grid point is evaluated as a point of a path is (``PathEvaluator.at``:
written into the trainer's model, ``prepare``d — under
``--bn_mode=recompute`` its BatchNorm statistics are re-estimated — and
evaluated on the test set and the train subset). BatchNorm moving
statistics under ``interpolate`` are path variables and lie on the plane
like any other weight, as on the line.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import numpy as np
from absl import logging

from tf_lottery.stability.path_evaluator import SPLITS, PathEvaluator

Weights = list[np.ndarray]


@dataclasses.dataclass(frozen=True)
class Plane:
    """The plane through three networks.

    Attributes:
      origin: W_a, as given (its arrays' dtypes are the points' dtypes).
      u, v: the orthonormal basis, float64, shaped like the weights.
      coordinates: (3, 2) float64, the three networks' (x, y).
    """

    origin: Weights
    u: list[np.ndarray]
    v: list[np.ndarray]
    coordinates: np.ndarray

    def point(self, x: float, y: float) -> Weights:
        """W_a + x·û + y·v̂ in the origin's dtypes."""
        return [(a.astype(np.float64) + x * u + y * v).astype(a.dtype, copy=False)
                for a, u, v in zip(self.origin, self.u, self.v, strict=True)]


def _dot(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    return float(sum(np.vdot(x, y) for x, y in zip(a, b, strict=True)))


def through(w_a: Weights, w_b: Weights, w_c: Weights) -> Plane:
    """The plane through three networks (arrays in the same order and shapes).

    Raises:
      ValueError: the three are collinear (c on the line a -> b, or a == b):
        no plane goes through them alone.
    """
    if not len(w_a) == len(w_b) == len(w_c):
        raise ValueError(f"networks with {len(w_a)}, {len(w_b)} and {len(w_c)} arrays")
    a64 = [np.asarray(a, np.float64) for a in w_a]
    d_b = [np.asarray(b, np.float64) - a for a, b in zip(a64, w_b, strict=True)]
    d_c = [np.asarray(c, np.float64) - a for a, c in zip(a64, w_c, strict=True)]
    x_b = np.sqrt(_dot(d_b, d_b))
    if x_b == 0:
        raise ValueError("the first two networks are the same: no plane through them")
    u = [d / x_b for d in d_b]
    x_c = _dot(d_c, u)
    r = [d - x_c * e for d, e in zip(d_c, u, strict=True)]
    y_c = np.sqrt(_dot(r, r))
    # Off the line by less than float32 rounding of the weights could put it
    # (a midpoint written in float32 is off by ~1e-8 of the distances).
    if y_c <= 1e-6 * max(x_b, np.sqrt(_dot(d_c, d_c))):
        raise ValueError("the third network lies on the line through the first two: "
                         "no plane through them")
    v = [e / y_c for e in r]
    coords = np.array([[0.0, 0.0], [x_b, 0.0], [x_c, y_c]])
    return Plane([np.asarray(a) for a in w_a], u, v, coords)


def grid(coordinates: np.ndarray, points: int, margin: float
         ) -> tuple[np.ndarray, np.ndarray]:
    """``points`` evenly spaced x and y covering the networks' coordinates,
    widened by ``margin`` times their span on every side."""
    if points < 2:
        raise ValueError(f"a grid needs at least 2 points per side, got {points}")
    low, high = coordinates.min(axis=0), coordinates.max(axis=0)
    pad = margin * (high - low)
    return (np.linspace(low[0] - pad[0], high[0] + pad[0], points),
            np.linspace(low[1] - pad[1], high[1] + pad[1], points))


def evaluate(evaluator: PathEvaluator, plane: Plane, xs: np.ndarray, ys: np.ndarray, *,
             label: str = "plane",
             on_point: Callable[[int, int, dict[str, float]], None] | None = None) -> dict:
    """Error and loss at every grid point, and at the three networks' own
    coordinates.

    Returns ``{"<split>_error": [[...]], "<split>_loss": [[...]],
    "networks": [metrics of a, b, c]}``; grid values are indexed [iy][ix]
    (row = y, as a contour plot draws them); ``on_point(ix, iy, metrics)``
    is called after each point.
    """
    keys = [f"{prefix}_{m}" for _, prefix in SPLITS for m in ("error", "loss")]
    out: dict = {key: [[0.0] * len(xs) for _ in ys] for key in keys}
    total, started = len(xs) * len(ys), time.perf_counter()
    for iy, y in enumerate(ys):
        for ix, x in enumerate(xs):
            metrics = evaluator.at(plane.point(float(x), float(y)))
            for key in keys:
                out[key][iy][ix] = metrics[key]
            if on_point is not None:
                on_point(ix, iy, metrics)
            done = iy * len(xs) + ix + 1
            if done % 20 == 0 or done == total:
                elapsed = time.perf_counter() - started
                logging.info("%s: %d/%d grid points | %.2f s/point | ETA %.0f s", label,
                             done, total, elapsed / done, elapsed / done * (total - done))
    out["networks"] = [evaluator.at(plane.point(float(x), float(y)))
                       for x, y in plane.coordinates]
    return out
