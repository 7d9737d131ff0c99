"""GaussianBaseline: the yardstick a table model must beat on held-out rows.

    log p(row) = log N(y; mu, Sigma) + sum log|dy/dx| + sum_k log f_k(c_k)

y are the continuous columns after the support maps (latent.py, dequantised integers and dates
as in TableFlow), N a full-covariance Gaussian fitted by maximum likelihood (a 1e-6 ridge), and
f_k the add-half smoothed frequencies of each categorical column, taken as independent.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .discrete import smoothed_log_frequencies
from .encode import encode
from .infer import infer_schema
from .latent import has_dequantised, mean_exp, noise, scoring_noise, to_latents
from .schema import Schema


class GaussianBaseline:
    """fit(df) then log_prob(df) -> (n,) float64; rows with blank or unseen cells are dropped
    in fit and get NaN (blank) or -inf (unseen, outside the support) in log_prob."""

    def __init__(self, schema: Schema | None = None, seed: int = 0, samples: int = 16) -> None:
        self.schema, self.seed, self.samples = schema, seed, samples

    def fit(self, df: pd.DataFrame) -> GaussianBaseline:
        self.schema = self.schema or infer_schema(df)
        encoded = encode(self.schema, df)
        keep = ~encoded.missing & ~encoded.outside
        generator = torch.Generator().manual_seed(self.seed)
        x = torch.from_numpy(encoded.continuous[keep])
        y, _ = to_latents(self.schema, x, noise(self.schema, len(x), 1, generator)[0])
        self.mean = y.mean(0)
        centred = y - self.mean
        cov = centred.T @ centred / max(1, len(y))
        self.cov = cov + 1e-6 * (torch.trace(cov) / max(1, len(cov)) + 1e-12) * torch.eye(len(cov), dtype=cov.dtype)
        self.log_frequencies = [smoothed_log_frequencies(encoded.codes[keep, k], len(c.levels)) for k, c in enumerate(self.schema.discrete)]
        return self

    def log_prob(self, df: pd.DataFrame) -> np.ndarray:
        encoded = encode(self.schema, df)
        samples = self.samples if has_dequantised(self.schema) else 1
        x = torch.from_numpy(np.nan_to_num(encoded.continuous, nan=1.0))
        u = scoring_noise(self.schema, samples, self.seed + 1)
        logs = []
        for s in range(samples):
            y, logabsdet = to_latents(self.schema, x, u[s])
            if y.shape[1]:
                gaussian = torch.distributions.MultivariateNormal(self.mean, covariance_matrix=self.cov)
                logabsdet = logabsdet + gaussian.log_prob(y.nan_to_num(0.0))
            logs.append(logabsdet)
        total = mean_exp(torch.stack(logs)).numpy()
        codes = np.maximum(encoded.codes, 0)
        for k, f in enumerate(self.log_frequencies):
            total = total + f.numpy()[codes[:, k]]
        total[encoded.outside] = -np.inf
        total[encoded.missing] = np.nan
        return total
