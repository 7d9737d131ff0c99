"""Numerical health of a flow: does it invert, do its log-dets agree, how hard do its layers stretch.

    round trip    per row, max_j |decode(encode(x))_j - x_j|, in data units: max and median over rows
    log-det gap   per row, |logabsdet_forward(x) + logabsdet_inverse(z)| with z = encode(x), in
                  nats: max and median (the two directions must sum to zero)
    layer scale   per top-level layer, max over rows of |logabsdet| of that layer alone, in nats:
                  how far one layer expands or contracts volume; the flow's is the largest layer's

The first two are also measured layer by layer (each layer's inverse of its own output), so the
table points at the layer that loses precision. NaN or Inf in any of them counts as infinite.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from .flows.flow import Flow
from .transforms.base import Compose, Transform


@dataclass(frozen=True)
class LayerHealth:
    """One top-level layer: its worst round trip, log-det gap and |logabsdet| over the rows."""

    index: int
    name: str
    round_trip: float
    logdet_gap: float
    scale: float


@dataclass(frozen=True)
class Health:
    """The flow as a whole (max and median over rows) and layer by layer."""

    rows: int
    dtype: str
    round_trip_max: float
    round_trip_median: float
    logdet_gap_max: float
    logdet_gap_median: float
    max_layer_scale: float
    layers: tuple[LayerHealth, ...]
    # the flow's round trip with each column's error divided by its scale (measure's `scale`): None without one
    round_trip_scaled_max: float | None = None
    round_trip_scaled_median: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _layers(flow: Flow) -> list[Transform]:
    return list(flow.transform) if isinstance(flow.transform, Compose) else [flow.transform]


def _row_error(a: Tensor, b: Tensor) -> Tensor:
    """Per-row max |a - b|, with NaN and Inf as +inf (double, on the CPU)."""
    error = (a - b).abs().flatten(1).double().cpu()
    return error.nan_to_num(nan=torch.inf, posinf=torch.inf).amax(1)


def _magnitude(logabsdet: Tensor) -> Tensor:
    return logabsdet.abs().double().cpu().nan_to_num(nan=torch.inf, posinf=torch.inf)


def column_scale(x: Tensor) -> Tensor:
    """Each column's scale for a relative round trip: its standard deviation over the rows (float32
    resolves a column to about 1e-7 of its size, and a flow's error grows with its spread); a
    column without spread (one row, or constant) is scaled by its largest |value|, at least 1."""
    rows = x.double().flatten(1)
    spread = rows.std(0) if rows.shape[0] > 1 else torch.zeros(rows.shape[1], dtype=torch.float64)
    size = rows.abs().amax(0).clamp(min=1.0)
    return torch.where(spread > 0, spread, size).nan_to_num(nan=1.0, posinf=1.0)


@torch.no_grad()
def measure(flow: Flow, x: Tensor, context: Tensor | None = None, batch_size: int = 4096, scale: Tensor | None = None) -> Health:
    """Round-trip error, log-det gap and layer scales of `flow` on the rows of x (in x's dtype:
    pass a float64 flow and x to measure float64). With `scale` (one number per column, e.g.
    column_scale(x)), also the round trip with each column's error divided by its scale."""
    flow.eval()
    x, context = flow._prepare(x, context)
    layers = _layers(flow)
    round_trip, gap, scaled = [], [], []
    worst = torch.zeros(len(layers), 3, dtype=torch.float64)  # round trip, log-det gap, |logabsdet|
    for start in range(0, x.shape[0], batch_size):
        xb = x[start : start + batch_size]
        cb = context[start : start + batch_size] if context is not None else None
        z, forward = flow.transform(xb, cb)
        back, inverse = flow.transform.inverse(z, cb)
        round_trip.append(_row_error(back, xb))
        if scale is not None:
            scaled.append(_row_error(back.double().cpu().flatten(1) / scale, xb.double().cpu().flatten(1) / scale))
        gap.append(_magnitude(forward + inverse))
        h = xb
        for i, layer in enumerate(layers):
            out, logabsdet = layer(h, cb)
            h_back, inverse = layer.inverse(out, cb)
            found = torch.stack([_row_error(h_back, h).max(), _magnitude(logabsdet + inverse).max(), _magnitude(logabsdet).max()])
            worst[i] = torch.maximum(worst[i], found)
            h = out
    round_trip, gap = torch.cat(round_trip), torch.cat(gap)
    per_layer = tuple(LayerHealth(i, type(layer).__name__, *map(float, worst[i])) for i, layer in enumerate(layers))
    return Health(
        rows=int(x.shape[0]), dtype=str(x.dtype).removeprefix("torch."),
        round_trip_max=float(round_trip.max()), round_trip_median=float(round_trip.median()),
        logdet_gap_max=float(gap.max()), logdet_gap_median=float(gap.median()),
        max_layer_scale=float(worst[:, 2].max()), layers=per_layer,
        round_trip_scaled_max=float(torch.cat(scaled).max()) if scaled else None,
        round_trip_scaled_median=float(torch.cat(scaled).median()) if scaled else None,
    )


