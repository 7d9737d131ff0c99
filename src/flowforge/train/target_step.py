"""One step of fit_target: samples from the flow, the target on them, the objective, the update."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.func import functional_call

from ..flows.flow import Flow
from ..targets.base import Target
from ..targets.importance import failed_rows
from .optim import clip_grad_norm
from .target_options import TargetHistory, TargetOptions


def draw_contexts(contexts: Tensor | None, n: int) -> Tensor | None:
    if contexts is None:
        return None
    return contexts[torch.randint(contexts.shape[0], (n,), device=contexts.device)]


def target_values(target: Target, x: Tensor, context: Tensor | None, history: TargetHistory,
                   drop_zero: bool) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
    """log p~ at the rows of x where the target did not fail, those rows of x and context, and the kept mask.
    A failed row's gradient may be NaN (a sqrt of a negative): the kept rows are evaluated again, so
    the values that reach backward come from a call that saw no failure."""
    log_p = target(x, context)
    history.target_evaluations += x.shape[0]
    bad = failed_rows(log_p) | (log_p == -math.inf if drop_zero else False)
    if not bool(bad.any()):
        return log_p, x, context, ~bad
    history.dropped_samples += int(bad.sum())
    keep = ~bad
    x, context = x[keep], context[keep] if context is not None else None
    if x.requires_grad and x.shape[0]:
        log_p = target(x, context)
        history.target_evaluations += x.shape[0]
        still = failed_rows(log_p) | (log_p == -math.inf if drop_zero else False)
        log_p = log_p.masked_fill(still, 0.0) if bool(still.any()) else log_p  # a target that changes its mind: no gradient there
    else:
        log_p = log_p[keep]
    return log_p, x, context, keep


class _LogProb(nn.Module):
    """flow.log_prob as a module's forward, for functional_call."""

    def __init__(self, flow: Flow) -> None:
        super().__init__()
        self.flow = flow

    def forward(self, x: Tensor, context: Tensor | None) -> Tensor:
        return self.flow.log_prob(x, context)


def log_prob_along_path(flow: Flow, x: Tensor, context: Tensor | None) -> Tensor:
    """log q(x) with q's parameters held fixed: the gradient reaches them only through x = f^-1(z).

    This is the path gradient ("sticking the landing", Roeder et al. 2017; Vaitl et al. 2022): the
    reverse KL's total gradient less its score term E_q[grad log q], which is zero in expectation
    but not per batch. It leaves the expected gradient unchanged and removes noise that does not
    vanish as q approaches p, so the gradient's variance goes to zero at the optimum.
    """
    fixed = {f"flow.{name}": p.detach() for name, p in flow.named_parameters()}
    return functional_call(_LogProb(flow), fixed, (x, context), strict=False)


def objective_loss(flow: Flow, target: Target, options: TargetOptions, beta: float, context: Tensor | None,
               history: TargetHistory) -> tuple[Tensor, float]:
    """The step's loss and its mean of log q - beta log p~ (the reported value)."""
    n = options.batch_size
    if options.objective == "reverse_kl":
        x, log_q = flow.sample_and_log_prob(n, context=context)
        log_p, x, context, keep = target_values(target, x, context, history, drop_zero=True)
        log_q = log_prob_along_path(flow, x, context) if options.path_gradient and x.shape[0] else log_q[keep]
        gap = log_q - beta * log_p
        if gap.numel() == 0:  # every sample dropped: a NaN loss, so the loop skips the step
            return x.sum() * math.nan, math.nan
        return gap.mean(), float(gap.detach().mean())
    with torch.no_grad():
        x, log_q = flow.sample_and_log_prob(n, context=context)
        log_p, x, context, keep = target_values(target, x, context, history, drop_zero=False)
        log_w = beta * log_p - log_q[keep]
        weights = torch.softmax(options.alpha * log_w.double(), 0).to(log_q.dtype)
        finite = torch.isfinite(log_w)
        value = float((-log_w[finite]).mean()) if bool(finite.any()) else math.nan
    log_q_grad = flow.log_prob(x, context)
    return -(weights * log_q_grad).sum(), value


def take_step(flow: Flow, target: Target, optimizer: torch.optim.Optimizer, lr: float, options: TargetOptions, step: int,
          contexts: Tensor | None, forward: tuple[Tensor, Tensor] | None, history: TargetHistory) -> tuple[bool, float]:
    """One optimiser step; taken only when the loss and the gradient are finite."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    loss, value = objective_loss(flow, target, options, options.beta(step), draw_contexts(contexts, options.batch_size), history)
    if forward is not None and options.forward_weight > 0:
        rows = torch.multinomial(forward[1], options.batch_size, replacement=True).to(forward[0].device)
        loss = loss - options.forward_weight * flow.log_prob(forward[0][rows]).mean()
    loss.backward()
    norm = clip_grad_norm(optimizer.param_groups[0]["params"], options.grad_clip)
    is_taken = bool(torch.isfinite(loss.detach())) and bool(torch.isfinite(norm))
    if is_taken:
        optimizer.step()
    return is_taken, value
