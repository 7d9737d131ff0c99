"""Support maps: each continuous column's values x to an unbounded y, with the exact log|dy/dx|.

    real, datetime, integer of any sign:  y = x                          log|dy/dx| = 0
    positive, integer >= 0, nonnegative:  y = log x                      log|dy/dx| = -log x
    bounded (a, b):                       u = (x - a) / (b - a),  y = log u - log(1 - u)
                                          log|dy/dx| = -log(b - a) - log u - log(1 - u)

Integer and datetime columns reach these maps dequantised (x + noise, noise in [0, 1)); a datetime
is counted in `resolution` units from the earliest training date. A nonnegative column (exact
zeros and positive values) reaches them as v = d * noise for a zero and v = x + d above, d its
`resolution`: P(x = 0) = P(v < d) = d E[p(d * noise)], and the density of x > 0 is p(x + d) (dequantise). The density of a row on the
original scale is p(y) * prod |dy/dx|, so log p(x) = log p(y) + sum of the log|dy/dx|.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .schema import Column


def is_log(column: Column) -> bool:
    return column.kind in ("positive", "nonnegative") or (column.kind == "integer" and column.low == 0)


def dequantise(column: Column, x: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    """(value the support map sees, log of the width the noise spreads a cell over) for raw x and
    noise u in (0, 1): x + u for whole numbers; d * u for a nonnegative column's zeros, x + d above."""
    if column.kind == "nonnegative":
        zero = x == 0
        width = torch.full_like(x, math.log(column.resolution))
        return torch.where(zero, column.resolution * u, x + column.resolution), torch.where(zero, width, torch.zeros_like(x))
    if is_dequantised(column):
        return x + u, torch.zeros_like(x)
    return x, torch.zeros_like(x)


def requantise(column: Column, x: Tensor) -> Tensor:
    """The inverse of dequantise on a sampled value: whole numbers floored, a nonnegative column's
    values below d are its zeros."""
    if column.kind == "nonnegative":
        return torch.where(x < column.resolution, torch.zeros_like(x), x - column.resolution)
    return x.floor() if is_dequantised(column) else x


def to_latent(column: Column, x: Tensor) -> tuple[Tensor, Tensor]:
    """(y, log|dy/dx|) of a column's values x, shape (n,) each; -inf log-det outside the support."""
    if is_log(column):
        return x.log(), -x.log()
    if column.kind == "bounded":
        width = column.high - column.low
        u = (x - column.low) / width
        return u.log() - torch.log1p(-u), -math.log(width) - u.log() - torch.log1p(-u)
    return x, torch.zeros_like(x)


def to_data(column: Column, y: Tensor) -> Tensor:
    """The inverse of to_latent, kept inside the support: bounded values are clipped to the
    nearest floats inside (a, b) (sigmoid rounds to 0 or 1 beyond |y| ~ 37 in float64)."""
    if is_log(column):
        return y.exp()
    if column.kind == "bounded":
        x = column.low + (column.high - column.low) * torch.sigmoid(y)
        low = torch.nextafter(torch.tensor(column.low, dtype=y.dtype), torch.tensor(column.high, dtype=y.dtype))
        high = torch.nextafter(torch.tensor(column.high, dtype=y.dtype), torch.tensor(column.low, dtype=y.dtype))
        return x.clamp(low, high)
    return y


def in_support(column: Column, x: Tensor) -> Tensor:
    """Which raw values (before dequantisation) have nonzero probability under the column's kind."""
    ok = torch.isfinite(x)
    if column.kind == "positive":
        ok &= x > 0
    if column.kind == "nonnegative":
        ok &= x >= 0
    if column.kind == "bounded":
        ok &= (x > column.low) & (x < column.high)
    if column.kind in ("integer", "datetime"):
        ok &= x == x.floor()
    if column.kind == "integer" and column.low == 0:
        ok &= x >= 0
    return ok


def is_dequantised(column: Column) -> bool:
    return column.kind in ("integer", "datetime", "nonnegative")


MAX_DECIMALS = 8  # e.g. longitudes and latitudes written to the millimetre
SIGNIFICANT_DIGITS = 8  # float32 flows resolve about 7 of a sample's digits: the rest are rounding artefacts


def decimals_of(values: np.ndarray) -> int | None:
    """The fewest decimal places (at most MAX_DECIMALS) that write every value exactly; for values
    that need more, the places that keep SIGNIFICANT_DIGITS digits of the largest value (so samples
    are written without float32 artefacts such as -118.376708984375). None without finite values."""
    values = values[np.isfinite(values)]
    if not len(values):
        return None
    for places in range(MAX_DECIMALS + 1):
        # float64's representation error, but never a hundredth of a place: 118.12345678 does not pass at 7 places
        tolerance = np.minimum(1e-9 * np.maximum(1.0, np.abs(values)), 10.0 ** -places / 100)
        if np.all(np.abs(values - np.round(values, places)) <= tolerance):
            return places
    largest = float(np.abs(values).max())
    return int(np.clip(SIGNIFICANT_DIGITS - np.ceil(np.log10(largest)), 0, 15)) if largest > 0 else MAX_DECIMALS


def at_precision(column: Column, values: np.ndarray, places: int) -> np.ndarray:
    """Sampled values rounded to `places` decimals, kept inside the column's support: a positive
    value never rounds to 0, a bounded one never to its ends (it stays unrounded where the grid
    has no point inside)."""
    step = 10.0 ** -places
    rounded = np.round(values, places)
    if column.kind == "positive":
        rounded = np.maximum(rounded, step)
    if column.kind == "bounded":
        low, high = np.ceil(column.low / step + 1e-9) * step, np.floor(column.high / step - 1e-9) * step
        inside = (low > column.low) & (high < column.high) & (low <= high)
        rounded = np.clip(rounded, low, high) if inside else values
    return rounded
