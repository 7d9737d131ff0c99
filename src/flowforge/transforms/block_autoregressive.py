"""BlockNeuralAutoregressive (BNAF): one masked network that is itself the autoregressive bijection."""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.functional import softplus

from ..errors import FlowforgeError, check_int
from .base import Transform
from .monotone import bisect, default_tolerance

MIN_SKIP = 1e-2
# The parameters are stored divided by RATE and used multiplied by it, so an Adam step at the usual
# lr 1e-3 moves the weights as the paper's lr 1e-1 does: at lr 1e-3 on the raw weights a BNAF stays
# close to its initial, near-Gaussian map (family benchmark, moons: 2.15 nats after 400 steps,
# against 0.54 with RATE = 100 and 0.36 for NSF).
RATE = 100.0
SKIP = 0.1  # the skip alpha starts small: the network, not the identity, carries the map (as the paper's)


class MaskedBlockLinear(nn.Module):
    """A (D * out_units, D * in_units) linear map, block lower-triangular in the D features, its
    diagonal blocks positive (exp of the weights), each row weight-normalised:

        W = exp(log_g) * V / ||V||_row,   V = exp(W_raw) on diagonal blocks, W_raw below, 0 above

    W_raw, log_g and the bias are stored divided by `parameter_rate` (RATE), a fixed
    preconditioner: Adam at lr 1e-3 then moves them as the paper's lr 1e-1 would.
    """

    def __init__(self, features: int, in_units: int, out_units: int) -> None:
        super().__init__()
        self.features, self.in_units, self.out_units = features, in_units, out_units
        self.parameter_rate = RATE  # weight, bias and log_g are used multiplied by it
        rows = torch.arange(features).repeat_interleave(out_units)
        cols = torch.arange(features).repeat_interleave(in_units)
        self.register_buffer("diagonal", (rows[:, None] == cols[None, :]).float(), persistent=False)
        self.register_buffer("below", (rows[:, None] > cols[None, :]).float(), persistent=False)
        weight = torch.empty(features * out_units, features * in_units)
        nn.init.xavier_uniform_(weight)
        self.weight = nn.Parameter(weight / RATE)
        bound = 1 / math.sqrt(features * in_units)  # nn.Linear's bias init: units of one feature differ by it
        self.bias = nn.Parameter(torch.empty(features * out_units).uniform_(-bound, bound) / RATE)
        # row norms g ~ U(0, 1), as the paper's code: outputs start at unit scale, the tanh unsaturated
        self.log_g = nn.Parameter(torch.rand(features * out_units).clamp_min(1e-3).log() / RATE)

    def _unnormalised(self) -> tuple[Tensor, Tensor]:
        w = RATE * self.weight
        v = w.exp() * self.diagonal + w * self.below
        return v, v.norm(dim=1, keepdim=True)

    def weights(self) -> tuple[Tensor, Tensor]:
        """The weight matrix, and its diagonal blocks (D, out_units, in_units), all positive."""
        v, norm = self._unnormalised()
        weight = (RATE * self.log_g).exp()[:, None] * v / norm
        d, o, i = self.features, self.out_units, self.in_units
        blocks = weight.view(d, o, d, i).diagonal(dim1=0, dim2=2).permute(2, 0, 1)
        return weight, blocks


