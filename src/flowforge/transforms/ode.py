"""ODETransform: the flow of an ODE dx/dt = v(t, x, context) from t = 0 (data) to t = 1 (latent).

    z = x(1),  x(0) = x,       log|det dz/dx| = integral_0^1 div v(t, x(t)) dt

The log-determinant is integrated beside x by the same solver (torchdiffeq), so its accuracy is
the solver's: with the adaptive "dopri5" the local error of every state, the log-det included,
is kept below atol + rtol * |state|. The divergence is exact (one backward pass per feature)
whenever the model is evaluated; in training it may be Hutchinson's unbiased estimate
E[eps^T (dv/dx) eps] with one Rademacher or Gaussian eps per row and solve, one backward pass in all.

Training by maximum likelihood may add RNODE's regularisers, integrated along the same solve:
the kinetic energy integral ||v||^2 dt and the Jacobian's squared Frobenius norm
integral ||dv/dx||_F^2 dt (exact, or Hutchinson's ||eps^T dv/dx||^2), their weighted batch mean
being `penalty` after each training pass.

Reference: Chen et al., Neural ODEs, 2018; Grathwohl et al., FFJORD, 2019 (arXiv:1810.01367);
Finlay et al., How to train your neural ODE (RNODE), 2020 (arXiv:2002.02798).
"""
from __future__ import annotations

import importlib
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import FlowforgeError
from .base import Transform

DIVERGENCES = ("auto", "exact", "hutchinson")
NOISES = ("rademacher", "gaussian")
ADAPTIVE_SOLVERS = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")
FIXED_STEP_SOLVERS = ("euler", "midpoint", "rk4", "heun3", "explicit_adams", "implicit_adams")
EXACT_MAX_FEATURES = 16  # divergence="auto" trains with the exact divergence up to this many features


def torchdiffeq() -> Any:
    """The torchdiffeq module, imported on first use, or a named error saying how to install it."""
    try:
        return importlib.import_module("torchdiffeq")
    except ImportError:
        raise FlowforgeError("continuous flows solve their ODE with torchdiffeq, which is not installed: "
                             "pip install torchdiffeq (or pip install 'flowforge[continuous]')") from None


def divergence(v: Tensor, x: Tensor, noise: Tensor | None, create_graph: bool) -> tuple[Tensor, Tensor]:
    """(div v, ||dv/dx||_F^2) per row. Exact (one vector-Jacobian product per feature) when
    `noise` is None; else Hutchinson's estimates eps^T J eps and ||eps^T J||^2 from one product."""
    flat_v = v.flatten(1)
    if noise is not None:
        row = torch.autograd.grad(v, x, noise, create_graph=create_graph)[0].flatten(1)  # eps^T J
        return (row * noise.flatten(1)).sum(1), row.pow(2).sum(1)
    div = flat_v.new_zeros(flat_v.shape[0])
    frobenius = flat_v.new_zeros(flat_v.shape[0])
    for i in range(flat_v.shape[1]):
        row = torch.autograd.grad(flat_v[:, i].sum(), x, create_graph=create_graph, retain_graph=True)[0].flatten(1)
        div = div + row[:, i]
        frobenius = frobenius + row.pow(2).sum(1)
    return div, frobenius


