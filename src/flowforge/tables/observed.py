"""The density of a row's observed continuous cells when some are blank: an importance-sampling
estimate, labelled as such (TableFlow with missing="model").

A coupling flow's marginal over some of its inputs, p(y_O | c) = integral of q(y_O, y_M | c) dy_M,
has no closed form. With K draws y_M^k from a proposal r(y_M | y_O) and, for dequantised observed
cells, K draws u_k of their noise (latent.py),

    p_hat = (1/K) sum_k  f(c, y_O(u_k), y_M^k) |dy_O/dx_O|(u_k) / r(y_M^k | y_O(u_k))

is unbiased for the row's probability (f: TableFlow's mixture with P(c), scoring.joint_log_prob),
so log p_hat is a lower bound in expectation (Jensen) that tightens as K grows; its standard
error is estimated from the K weights w_k by the delta method, sd(w) / (sqrt(K) mean(w)). The
proposal is the defensive mixture 0.5 N(m, S) + 0.5 N(m, 4 S) of GaussianBaseline's Gaussian
conditioned on y_O (closed form), with the wider part for the flow's heavier tails.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .latent import noise
from .support import dequantise, to_latent

IMPORTANCE_SAMPLES = 1024  # draws per row with blank continuous cells
BATCH = 65_536  # rows x draws through the flow at once


def _observed_latents(schema, x: Tensor, u: Tensor, observed: np.ndarray) -> tuple[Tensor, Tensor]:
    """(m, D) raw values (NaN where blank) and noise -> latents (NaN where blank) and the summed
    log|dy/dx| (with dequantised widths) of the observed cells, (m,) float64."""
    ys, logdet = [], torch.zeros(len(x), dtype=torch.float64)
    for j, c in enumerate(schema.continuous):
        value, log_width = dequantise(c, x[:, j], u[:, j])
        y, logabsdet = to_latent(c, value)
        ys.append(y)
        if observed[j]:
            logdet = logdet + logabsdet + log_width
    return torch.stack(ys, 1), logdet


def _conditional(mean: Tensor, cov: Tensor, observed: np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
    """The Gaussian of the blank latents given the observed ones: (A, offset, Cholesky factor) with
    conditional mean offset + y_O @ A.T."""
    o, m = torch.from_numpy(np.flatnonzero(observed)), torch.from_numpy(np.flatnonzero(~observed))
    if not len(o):
        return torch.zeros(len(m), 0, dtype=mean.dtype), mean[m], torch.linalg.cholesky(cov[m][:, m])
    a = torch.linalg.solve(cov[o][:, o], cov[o][:, m]).T  # S_MO S_OO^-1
    conditional = cov[m][:, m] - a @ cov[o][:, m]
    conditional = (conditional + conditional.T) / 2 + 1e-9 * torch.eye(len(m), dtype=mean.dtype) * torch.trace(conditional).clamp_min(1e-12)
    return a, mean[m] - a @ mean[o], torch.linalg.cholesky(conditional)


def _gaussian_log_prob(z: Tensor, log_det_l: Tensor, scale: float) -> Tensor:
    """log N of standardised draws z (... , d) under N(., scale^2 L L^T)."""
    d = z.shape[-1]
    return -0.5 * (z ** 2).sum(-1) - d * (math.log(scale) + 0.5 * math.log(2 * math.pi)) - log_det_l


@torch.no_grad()
def estimate(model, codes: np.ndarray, x: np.ndarray, joint_log_prob, samples: int = IMPORTANCE_SAMPLES,
             seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n,) log p_hat of rows with blank continuous cells (NaN in x) and its standard error.

    codes (n, C) >= 0, x (n, D) raw values; joint_log_prob(model, codes, y) -> (m,) float64 log f."""
    baseline = model.baseline
    log_p, error = np.full(len(x), np.nan), np.full(len(x), np.nan)
    if baseline is None or not len(x):
        return log_p, error
    generator = torch.Generator().manual_seed(seed)
    blank = np.isnan(x)
    for mask in np.unique(blank, axis=0):
        rows = np.flatnonzero((blank == mask).all(1))
        observed = ~mask
        a, offset, chol = _conditional(baseline.mean.double(), baseline.cov.double(), observed)
        log_det_l = torch.log(torch.diagonal(chol)).sum()
        per_batch = max(1, BATCH // samples)
        for start in range(0, len(rows), per_batch):
            part = rows[start : start + per_batch]
            n = len(part)
            raw = torch.from_numpy(x[part]).expand(samples, -1, -1).reshape(-1, x.shape[1])
            u = noise(model.schema, n, samples, generator).reshape(-1, x.shape[1])
            y, logdet = _observed_latents(model.schema, raw, u, observed)
            centre = offset + y[:, torch.from_numpy(np.flatnonzero(observed))] @ a.T
            z = torch.randn(len(y), int(mask.sum()), generator=generator, dtype=torch.float64)
            wide = torch.rand(len(y), generator=generator) < 0.5
            scale = torch.where(wide, 2.0, 1.0)[:, None]
            y[:, torch.from_numpy(np.flatnonzero(mask))] = centre + scale * z @ chol.T
            standard = scale * z  # the draw in units of the narrow proposal's factor
            log_r = torch.logaddexp(_gaussian_log_prob(standard, log_det_l, 1.0), _gaussian_log_prob(standard / 2, log_det_l, 2.0)) + math.log(0.5)
            filled = torch.from_numpy(codes[part]).repeat(samples, 1)
            log_w = (joint_log_prob(model, filled, y) + logdet - log_r).reshape(samples, n)
            log_w = torch.where(torch.isnan(log_w), -torch.inf, log_w)
            log_p[part] = (torch.logsumexp(log_w, 0) - math.log(samples)).numpy()
            top = log_w.max(0).values
            w = torch.exp(log_w - torch.where(torch.isfinite(top), top, 0.0))
            error[part] = (w.std(0) / (math.sqrt(samples) * w.mean(0))).numpy()
    return log_p, error
