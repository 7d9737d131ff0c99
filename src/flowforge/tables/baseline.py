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

TAIL_WEIGHT = 1e-3  # TableFlow's mixture weight of this baseline: a row scores at most -log(1e-3) = 6.9 nats worse


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

    def latent_log_prob(self, y: torch.Tensor) -> torch.Tensor:
        """(m, D) latents -> (m,) float64 log N(y; mu, Sigma) (zeros when there are no continuous columns)."""
        if not y.shape[1]:
            return torch.zeros(len(y), dtype=torch.float64)
        return torch.distributions.MultivariateNormal(self.mean, covariance_matrix=self.cov).log_prob(y.double())

    def codes_log_prob(self, codes: torch.Tensor) -> torch.Tensor:
        """(n, C) category codes -> (n,) float64 sum of their log smoothed frequencies."""
        total = torch.zeros(len(codes), dtype=torch.float64)
        for k, f in enumerate(self.log_frequencies):
            total = total + f.double()[codes[:, k]]
        return total

    @torch.no_grad()
    def sample_parts(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """n draws: (n, D) float64 latents from N(mu, Sigma) and (n, C) codes from the frequencies."""
        z = torch.randn(n, len(self.mean), generator=generator, dtype=torch.float64)
        y = self.mean + z @ torch.linalg.cholesky(self.cov).T if len(self.mean) else z
        if n == 0 or not self.log_frequencies:
            return y, torch.zeros(n, len(self.log_frequencies), dtype=torch.long)
        codes = [torch.multinomial(f.double().exp(), n, replacement=True, generator=generator) for f in self.log_frequencies]
        return y, torch.stack(codes, 1)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The fitted parameters as tensors (TableFlow stores them without pickle)."""
        return {"mean": self.mean, "cov": self.cov, **{f"log_frequencies.{k}": f for k, f in enumerate(self.log_frequencies)}}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> GaussianBaseline:
        self.mean, self.cov = state["mean"], state["cov"]
        self.log_frequencies = [state[f"log_frequencies.{k}"] for k in range(len(self.schema.discrete))]
        return self