class _Dynamics(nn.Module):
    """The augmented right-hand side (x, log-det[, kinetic, frobenius]) the solver integrates."""

    def __init__(self, field: nn.Module, context: Tensor | None, noise: Tensor | None, regularize: bool) -> None:
        super().__init__()
        self.field, self.context, self.noise, self.regularize = field, context, noise, regularize
        self.nfe = 0

    def forward(self, t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        self.nfe += 1
        x = state[0]
        create_graph = torch.is_grad_enabled()  # training, rsample, a Jacobian by autograd: keep the graph
        with torch.enable_grad():  # the divergence needs autograd even when evaluating under no_grad
            if not x.requires_grad:  # no graph reaches x yet (data, a no-grad solve): nothing is cut
                x = x.detach().requires_grad_(True)
            v = self.field(t, x, self.context)
            div, frobenius = divergence(v, x, self.noise, create_graph)
        if not create_graph:
            v, div, frobenius = v.detach(), div.detach(), frobenius.detach()
        if not self.regularize:
            return v, div
        return v, div, v.flatten(1).pow(2).sum(1), frobenius


class ODETransform(Transform):
    """The time-1 map of dx/dt = field(t, x, context), data at t = 0, latent at t = 1.

    Args:
        field: a module (t, x, context) -> dx/dt of x's shape, e.g. flowforge.nn.TimeMLP.
        solver: a torchdiffeq method: adaptive "dopri5" (default), "dopri8", "bosh3", or a
            fixed-step one ("rk4", "euler", ...), which takes `steps` steps.
        atol, rtol: the adaptive solver's tolerances, for every state (log-det included).
        steps: steps of a fixed-step solver (ignored by adaptive ones).
        adjoint: backpropagate by solving the adjoint ODE (memory constant in the solver's steps,
            about twice the time) rather than through the solver's operations.
        divergence: in training, "exact", "hutchinson", or "auto" (exact up to EXACT_MAX_FEATURES
            features). Evaluation (eval mode or no autograd) always uses the exact divergence.
        noise: Hutchinson's probe vectors, "rademacher" (lower variance) or "gaussian".
        kinetic, jacobian: RNODE's weights of the kinetic energy and the Jacobian norm (0: off).

    `nfe` is the number of field evaluations of the last solve (forward or inverse); `penalty` the
    weighted regularisers of the last training pass (a 0-d tensor, 0 when off). With
    `with_logabsdet` False (ContinuousFlow.sample, encode and decode set it for one call) a solve
    integrates x alone, no divergence, and reports a NaN log-det, so that no caller can use it.
    """

    def __init__(self, field: nn.Module, solver: str = "dopri5", atol: float = 1e-5, rtol: float = 1e-5,
                 steps: int = 20, adjoint: bool = False, divergence: str = "auto", noise: str = "rademacher",
                 kinetic: float = 0.0, jacobian: float = 0.0) -> None:
        super().__init__()
        if solver not in ADAPTIVE_SOLVERS + FIXED_STEP_SOLVERS:
            raise FlowforgeError(f"unknown ODE solver {solver!r}; choose from {', '.join(ADAPTIVE_SOLVERS + FIXED_STEP_SOLVERS)}")
        if divergence not in DIVERGENCES:
            raise FlowforgeError(f"unknown divergence {divergence!r}; choose from {', '.join(DIVERGENCES)}")
        if noise not in NOISES:
            raise FlowforgeError(f"unknown noise {noise!r}; choose from {', '.join(NOISES)}")
        for name, value in (("atol", atol), ("rtol", rtol)):
            if not (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0):
                raise FlowforgeError(f"{name} must be a positive number, got {value!r}")
        for name, value in (("kinetic", kinetic), ("jacobian", jacobian)):
            if not (isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0):
                raise FlowforgeError(f"{name} must be a non-negative number, got {value!r}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise FlowforgeError(f"steps must be a positive integer, got {steps!r}")
        self.field = field
        self.solver, self.atol, self.rtol, self.steps, self.adjoint = solver, float(atol), float(rtol), steps, bool(adjoint)
        self.divergence, self.noise = divergence, noise
        self.kinetic, self.jacobian = float(kinetic), float(jacobian)
        self.nfe = 0
        self.penalty: Tensor = torch.zeros(())
        self.with_logabsdet = True

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._solve(x, context, 0.0, 1.0)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._solve(z, context, 1.0, 0.0)

    def _is_training_pass(self) -> bool:
        return self.training and torch.is_grad_enabled()

    def _noise(self, x: Tensor) -> Tensor | None:
        """Hutchinson's probe for this solve, or None for the exact divergence."""
        features = x[0].numel()
        exact = self.divergence == "exact" or (self.divergence == "auto" and features <= EXACT_MAX_FEATURES)
        if exact or not self._is_training_pass():
            return None
        if self.noise == "gaussian":
            return torch.randn_like(x)
        return torch.randint(0, 2, x.shape, device=x.device).to(x.dtype) * 2 - 1

    def _solve(self, x: Tensor, context: Tensor | None, start: float, end: float) -> tuple[Tensor, Tensor]:
        if not self.with_logabsdet:
            return self._solve_plain(x, context, start, end), x.new_full((x.shape[0],), float("nan"))
        diffeq = torchdiffeq()
        regularize = self._is_training_pass() and start == 0.0 and (self.kinetic > 0 or self.jacobian > 0)
        dynamics = _Dynamics(self.field, context, self._noise(x), regularize)
        zeros = x.new_zeros(x.shape[0])
        state = (x, zeros) + ((zeros, zeros) if regularize else ())
        times = torch.tensor([start, end], dtype=x.dtype, device=x.device)
        options = {"step_size": 1.0 / self.steps} if self.solver in FIXED_STEP_SOLVERS else None
        if self.adjoint and torch.is_grad_enabled():
            params = tuple(p for p in self.field.parameters() if p.requires_grad)
            out = diffeq.odeint_adjoint(dynamics, state, times, method=self.solver, atol=self.atol, rtol=self.rtol,
                                        options=options, adjoint_params=params)
        else:
            out = diffeq.odeint(dynamics, state, times, method=self.solver, atol=self.atol, rtol=self.rtol, options=options)
        self.nfe = dynamics.nfe
        final = [s[-1] for s in out]
        if regularize:
            self.penalty = self.kinetic * final[2].mean() + self.jacobian * final[3].mean()
        # going from start to end the log-det state gains integral div dt, the log-det of this direction
        return final[0], final[1]

    def _solve_plain(self, x: Tensor, context: Tensor | None, start: float, end: float) -> Tensor:
        """x(end) from x(start): the ODE of x alone, one field evaluation per solver stage."""
        count = [0]

        def rhs(t: Tensor, y: Tensor) -> Tensor:
            count[0] += 1
            return self.field(t, y, context)

        times = torch.tensor([start, end], dtype=x.dtype, device=x.device)
        options = {"step_size": 1.0 / self.steps} if self.solver in FIXED_STEP_SOLVERS else None
        out = torchdiffeq().odeint(rhs, x, times, method=self.solver, atol=self.atol, rtol=self.rtol, options=options)
        self.nfe = count[0]
        return out[-1]
