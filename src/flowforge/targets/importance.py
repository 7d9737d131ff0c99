"""Importance sampling with a flow as the proposal: weights, Kish ESS, log Z, expectations, resampling.

With x_i ~ q (the flow) and w_i = p~(x_i) / q(x_i):

    Z_hat = mean(w)                          unbiased for Z = integral of p~
    log_z = log Z_hat,  log_z_stderr = sd(w) / (sqrt(n) mean(w))   (delta method)
    ESS   = (sum w)^2 / sum w^2,  reported as a fraction of the n samples drawn (Kish)
    E_p[f] ~ sum w_i f(x_i) / sum w_i        (self-normalised)

exp(log_z) is unbiased; log_z itself is low by about log_z_stderr^2 / 2 (Jensen), which is
negligible when the standard error is small.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import FlowforgeError, check_int
from ..flows.flow import Flow
from .base import Target, as_target


def failed_rows(log_p: Tensor) -> Tensor:
    """(batch,) True where the target failed: NaN or +inf (-inf is a density of zero, not a failure)."""
    return log_p.isnan() | (log_p == math.inf)


@dataclass(frozen=True)
class ImportanceSamples:
    """Samples of the flow with their log importance weights; rows where the target failed are dropped.

    Attributes:
        x: (kept, features) samples.
        log_q: (kept,) the flow's log-density of each sample.
        log_p: (kept,) the target's unnormalised log-density.
        drawn: how many samples were drawn, dropped ones included.
        context: (kept, context_features) or None.
    """

    x: Tensor
    log_q: Tensor
    log_p: Tensor
    drawn: int
    context: Tensor | None = None

    @property
    def dropped(self) -> int:
        """Samples drawn whose target value was NaN or +inf (or whose flow value was not finite)."""
        return self.drawn - self.x.shape[0]

    @property
    def log_weights(self) -> Tensor:
        """(kept,) log w = log p~(x) - log q(x), in float64."""
        return self.log_p.double() - self.log_q.double()

    @property
    def ess(self) -> float:
        """Kish effective sample size as a fraction of the samples drawn: (sum w)^2 / (n sum w^2)."""
        lw = self.log_weights
        if lw.numel() == 0 or not bool(torch.isfinite(lw).any()):
            return 0.0
        return float(torch.exp(2 * torch.logsumexp(lw, 0) - torch.logsumexp(2 * lw, 0))) / self.drawn

    @property
    def log_z(self) -> float:
        """log of the unbiased estimate mean(w) of the normaliser Z (over the kept samples)."""
        lw = self.log_weights
        if lw.numel() == 0:
            return -math.inf
        return float(torch.logsumexp(lw, 0) - math.log(lw.numel()))

    @property
    def log_z_stderr(self) -> float:
        """Standard error of log_z: sd(w) / (sqrt(n) mean(w)), computed on w / max(w)."""
        lw = self.log_weights
        if lw.numel() < 2 or not bool(torch.isfinite(lw).any()):
            return math.inf
        w = torch.exp(lw - lw.max())
        return float(w.std() / (math.sqrt(lw.numel()) * w.mean()))

    @property
    def normalized_weights(self) -> Tensor:
        """(kept,) self-normalised weights, summing to 1."""
        return torch.softmax(self.log_weights, 0)

    def expectation(self, f: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        """Self-normalised estimate of E_p[f(x)] (default f: the identity, giving the mean)."""
        values = self.x if f is None else f(self.x)
        weights = self.normalized_weights.to(values.dtype)
        return torch.einsum("n,n...->...", weights, values)

    def std(self) -> Tensor:
        """Self-normalised estimate of the target's standard deviation per feature."""
        mean = self.expectation()
        return self.expectation(lambda x: (x - mean) ** 2).sqrt()

    def resample(self, n: int | None = None, generator: torch.Generator | None = None) -> Tensor:
        """n points drawn with replacement with probability w_i / sum w (multinomial resampling):
        approximately distributed as the target."""
        n = self.drawn if n is None else n
        check_int("n", n, 1)
        weights = self.normalized_weights
        if not bool(torch.isfinite(weights).all()) or weights.numel() == 0:
            raise FlowforgeError("resample: no sample has a finite, positive weight")
        rows = torch.multinomial(weights.float().cpu(), n, replacement=True, generator=generator)
        return self.x[rows.to(self.x.device)]

    def summary(self) -> dict[str, Any]:
        """ess, log_z, log_z_stderr, samples (drawn) and dropped, as plain numbers."""
        return {"ess": self.ess, "log_z": self.log_z, "log_z_stderr": self.log_z_stderr,
                "samples": self.drawn, "dropped": self.dropped}


@torch.no_grad()
def importance_sample(flow: Flow, target: Target | Callable[..., Tensor] | str, n: int = 10_000,
                      context: Tensor | None = None, chunk_size: int = 8192) -> ImportanceSamples:
    """Draw n samples from `flow` and weight them against `target`.

    Args:
        flow: the proposal q, sampled in eval mode.
        target: a Target, a built-in name, or a callable log_density (features taken from the flow).
        n: samples to draw.
        context: for a conditional flow and target: (context_features,) for one condition, or
            (n, context_features), one per sample (then log_z is that of the mixture over contexts).

    Example:
        >>> import torch, flowforge
        >>> flow = flowforge.RealNVP(2, layers=2, hidden=(8,))  # untrained: a standard normal
        >>> result = flowforge.importance_sample(flow, lambda x: -0.5 * (x ** 2).sum(1), n=1000)
        >>> round(result.ess, 3), round(result.log_z, 3)  # the target is the flow, unnormalised: Z = 2 pi
        (1.0, 1.838)
    """
    check_int("n", n, 1)
    target = as_target(target, features=flow.event_shape[0] if len(flow.event_shape) == 1 else None,
                       context_features=flow.context_features)
    context = _expand_context(context, n, flow)
    was_training = flow.training
    flow.eval()
    parts: list[tuple[Tensor, Tensor, Tensor, Tensor | None]] = []
    try:
        for start in range(0, n, chunk_size):
            c = context[start:start + chunk_size] if context is not None else None
            m = min(chunk_size, n - start)
            x, log_q = flow.sample_and_log_prob(m, context=c)
            log_p = target(x, c)
            keep = ~failed_rows(log_p) & torch.isfinite(x).all(1) & torch.isfinite(log_q)
            parts.append((x[keep], log_q[keep], log_p[keep], c[keep] if c is not None else None))
    finally:
        flow.train(was_training)
    x, log_q, log_p = (torch.cat([p[i] for p in parts]) for i in range(3))
    kept_context = torch.cat([p[3] for p in parts]) if context is not None else None
    return ImportanceSamples(x, log_q, log_p, n, kept_context)


def _expand_context(context: Tensor | None, n: int, flow: Flow) -> Tensor | None:
    if context is None:
        if flow.context_features:
            raise FlowforgeError(f"importance_sample: this flow is conditional: pass a context of "
                                 f"{flow.context_features} features")
        return None
    context = torch.as_tensor(context, dtype=flow._anchor().dtype, device=flow._anchor().device)
    if context.dim() == 1:
        context = context.expand(n, -1)
    if context.shape != (n, flow.context_features):
        raise FlowforgeError(f"importance_sample: context must have shape ({flow.context_features},) or "
                             f"({n}, {flow.context_features}), got {tuple(context.shape)}")
    return context
