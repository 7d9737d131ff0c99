"""Planar, radial and Sylvester flows: the classic variational-inference families.

Each is a map from latent z to data x with a cheap log-determinant, but no analytic inverse.
In flowforge's contract `inverse` runs latent -> data, so these layers implement `inverse`
(used by sample and sample_and_log_prob, which is what variational inference needs) and
their `forward` raises FlowforgeError: a flow built on them has no log_prob of given data and
no encode. Fit them by maximising E_q[log p(x) - log q(x)] over `flow.sample_and_log_prob`.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.functional import softplus

from ..errors import FlowforgeError, check_int
from .base import Transform


class OneWay(Transform):
    """A latent -> data map with no analytic inverse: forward (data -> latent) raises."""

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raise FlowforgeError(
            f"{type(self).__name__} flows have no analytic inverse: there is no log_prob or encode of given data; "
            "use sample / sample_and_log_prob (variational inference), or an invertible model (nsf, maf, naf, ...) for data")

    def _check(self, z: Tensor, context: Tensor | None) -> None:
        if context is not None:
            raise FlowforgeError(f"{type(self).__name__} takes no context")


class Planar(OneWay):
    """x = z + u' tanh(w^T z + b), log|det dx/dz| = log(1 + u'^T w tanh'(w^T z + b)).

    u' = u + (m(w^T u) - w^T u) w / |w|^2 with m(a) = -1 + softplus(a), so w^T u' > -1 and the
    map is invertible (the paper's constraint), though not in closed form.

    Reference: Rezende & Mohamed, Variational Inference with Normalizing Flows, 2015 (arXiv:1505.05770).
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        check_int("features", features, 1)
        self.w = nn.Parameter(torch.randn(features) / math.sqrt(features))
        self.u = nn.Parameter(torch.zeros(features))
        self.b = nn.Parameter(torch.zeros(()))

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(z, context)
        wu = self.w @ self.u
        u = self.u + (softplus(wu) - 1 - wu) * self.w / (self.w @ self.w)
        h = torch.tanh(z @ self.w + self.b)
        return z + h[:, None] * u, torch.log1p((1 - h * h) * (self.w @ u))


class Radial(OneWay):
    """x = z + beta (z - z0) / (alpha + r), r = |z - z0|; alpha > 0, beta >= -alpha.

        log|det| = (D - 1) log(1 + beta / (alpha + r)) + log(1 + beta alpha / (alpha + r)^2)

    Reference: Rezende & Mohamed, Variational Inference with Normalizing Flows, 2015 (arXiv:1505.05770).
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        check_int("features", features, 1)
        self.features = features
        self.z0 = nn.Parameter(torch.randn(features) / math.sqrt(features))
        self.alpha_raw = nn.Parameter(torch.zeros(()))
        self.beta_raw = nn.Parameter(torch.zeros(()))

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(z, context)
        alpha = softplus(self.alpha_raw)
        beta = -alpha + softplus(self.beta_raw)
        diff = z - self.z0
        r = diff.norm(dim=1)
        h = 1 / (alpha + r)
        logabsdet = (self.features - 1) * torch.log1p(beta * h) + torch.log1p(beta * alpha * h * h)
        return z + (beta * h)[:, None] * diff, logabsdet


class Sylvester(OneWay):
    """Orthogonal Sylvester flow: x = z + Q R tanh(R~ Q^T z + b).

    Q = a product of `reflections` Householder reflections (orthogonal); R, R~ upper triangular
    with diagonals tanh(.), so R_ii R~_ii > -1 and the map is invertible. By Sylvester's
    determinant identity, log|det| = sum_i log(1 + R_ii R~_ii tanh'(.)_i).

    Reference: van den Berg et al., Sylvester Normalizing Flows for Variational Inference, 2018
    (arXiv:1803.05649).
    """

    def __init__(self, features: int, reflections: int | None = None) -> None:
        super().__init__()
        check_int("features", features, 1)
        count = features if reflections is None else reflections
        check_int("reflections", count, 1)
        self.householder = nn.Parameter(torch.randn(count, features))
        self.r = nn.Parameter(torch.randn(features, features) * 0.1)
        self.r_tilde = nn.Parameter(torch.randn(features, features) * 0.1)
        self.b = nn.Parameter(torch.zeros(features))

    def _q(self) -> Tensor:
        q = torch.eye(self.b.shape[0], dtype=self.b.dtype, device=self.b.device)
        for v in self.householder:
            q = q - 2 * torch.outer(q @ v, v) / (v @ v)
        return q

    @staticmethod
    def _triangular(raw: Tensor) -> tuple[Tensor, Tensor]:
        diagonal = torch.tanh(raw.diagonal())
        return torch.triu(raw, 1) + torch.diag(diagonal), diagonal

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(z, context)
        q = self._q()
        r, r_diag = self._triangular(self.r)
        r_tilde, r_tilde_diag = self._triangular(self.r_tilde)
        h = torch.tanh(z @ q @ r_tilde.t() + self.b)
        x = z + h @ r.t() @ q.t()
        return x, torch.log1p((1 - h * h) * r_diag * r_tilde_diag).sum(1)