@torch.no_grad()
def row_errors(flow: Flow, x: Tensor, context: Tensor | None = None, scale: Tensor | None = None,
               batch_size: int = 4096) -> tuple[Tensor, Tensor]:
    """Per row: the round-trip error (divided by `scale` per column, if given) and the log-det gap,
    in float64 on the CPU, for finding the rows that measure's maxima come from."""
    flow.eval()
    x, context = flow._prepare(x, context)
    errors, gaps = [], []
    for start in range(0, x.shape[0], batch_size):
        xb = x[start : start + batch_size]
        cb = context[start : start + batch_size] if context is not None else None
        z, forward = flow.transform(xb, cb)
        back, inverse = flow.transform.inverse(z, cb)
        if scale is not None:
            back, xb = back.double().cpu().flatten(1) / scale, xb.double().cpu().flatten(1) / scale
        errors.append(_row_error(back, xb))
        gaps.append(_magnitude(forward + inverse))
    return torch.cat(errors), torch.cat(gaps)


# the share of rows that may fail in float32 and pass in float64 without failing a check: float32's
# rounding amplified at a few extreme rows (diamonds' default run: 1 of 10,788 held-out rows, far in
# the flow's tails, 0.19 column std off in float32, 2e-10 in float64); a defect fails in float64 too
FLOAT32_ONLY_SHARE = 1e-3


def float32_only_rows(flow: Flow, x: Tensor, context: Tensor | None, scale: Tensor | None,
                      tolerance: float, logdet_tolerance: float) -> list[int]:
    """The rows of float32 x past a tolerance (round trip divided by `scale`, log-det gap), when they
    are at most FLOAT32_ONLY_SHARE of the rows (or one row) and every one of them passes with the flow and the
    rows in float64; otherwise [] (the rows fail for a reason float64 does not remove)."""
    error, gap = row_errors(flow, x, context, scale=scale)
    bad = torch.nonzero((error > tolerance) | (gap > logdet_tolerance)).flatten()
    if len(bad) == 0 or len(bad) > max(1.0, FLOAT32_ONLY_SHARE * len(x)):  # one row of a small split may be extreme too
        return []
    wide = copy.deepcopy(flow).double()
    error64, gap64 = row_errors(wide, x[bad].double(), context[bad].double() if context is not None else None, scale=scale)
    return bad.tolist() if bool((error64 <= tolerance).all() and (gap64 <= logdet_tolerance).all()) else []


FAR_REACH = 10.0  # column standard deviations beyond the data's range
FAR_SHARE = 0.01  # of sampled cells: more is a defect of the flow's tails, not the data's


@torch.no_grad()
def far_sample_share(flow: Flow, x: Tensor, context: Tensor | None = None, n: int = 2000, seed: int = 0,
                     reach: float = FAR_REACH) -> float:
    """The share of sampled cells more than `reach` column standard deviations below the column's
    smallest value in x or above its largest: a flow whose map flattens in its tails sends the
    base's tails there (a log-likelihood on x and its round trip can both look healthy).
    With context, one sample per row of x's context (the first n rows)."""
    rows = x.double().flatten(1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if context is not None:
            samples = flow.sample(min(n, len(context)), context=context[:n])
        else:
            samples = flow.sample(n)
    samples = samples.double().flatten(1).cpu().nan_to_num(nan=torch.inf)
    scale = column_scale(rows)
    low, high = rows.amin(0) - reach * scale, rows.amax(0) + reach * scale
    return float(((samples < low) | (samples > high)).double().mean())


def table(health: Health) -> str:
    """The per-layer table and the flow's totals, as printed by `flowforge check`."""
    lines = [f"{'layer':<28}{'round trip':>12}{'log-det gap':>13}{'|log det|':>11}"]
    for layer in health.layers:
        lines.append(f"{f'{layer.index:>3} {layer.name}':<28}{layer.round_trip:>12.2e}{layer.logdet_gap:>13.2e}{layer.scale:>11.3g}")
    lines.append(f"{'flow, max':<28}{health.round_trip_max:>12.2e}{health.logdet_gap_max:>13.2e}{health.max_layer_scale:>11.3g}")
    lines.append(f"{'flow, median':<28}{health.round_trip_median:>12.2e}{health.logdet_gap_median:>13.2e}")
    if health.round_trip_scaled_max is not None:
        lines.append(f"{'flow, max / column std':<28}{health.round_trip_scaled_max:>12.2e}")
    return "\n".join(lines)
