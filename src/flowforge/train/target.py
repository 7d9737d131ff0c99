"""fit_target: train a flow to sample a target density known up to its normaliser (no data).

Each step draws `batch_size` samples x ~ q from the flow and evaluates the target on them:

    reverse_kl:  loss = mean(log q(x) - beta log p~(x)),  x = f^-1(z) reparameterised
    alpha:       loss = -sum_i softmax(alpha lw)_i log q(x_i),  lw = beta log p~(x) - log q(x),
                 x and the weights detached: the gradient of D_alpha(p || q) (mass-covering)

plus `forward_weight` times -mean log q(s) on given samples s (e.g. MCMC draws), when given.
Samples where the target returns NaN or +inf are dropped from the step and counted
(`history.dropped_samples`), and so are reverse KL's samples at -inf (zero density, an infinite
loss: give a finite penalty instead to push the flow away from such regions); the rest of the loop is `fit`'s: Adam at the scheduled rate, clipped
gradients, a non-finite step skipped and three in a row restoring the last good state at half the
rate, held-out importance-sampling evaluations that pick the weights kept, checkpoints and resume.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..errors import FlowforgeError
from ..flows.flow import Flow
from ..targets.base import Target, as_target
from ..targets.importance import importance_sample
from ..transforms.base import data_dependent_layers, sets_up_on_this_call
from ..transforms.standardize import Standardize
from .ema import WeightAverage
from .history import TrainState, clone_state
from .optim import adam, learning_rate
from .target_options import TargetHistory, TargetOptions
from .target_step import draw_contexts, take_step

MAX_RESTORES = 10


@torch.enable_grad()
def fit_target(flow: Flow, target: Target | Callable[..., Tensor] | str, *, context: Any = None,
               samples: Any = None, sample_weights: Any = None, options: TargetOptions | None = None,
               resume: dict[str, Any] | None = None, callback: Callable[[int, Flow, TargetHistory], None] | None = None,
               on_checkpoint: Callable[[dict[str, Any]], None] | None = None,
               should_stop: Callable[[], bool] | None = None, **overrides: Any) -> TargetHistory:
    """Train `flow` to sample `target` (reverse KL or an alpha-divergence); it ends in eval mode, with the kept weights.

    Args:
        target: a [`Target`][flowforge.Target], a built-in name ("banana", "funnel", ...), or a
            callable log_density(x[, context]) -> (batch,), differentiable in x.
        context: for a conditional flow and target, (rows, context_features): each step draws its
            contexts from these rows.
        samples, sample_weights: optional (rows, features) draws from the target (e.g. MCMC) and
            their weights, for a forward-KL term weighted by `forward_weight`.
        options: [`TargetOptions`][flowforge.TargetOptions]; `**overrides` (its field names) replace its fields.
        resume, callback, on_checkpoint, should_stop: as in [`fit`][flowforge.fit].

    Example:
        >>> import flowforge
        >>> flow = flowforge.RealNVP(2, layers=4, hidden=(32, 32))
        >>> history = flowforge.fit_target(flow, "banana", steps=200, lr=5e-3, progress=False)
        >>> flowforge.importance_sample(flow, "banana", n=2000).ess > 0.5
        True
    """
    options = TargetOptions.merge(options, overrides)
    target = _checked_target(flow, target)
    contexts = _as_rows(context, flow, "context", flow.context_features) if flow.context_features else None
    if flow.context_features and contexts is None:
        raise FlowforgeError(f"fit_target: this flow is conditional: pass context=(rows, {flow.context_features})")
    forward = _forward_samples(flow, samples, sample_weights)
    optimizer = _adam(flow, options)
    state = _first_state(flow, target, optimizer, options, resume, contexts)
    average = WeightAverage(flow, options.ema, resume.get("ema") if resume else None) if options.ema else None
    history = state.history
    start_time = time.perf_counter() - history.seconds
    flow.train()
    with _progress_bar(options, state.step) as bar:
        while state.step < options.steps and not history.stopped_early:
            if should_stop is not None and should_stop():
                history.interrupted = True
                break
            step = state.step
            lr = learning_rate(options.schedule, step, options.steps, options.lr, options.warmup) * state.lr_factor
            is_taken, value = take_step(flow, target, optimizer, lr, options, step, contexts, forward, history)
            state.step += 1
            if not is_taken:
                _on_non_finite(flow, optimizer, state, step)
                continue
            state.bad_in_row = 0
            if average is not None:
                average.update(flow)
            history.step.append(step)
            history.train_nll.append(value)
            history.lr.append(lr)
            if state.step % options.eval_every == 0 or state.step == options.steps:
                _evaluate(flow, target, optimizer, state, options, contexts, average)
                flow.train()
            bar.set_postfix(loss=f"{value:.3f}", ess=f"{history.val_ess[-1]:.3f}" if history.val_ess else "-", refresh=False)
            bar.update(state.step - bar.n)
            if callback is not None:
                callback(state.step, flow, history)
            if options.checkpoint_every and state.step % options.checkpoint_every == 0 and state.step < options.steps:
                _checkpoint(on_checkpoint, state, optimizer, start_time, average=average)
    live = clone_state(flow)  # the weights to continue from, also of a stopped run: `resume` loads them
    if not history.interrupted:
        if state.best is not None and options.keep_best != "last":
            flow.load_state_dict(state.best)
        elif average is not None:
            flow.load_state_dict(average.module_state(flow))
    _checkpoint(on_checkpoint, state, optimizer, start_time, live, average)
    flow.eval()
    return history


def _checked_target(flow: Flow, target: Any) -> Target:
    if len(flow.event_shape) != 1:
        raise FlowforgeError(f"fit_target: the flow must model vectors, got event shape {flow.event_shape}")
    target = as_target(target, features=flow.event_shape[0], context_features=flow.context_features)
    if target.features != flow.event_shape[0]:
        raise FlowforgeError(f"fit_target: target {target.name!r} has {target.features} features, "
                             f"the flow {flow.event_shape[0]}")
    return target


def _as_rows(value: Any, flow: Flow, name: str, columns: int) -> Tensor | None:
    if value is None:
        return None
    anchor = flow._anchor()
    rows = torch.as_tensor(value, dtype=anchor.dtype, device=anchor.device)
    if rows.dim() != 2 or rows.shape[1] != columns or rows.shape[0] == 0:
        raise FlowforgeError(f"fit_target: {name} must have shape (rows, {columns}), got {tuple(rows.shape)}")
    if not bool(torch.isfinite(rows).all()):
        raise FlowforgeError(f"fit_target: {name} contains NaN or Inf")
    return rows


def _forward_samples(flow: Flow, samples: Any, weights: Any) -> tuple[Tensor, Tensor] | None:
    """The forward-KL samples and their selection probabilities (uniform without weights)."""
    if samples is None:
        if weights is not None:
            raise FlowforgeError("fit_target: sample_weights needs samples")
        return None
    if flow.context_features:
        raise FlowforgeError("fit_target: samples (a forward-KL term) are for unconditional flows")
    rows = _as_rows(samples, flow, "samples", flow.event_shape[0])
    if weights is None:
        return rows, torch.ones(rows.shape[0], dtype=torch.float64)
    weights = torch.as_tensor(weights, dtype=torch.float64).flatten().cpu()
    if weights.shape[0] != rows.shape[0] or not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()) \
            or float(weights.sum()) <= 0:
        raise FlowforgeError(f"fit_target: sample_weights must be {rows.shape[0]} finite, non-negative numbers, not all zero")
    return rows, weights


def _adam(flow: Flow, options: TargetOptions) -> torch.optim.Optimizer:
    parameters = [p for p in flow.parameters() if p.requires_grad]
    if not parameters:
        raise FlowforgeError("fit_target: the flow has no trainable parameters")
    return adam(parameters, options.lr, options.weight_decay)


def _first_state(flow: Flow, target: Target, optimizer: torch.optim.Optimizer, options: TargetOptions,
                 resume: dict[str, Any] | None, contexts: Tensor | None) -> TrainState:
    if resume is not None:
        if "live_model" in resume:
            flow.load_state_dict(resume["live_model"])
        saved_history = dict(resume["history"])
        extra = {k: saved_history.pop(k) for k in list(saved_history) if k not in TargetHistory.base_fields()}
        state = TrainState.from_dict({**resume, "history": saved_history}, optimizer)
        state.history = TargetHistory(**saved_history, **extra)
        state.history.interrupted = False
        return state
    torch.manual_seed(options.seed)
    _place_first_layers(flow, target)
    scaler = getattr(flow, "context_standardize", None)
    if scaler is not None and contexts is not None and not bool(scaler.is_fitted):
        scaler.fit_(contexts)  # as fit does with the training contexts
    state = TrainState(history=TargetHistory())
    return state


@torch.no_grad()
def _place_first_layers(flow: Flow, target: Target) -> None:
    """Where the target gives a location and scale, fit an unfitted Standardize first layer and set
    up ActNorm-style layers on points spread like that; otherwise those layers start as the identity."""
    hint = None
    if target.loc is not None and target.scale is not None:
        anchor = flow._anchor()
        noise = torch.randn(4096, target.features, dtype=torch.float64)
        hint = (target.loc + target.scale * noise).to(anchor)
    first = flow.transform[0] if hasattr(flow.transform, "__getitem__") else flow.transform
    if isinstance(first, Standardize) and not bool(first.is_fitted) and hint is not None:
        first.fit_(hint)
    flow.train()
    if sets_up_on_this_call(flow):
        if hint is not None and flow.context_features == 0:
            flow.log_prob(hint)
        for layer in data_dependent_layers(flow):
            layer.is_initialized.fill_(True)


def _progress_bar(options: TargetOptions, step: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=options.steps, initial=step, disable=not options.progress, desc="fit-target", unit="step",
                dynamic_ncols=True)


def _on_non_finite(flow: Flow, optimizer: torch.optim.Optimizer, state: TrainState, step: int) -> None:
    """Skip the step; three in a row restore the last good state and halve the learning rate."""
    history = state.history
    history.skipped_steps += 1
    state.bad_in_row += 1
    if state.bad_in_row < 3:
        return
    state.bad_in_row, state.lr_factor = 0, state.lr_factor * 0.5
    history.restores += 1
    if state.good is None or history.restores > MAX_RESTORES:
        raise FlowforgeError(f"fit_target diverged: non-finite loss or gradients at step {step} "
                             f"({history.skipped_steps} steps skipped); lower lr or check the target")
    flow.load_state_dict(state.good[0])
    optimizer.load_state_dict(state.good[1])


def _evaluate(flow: Flow, target: Target, optimizer: torch.optim.Optimizer, state: TrainState, options: TargetOptions,
              contexts: Tensor | None, average: WeightAverage | None) -> None:
    """Importance-sample fresh points; record ESS, log Z and the reverse KL; keep the best weights.
    With a weight average, the averaged weights are the ones evaluated and kept; training goes on
    from the live ones."""
    history = state.history
    live = clone_state(flow)
    if average is not None:
        flow.load_state_dict(average.module_state(flow))
    result = importance_sample(flow, target, options.eval_samples, context=draw_contexts(contexts, options.eval_samples))
    evaluated = clone_state(flow) if average is not None else live
    if average is not None:
        flow.load_state_dict(live)
    history.target_evaluations += options.eval_samples
    log_w = result.log_weights
    kl = float((-log_w).mean()) if log_w.numel() and bool(torch.isfinite(log_w).all()) else math.inf
    history.val_step.append(state.step)
    history.val_nll.append(kl)
    history.val_ess.append(result.ess)
    history.val_log_z.append(result.log_z)
    history.val_log_z_stderr.append(result.log_z_stderr)
    if math.isfinite(result.log_z):
        state.good = (live, clone_state(optimizer))
    by_ess = options.keep_best == "ess"
    score = -result.ess if by_ess else kl  # lower is better
    lowest = min([-ess for ess in history.val_ess[:-1]] if by_ess else history.val_nll[:-1], default=math.inf)
    if math.isfinite(score) and score <= lowest + (0.0 if by_ess else _noise(log_w)):
        history.best_val_nll, history.best_step = score, state.step
        state.best = evaluated
    state.evals_since_best = 0 if score < lowest else state.evals_since_best + 1
    if options.patience is not None and state.evals_since_best >= options.patience:
        history.stopped_early = True


def _noise(log_w: Tensor) -> float:
    """How much lower than another evaluation's reverse KL this one may be by chance alone: two
    standard errors of the difference of two estimates, each mean(-log w) over its own samples.
    A later state whose held-out KL is within this of the lowest is kept: near convergence the
    estimates differ by their noise, and the later weights (at a lower learning rate, averaged
    longer) are the better bet."""
    if log_w.numel() < 2 or not bool(torch.isfinite(log_w).all()):
        return 0.0
    return 2 * math.sqrt(2) * float(log_w.double().std()) / math.sqrt(log_w.numel())


def _checkpoint(on_checkpoint: Callable[[dict[str, Any]], None] | None, state: TrainState,
                optimizer: torch.optim.Optimizer, start_time: float, live: dict[str, Any] | None = None,
                average: WeightAverage | None = None) -> None:
    state.history.seconds = time.perf_counter() - start_time
    if on_checkpoint is not None:
        saved = state.to_dict(optimizer)
        if live is not None:
            saved["live_model"] = live
        if average is not None:
            saved["ema"] = average.to_dict()
        on_checkpoint(saved)
