"""Two-dimensional toy densities, the usual test bed for flows.

Definitions and scales follow the common sources: sklearn's `make_moons(noise=0.05)` for moons
(as in the benchmark) and FFJORD's `toy_data` for the rest, which fit in about [-4, 4]^2.
"""
from __future__ import annotations

from collections.abc import Callable
from numbers import Integral

import numpy as np

from ..errors import FlowforgeError

Rng = np.random.Generator


def _on_circles(rng: Rng, radius: np.ndarray) -> np.ndarray:
    angle = rng.uniform(0, 2 * np.pi, radius.shape)
    return radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], 1)


def _moons(rng: Rng, n: int) -> np.ndarray:
    # sklearn's make_moons: two half circles on an even grid of angles, plus Gaussian noise
    outer, inner = np.linspace(0, np.pi, n // 2), np.linspace(0, np.pi, n - n // 2)
    x = np.concatenate([np.stack([np.cos(outer), np.sin(outer)], 1), np.stack([1 - np.cos(inner), 0.5 - np.sin(inner)], 1)])
    return x + rng.normal(scale=0.05, size=x.shape)


def _circles(rng: Rng, n: int) -> np.ndarray:
    # 3 * make_circles(factor=0.5, noise=0.08): radii 3 and 1.5, half the points on each
    radius = np.where(np.arange(n) % 2 == 0, 1.0, 0.5)
    return 3 * (_on_circles(rng, radius) + rng.normal(scale=0.08, size=(n, 2)))


def _rings(rng: Rng, n: int) -> np.ndarray:
    radius = 0.75 * (np.arange(n) % 4 + 1)  # four rings, radii 0.75 to 3, equal shares
    return _on_circles(rng, radius) + rng.normal(scale=0.08, size=(n, 2))


def _eight_gaussians(rng: Rng, n: int) -> np.ndarray:
    angle = np.pi / 4 * rng.integers(0, 8, n)
    centers = 2 * np.sqrt(2) * np.stack([np.cos(angle), np.sin(angle)], 1)
    return centers + rng.normal(scale=0.5 / np.sqrt(2), size=(n, 2))


def _checkerboard(rng: Rng, n: int) -> np.ndarray:
    # 8 filled squares of side 2 on [-4, 4]^2: x2's band is shifted by one where floor(x1) is odd
    x1 = rng.uniform(-2, 2, n)
    x2 = rng.uniform(0, 1, n) - 2 * rng.integers(0, 2, n) + np.floor(x1) % 2
    return 2 * np.stack([x1, x2], 1)


def _two_spirals(rng: Rng, n: int) -> np.ndarray:
    t = 3 * np.pi * np.sqrt(rng.uniform(size=n))  # sqrt: even density along the arm
    arm = t[:, None] * np.stack([-np.cos(t), np.sin(t)], 1) + rng.uniform(0, 0.5, (n, 2))
    sign = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)[:, None]
    return sign * arm / 3 + rng.normal(scale=0.1, size=(n, 2))


def _pinwheel(rng: Rng, n: int) -> np.ndarray:
    radial, tangential = rng.normal(1.0, 0.3, n), rng.normal(0.0, 0.1, n)
    angle = 2 * np.pi / 5 * (np.arange(n) % 5) + 0.25 * np.exp(radial)  # five arms, bending outwards
    cos, sin = np.cos(angle), np.sin(angle)
    return 2 * np.stack([radial * cos + tangential * sin, tangential * cos - radial * sin], 1)


def _swissroll(rng: Rng, n: int) -> np.ndarray:
    t = 1.5 * np.pi * (1 + 2 * rng.uniform(size=n))
    return (t[:, None] * np.stack([np.cos(t), np.sin(t)], 1) + rng.normal(size=(n, 2))) / 5


_GENERATORS: dict[str, Callable[[Rng, int], np.ndarray]] = {
    "moons": _moons,
    "circles": _circles,
    "8gaussians": _eight_gaussians,
    "checkerboard": _checkerboard,
    "2spirals": _two_spirals,
    "pinwheel": _pinwheel,
    "swissroll": _swissroll,
    "rings": _rings,
}
TOYS: tuple[str, ...] = tuple(_GENERATORS)


def check_size(n: int) -> int:
    """`n` if it is a positive integer, else a FlowforgeError naming it."""
    if not isinstance(n, Integral) or isinstance(n, bool) or n < 1:
        raise FlowforgeError(f"n must be a positive integer, got {n!r}")
    return int(n)


def make_toy(name: str, n: int, seed: int = 0) -> np.ndarray:
    """`n` points from the toy density `name`, float32 (n, 2), in random order; a seed fixes them."""
    if name not in _GENERATORS:
        raise FlowforgeError(f"unknown toy {name!r}; choose from {', '.join(TOYS)}")
    rng = np.random.default_rng(seed)
    x = _GENERATORS[name](rng, check_size(n))
    return rng.permutation(x).astype(np.float32)  # shuffled: generators emit points group by group