class BlockNeuralAutoregressive(Transform):
    """BNAF: z = net(x) + alpha * x, net a masked MLP whose Jacobian is lower triangular with a
    positive diagonal, so each z_i increases in x_i given x_<i.

        h_0 = x,  h_l = tanh(W_l h_(l-1) + b_l) (+ the context's linear term in the first layer)
        dz_i/dx_i = (product of the diagonal blocks and tanh slopes along the layers) + alpha_i

    The diagonal blocks are positive, so the product is, and the learnt skip alpha * x
    (alpha >= 1e-2) makes every z_i onto R, so every latent has a preimage; and as the hidden
    units lie in (-1, 1), |net(x)_i| <= M_i = sum_k |W_ik| + |b_i| for the last layer's W, b:
    x_i lies in [(z_i - M_i) / alpha_i, (z_i + M_i) / alpha_i]. The inverse bisects feature by
    feature (D rounds, each of ~log2(width / tol) network passes) to `tol` (None: sqrt of the
    dtype's epsilon), then takes one Newton step; with autograd on, one more Newton step with
    the full (triangular) Jacobian gives the inverse its exact gradient.

    Args:
        features: D.
        hidden: hidden widths, each rounded up to a multiple of D (units per feature).
        context_features: size of the context vector (0 for none).

    Reference: De Cao et al., Block Neural Autoregressive Flow, 2019 (arXiv:1904.04676).
    """

    has_sequential_inverse = True

    def __init__(self, features: int, hidden: Sequence[int] = (64, 64), context_features: int = 0, tol: float | None = None) -> None:
        super().__init__()
        check_int("features", features, 1)
        if not hidden:
            raise FlowforgeError("BNAF needs at least one hidden layer (its bounded units give the inverse its bracket)")
        units = [1] + [max(1, math.ceil(h / features)) for h in hidden] + [1]
        self.features, self.context_features, self.tol = features, context_features, tol
        self.layers = nn.ModuleList(MaskedBlockLinear(features, a, b) for a, b in itertools.pairwise(units))
        self.context_layer = nn.Linear(context_features, features * units[1]) if context_features else None
        self.skip = nn.Parameter(torch.full((features,), math.log(math.expm1(SKIP - MIN_SKIP))))

    def _alpha(self) -> Tensor:
        return MIN_SKIP + softplus(self.skip)

    def _run(self, x: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        """z and log dz_i/dx_i, (B, D)."""
        if self.context_layer is not None and (context is None or context.shape != (x.shape[0], self.context_features)):
            got = None if context is None else tuple(context.shape)
            raise FlowforgeError(f"context: expected ({x.shape[0]}, {self.context_features}), got {got}")
        h, jacobian = x, x.new_ones(x.shape[0], self.features, 1)
        for index, layer in enumerate(self.layers):
            weight, blocks = layer.weights()
            h = h @ weight.t() + RATE * layer.bias
            if index == 0 and self.context_layer is not None:
                h = h + self.context_layer(context)
            # d h_i / d x_i (B, D, out) = blocks (D, out, in) applied to the previous (B, D, in); all
            # positive, so a product that underflows only drops a term far below alpha
            jacobian = torch.einsum("doi,bdi->bdo", blocks, jacobian)
            if index < len(self.layers) - 1:
                h = torch.tanh(h)
                jacobian = jacobian * (1 - h * h).view(x.shape[0], self.features, -1)
        alpha = self._alpha()
        return h + alpha * x, torch.log(jacobian.view(x.shape[0], self.features) + alpha)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        z, log_diagonal = self._run(x, context)
        return z, log_diagonal.sum(1)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            last = self.layers[-1].weights()[0]
            reach = last.abs().sum(1) + RATE * self.layers[-1].bias.abs()
            alpha = self._alpha()
            held = None if context is None else context.detach()
            tol = self.tol if self.tol is not None else default_tolerance(z.dtype)
            x = z.new_zeros(z.shape)
            for i in range(self.features):
                def f(v: Tensor, i: int = i) -> Tensor:
                    trial = x.clone()
                    trial[:, i] = v
                    return self._run(trial, held)[0][:, i]

                x[:, i] = bisect(f, z[:, i], (z[:, i] - reach[i]) / alpha[i], (z[:, i] + reach[i]) / alpha[i], tol)
                value, log_diagonal = self._run(x, held)
                x[:, i] = x[:, i] + (z[:, i] - value[:, i]) / log_diagonal[:, i].exp()  # one Newton step
        if torch.is_grad_enabled():
            x = implicit_step(lambda v: self._run(v, context)[0], z, x)
        return x, -self._run(x, context)[1].sum(1)


def jacobian_rows(f, x: Tensor, create_graph: bool = False) -> Tensor:
    """(B, D, D) per-sample Jacobians of a row-wise f: (B, D) -> (B, D), by D backward passes
    (rows do not interact, so the batch sum's gradient is each row's)."""
    with torch.enable_grad():
        if not x.requires_grad:
            x = x.detach().requires_grad_(True)
        y = f(x)
        rows = [torch.autograd.grad(y[:, i].sum(), x, retain_graph=True, create_graph=create_graph)[0] for i in range(y.shape[1])]
    return torch.stack(rows, dim=1)


def implicit_step(f, z: Tensor, x0: Tensor) -> Tensor:
    """x0 - J^-1 (f(x0) - z) with the Jacobian J = df/dx(x0) held constant: a Newton step in
    value, and the implicit derivatives dx/dz = J^-1, dx/dtheta = -J^-1 df/dtheta in autograd."""
    x0 = x0.detach()
    jacobian = jacobian_rows(f, x0).detach()
    residual = f(x0) - z
    return x0 - torch.linalg.solve(jacobian, residual[..., None])[..., 0]
